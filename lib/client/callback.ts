import { SmartError } from '../errors'
import { redeemCode } from '../oauth/authorization-server'
import { verifyIdToken } from '../oauth/id-token'
import { launchContextFrom, tokenSetFrom } from '../oauth/token-response'
import type { Observation } from '../observe'
import { checkResponseIssuer, withActivePatient } from '../session/callback-checks'
import { bareSelectors, checkPatientId, newLaunchId, type CompletedLaunch } from '../session/launch-identity'
import { consumePendingLaunch, dropPendingLaunch, secretsOf } from '../session/pending-launch'
import { param } from './params'
import { authorizationServerFor, registrationFor } from './registration'
import { revoke, revokeLaunch } from './revoke'
import type { ClientParts } from './runtime'

/**
 * The authorization server's answer, as the callback route receives it (`req.query`).
 *
 * @example
 * const query: CallbackQuery = { code: req.query.code as string, state: req.query.state as string, iss: req.query.iss as string }
 */
export type CallbackQuery = { code?: string; state?: string; iss?: string; error?: string; error_description?: string }
/**
 * What a completed callback gives the app: where to send the browser, the patient and intent.
 *
 * @example
 * const { redirectUrl, activePatient } = await client.callback(req.query, { regenerate })
 * res.redirect(redirectUrl)   // multi-launch: already carries ?patient=<activePatient>
 */
export type CallbackResult = {
  redirectUrl: string
  patient: string | null
  intent: string | null
  /** What the page sends as `X-Active-Patient` to select this launch: the patient id, or `<patient id>_<EHR tag>` (see README). */
  activePatient: string
  /** The session's browser cookie value, which the middleware sets (SECURITY S34); null without a browser proof. */
  browserKey: string | null
}
/**
 * Options of `SmartClient.callback()`.
 *
 * @example
 * const regenerate = () => new Promise<string>((resolve, reject) =>
 *   req.session.regenerate((err) => (err ? reject(err) : resolve(req.sessionID))))
 * await client.callback(req.query, { regenerate })
 */
export interface CallbackOptions {
  /**
   * Called once the launch is verified and before anything is stored: regenerates the session id (session
   * fixation, SECURITY S22) and returns the new one. The launch is stored under the new id, and the session's
   * other launches move there with it. Without it the launch is stored under this client's session id.
   */
  regenerate?: () => Promise<string>
}

/**
 * The callback step of `SmartClient.callback()`: verifies state (single use, this browser's), RFC 9207 `iss`,
 * redeems the code with PKCE, verifies the id_token and stores the launch.
 */
export async function completeCallback(parts: ClientParts, query: CallbackQuery, opts: CallbackOptions, observation: Observation): Promise<CallbackResult> {
  const { rt, storage, session, browser } = parts
  const { config } = rt
  const owns = (owner: string) => session.owns(owner)
  if (query?.error !== undefined) {
    if (typeof query.state === 'string' && query.state !== '') await dropPendingLaunch(storage, query.state, owns, browser).catch(() => undefined)
    // Query parsers give arrays and objects too: `error[toString]=x` (extended parser) makes String() throw.
    const code = (typeof query.error === 'string' ? query.error : 'malformed').replace(/[^\w.-]/g, '').slice(0, 64)
    throw new SmartError('AUTHORIZATION_DENIED', `The EHR did not authorize the app (${code})`)
  }
  const code = param('code', query?.code)
  const state = param('state', query?.state)
  const pending = await consumePendingLaunch(storage, state, owns, browser, config.now())
  const secrets = secretsOf(config.encryptionKeys, state, pending)
  observation.set({ 'smart.iss': pending.iss })
  const as = authorizationServerFor(rt, pending.iss, pending.smart)
  checkResponseIssuer(pending.smart, query.iss)
  const answer = await redeemCode(as, { redirectUri: config.callbackUrl, code, state, codeVerifier: secrets.codeVerifier })
  const now = config.now()
  const tokens = tokenSetFrom(answer.response, now)
  const registration = registrationFor(config, pending.iss)
  const context = launchContextFrom(answer.response, registration.scope)
  try {
    checkPatientId(context.patient)
  } catch (err) {
    await revoke(as, tokens)
    throw err
  }
  const idTokenClaims = answer.idToken
    ? await verifyIdToken(answer.idToken, { issuer: pending.smart.issuer, jwksUri: pending.smart.jwks_uri, clientId: registration.clientId, nonce: secrets.nonce, now: config.now, http: rt.http })
    : null
  const id = newLaunchId()
  const completed: CompletedLaunch = {
    id, iss: pending.iss, tokens: session.sealTokens(id, tokens), ...context,
    idTokenClaims: idTokenClaims as Record<string, unknown> | null, completedAt: now, lastUsedAt: now, startedAt: pending.createdAt,
  }
  // Nothing is stored before the session id is regenerated: a failed regeneration leaves nothing under a possibly fixated id.
  const sessionId = opts.regenerate ? await opts.regenerate() : session.sessionId
  const committed = await session.commit(sessionId, completed, {
    multiLaunch: config.enableMultiLaunch, bare: bareSelectors(config), proof: browser, binding: pending.binding, pendingCreatedAt: pending.createdAt,
  })
  const launch = committed.launch!
  observation.set({ 'smart.patient_count': committed.launches, 'smart.intent': context.intent ?? '' })
  observation.patient(context.patient)
  // A later launch of the same EHR and patient (another tab) was kept: this one's tokens are not needed; nor
  // are those of the launches this one replaced or evicted (best effort: the callback does not fail for them).
  if (launch.id !== completed.id) await revoke(as, tokens)
  await Promise.all(committed.dropped.map((gone) => revokeLaunch(parts, gone).catch(() => undefined)))
  // Single-launch mode too: a page that names its launch is never answered for a later one (SECURITY S35).
  const redirectUrl = withActivePatient(config.redirectUrl, launch.selector)
  return { redirectUrl, patient: context.patient, intent: context.intent, activePatient: launch.selector, browserKey: committed.browserKey }
}
