import type { Agent } from 'supertest'
import type { LaunchContext, MockEhr } from './types'

/**
 * Options of `launchAs()`.
 *
 * @example
 * await launchAs(agent, ehr, { patient: 'patient-1' }, { launchPath: '/smart/launch' })
 */
export interface LaunchAsOptions {
  /** The app's `smartLaunch()` route. Default `/launch`. */
  launchPath?: string
}

/** The Location of an app's 302 answer; anything else fails with the step and what the app answered. */
export function expectRedirect(helper: string, step: string, res: { status: number; headers: Record<string, string>; text?: string }): string {
  const location = res.headers.location
  if (res.status !== 302 || !location) {
    const body = (res.text ?? '').slice(0, 300)
    throw new Error(`${helper}: ${step} answered ${res.status} instead of a redirect${body ? `: ${body}` : ''}`)
  }
  return location
}

/**
 * Drives a supertest agent (which keeps cookies, like a browser) through a whole EHR launch of the app:
 * EHR launch URL → the app's `/launch` → the EHR's authorization → the app's callback. Afterwards the
 * agent is a launched session: call the app's own routes with it.
 *
 * @example
 * const ehr = await createMockEhr()
 * const agent = request.agent(app)            // app configured with ehr.iss (allowNonHttpsLaunch in tests)
 * const { patient } = await launchAs(agent, ehr, { patient: 'patient-1' })
 * await agent.get('/api/patient').set('X-Active-Patient', patient).expect(200)
 */
export async function launchAs(agent: Agent, ehr: MockEhr, context: LaunchContext, options: LaunchAsOptions = {}): Promise<{ patient: string }> {
  const launchPath = options.launchPath ?? '/launch'
  const ehrLaunch = new URL(ehr.launchUrl('http://app.invalid/', context))
  const launched = await agent.get(`${launchPath}${launchPath.includes('?') ? '&' : '?'}${ehrLaunch.search.slice(1)}`)
  const authorizationUrl = expectRedirect('launchAs', `GET ${launchPath}`, launched)
  const back = await ehr.authorize(authorizationUrl)
  const called = await agent.get(`${back.pathname}${back.search}`)
  const landing = expectRedirect('launchAs', `GET ${back.pathname}`, called)
  const patient = new URL(landing, 'http://app.invalid').searchParams.get('patient') ?? context.patient
  return { patient }
}
