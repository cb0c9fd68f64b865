import type { SmartClientConfiguration, SmartClientOptions, SmartClient, CallbackResult } from '../../lib'
import type { LaunchContext, MockEhr } from '../../lib/testing'

/** The app's configuration for tests against a mock EHR (http on 127.0.0.1, hence allowNonHttpsLaunch). */
export function openConfig(overrides: Partial<SmartClientConfiguration> = {}): SmartClientConfiguration {
  return {
    clientId: 'mock-app',
    scope: 'openid fhirUser launch launch/patient patient/*.rs offline_access',
    callbackUrl: 'http://app.test/callback',
    redirectUrl: 'http://app.test/app',
    allowAnyIssuer: true,
    ...overrides,
  } as SmartClientConfiguration
}

export const devOptions: SmartClientOptions = { allowNonHttpsLaunch: true }

/** What the EHR's launch URL carries. */
export function ehrLaunch(ehr: MockEhr, context: LaunchContext): { iss: string; launch: string } {
  const url = new URL(ehr.launchUrl('http://app.test/launch', context))
  return { iss: url.searchParams.get('iss')!, launch: url.searchParams.get('launch')! }
}

/** The authorization server's redirect back to the app, as a callback query. */
export async function authorize(ehr: MockEhr, authorizationUrl: string): Promise<Record<string, string>> {
  return Object.fromEntries((await ehr.authorize(authorizationUrl)).searchParams)
}

/** EHR launch → authorize → callback, each step by the client given (another "process" may take the callback). */
export async function completeLaunch(
  ehr: MockEhr,
  context: LaunchContext,
  launching: SmartClient,
  callingBack: SmartClient = launching,
): Promise<CallbackResult> {
  const { redirectUrl } = await launching.launch(ehrLaunch(ehr, context))
  return callingBack.callback(await authorize(ehr, redirectUrl))
}

/** A settable clock for SmartClientOptions.now. */
export function testClock(start = Date.now()): { now: () => number; advance: (ms: number) => void } {
  let current = start
  return { now: () => current, advance: (ms) => (current += ms) }
}

/**
 * A fetch whose successful token responses of `grant` (or of every grant) are rewritten by `rewrite`: what a
 * real EHR could send and the mock does not.
 */
export function rewritingTokenResponses(
  rewrite: (body: Record<string, unknown>) => Record<string, unknown>,
  grant: 'authorization_code' | 'refresh_token' | 'every grant' = 'authorization_code',
): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init)
    const sent = String(init?.body ?? '')
    if (!sent.includes(grant === 'every grant' ? 'grant_type=' : `grant_type=${grant}`) || response.status !== 200) return response
    return Response.json(rewrite((await response.json()) as Record<string, unknown>), { status: 200 })
  }
}

/** A fetch whose smart-configuration answers are rewritten by `rewrite`: what a real EHR could send and the mock does not. */
export function rewritingSmartConfiguration(rewrite: (doc: Record<string, unknown>) => Record<string, unknown>): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init)
    if (!String(input).endsWith('/.well-known/smart-configuration')) return response
    return Response.json(rewrite((await response.json()) as Record<string, unknown>))
  }
}

/** A fetch whose smart-configuration answers lack `field`. */
export function smartConfigurationWithout(field: string): typeof fetch {
  return rewritingSmartConfiguration(({ [field]: _dropped, ...doc }) => doc)
}
