import type { Agent } from 'supertest'
import { expectRedirect } from './launch-as'
import type { MockEhr, MockEhrUser } from './types'

/**
 * Who logs in to the app standalone, and for which patient.
 *
 * @example
 * await loginAs(agent, ehr, { patient: 'patient-2' })                     // a practitioner picks patient-2
 * await loginAs(agent, ehr, { user: 'patient', patient: 'patient-3' })    // the patient signs in
 */
export interface LoginContext {
  /**
   * Signed in as the practitioner: the patient to choose at the EHR's patient picker (the app asks for
   * `launch/patient`); `null` or omitted for a login without a patient (user-level scopes only: no picker).
   * Signed in as `'patient'` or `'related-person'`: whose login it is (required then).
   */
  patient?: string | null
  /** Who signs in at the EHR. Default `'practitioner'`. See {@link MockEhrUser}. */
  user?: MockEhrUser
}

/**
 * Options of `loginAs()`.
 *
 * @example
 * await loginAs(agent, ehr, { patient: 'patient-1' }, { loginPath: '/signin', sendIss: false })
 */
export interface LoginAsOptions {
  /** The app's `smartLogin()` route. Default `/login`. */
  loginPath?: string
  /** Send `?iss=<ehr.iss>` to the login route. Default true; false for apps that know exactly one EHR. */
  sendIss?: boolean
}

/**
 * Drives a supertest agent (which keeps cookies, like a browser) through a whole **standalone** launch
 * of the app, the app opened outside the EHR: the app's `/login?iss=<ehr.iss>` → the EHR's
 * authorization, where the signed-in practitioner picks `patient` at the patient picker (or a patient
 * signs in for themselves) → the app's callback. Afterwards the agent is a logged-in session.
 *
 * Resolves with the patient: the landing URL's `?patient=` when the app sets one (multi-launch mode),
 * else the patient asked for, else null (a login without a patient). To see the app answer a denial,
 * drive the steps by hand with `ehr.authorize(url, { deny: true })`.
 *
 * @example
 * const ehr = await createMockEhr()
 * const agent = request.agent(app)                 // app with smartLogin() at /login, configured with ehr.iss
 * const { patient } = await loginAs(agent, ehr, { patient: 'patient-2' })
 * await agent.get('/api/patient').set('X-Active-Patient', patient!).expect(200)
 * await loginAs(request.agent(app), ehr, { user: 'patient', patient: 'patient-3' })   // patient portal login
 * await loginAs(request.agent(app), ehr, {})                                        // user-level scopes, no patient
 */
export async function loginAs(agent: Agent, ehr: MockEhr, context: LoginContext = {}, options: LoginAsOptions = {}): Promise<{ patient: string | null }> {
  const loginPath = options.loginPath ?? '/login'
  const patient = context.patient ?? undefined
  const query = options.sendIss === false ? '' : `${loginPath.includes('?') ? '&' : '?'}iss=${encodeURIComponent(ehr.iss)}`
  const started = await agent.get(`${loginPath}${query}`)
  const authorizationUrl = expectRedirect('loginAs', `GET ${loginPath}`, started)
  const back = await ehr.authorize(authorizationUrl, { patient, user: context.user })
  const called = await agent.get(`${back.pathname}${back.search}`)
  const landing = expectRedirect('loginAs', `GET ${back.pathname}`, called)
  return { patient: new URL(landing, 'http://app.invalid').searchParams.get('patient') ?? patient ?? null }
}
