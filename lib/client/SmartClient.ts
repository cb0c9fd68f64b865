import type { SmartClientConfiguration, SmartClientOptions } from '../config'
import { normalizeIssuer } from '../config'
import { SmartError } from '../errors'
import {
  buildAuthorizationRequest,
  redeemCode,
  redeemRefreshToken,
  revokeToken,
  type AuthorizationServer,
} from '../oauth/authorization-server'
import type { SmartConfiguration } from '../oauth/discovery'
import { verifyIdToken } from '../oauth/id-token'
import { launchContextFrom, tokenSetFrom } from '../oauth/token-response'
import { singleFlight } from '../storage/lock'
import type { LaunchRecord, TokenSet } from '../storage/records'
import type { SmartStorage } from '../storage/SmartStorage'
import type { BrowserProof } from './browser-binding'
import { checkResponseIssuer, pinnedDiscovery, withActivePatient } from './callback-checks'
import { consumePendingLaunch, digest, dropPendingLaunch, forgetPendingLaunch, sealSecrets, secretsOf, startPendingLaunch } from './pending-launch'
import { fhirReadCacheFor } from './fhir-cache'
import type { Observation } from './instrumentation'
import { checkPatientId, isLive, needsTouch, newLaunchId, selectLaunch, withEnded, type CompletedLaunch } from './launch-identity'
import { ReadyClient } from './ReadyClient'
import { checkCapabilities, scopeForEhr } from './capabilities'
import { registrationFor } from './registration'
import { runtimeFor, type Runtime } from './runtime'
import { sessionCacheFor } from './session-cache'
import { SessionState, type Resolved } from './session-state'

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
 * A browser session and the value its page sent as `X-Active-Patient` (null when it sent none).
 *
 * @example
 * const session: SessionRef = { sessionId: req.sessionID, activePatient: req.get('x-active-patient') ?? null }
 * const fhir = await new SmartClient(session, storage, config, { enableMultiLaunch: true }).ready()
 */
export type SessionRef = {
  sessionId: string
  activePatient: string | null
  /** What only this browser holds (its launch and browser cookies); the middleware reads it from the request. */
  browser?: BrowserProof
}
/**
 * Options of `SmartClient.launch()` and `login()`.
 *
 * @example
 * const binding = randomBytes(32).toString('base64url')   // kept in an HttpOnly cookie of this browser
 * await client.launch({ iss, launch }, { binding })
 */
export interface LaunchOptions {
  /** A fresh secret only the launching browser holds; the callback must present it (SECURITY S34). Its SHA-256 is stored. */
  binding?: string
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

/** An app configured for exactly one EHR gives pages bare patient ids; any other gives `<patient id>_<EHR tag>` (launch-identity.ts). */
const bareSelectors = (rt: Runtime): boolean => rt.config.knownFhirServers?.size === 1

const MAX_PARAM_LENGTH = 4096

type ReadyAt = (client: SmartClient, version: string | null) => Promise<{ client: ReadyClient; version: string | null }>
let readyAtImpl: ReadyAt

/**
 * `ready()` for the middleware (not public API): `version` is what the request's express-session session
 * carries; this process's copy of that version of the session record answers without a store read. Resolves
 * with the record's version now, for the middleware to keep in the session (null: keep none).
 */
export const readyAt: ReadyAt = (client, version) => readyAtImpl(client, version)

function param(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new SmartError('MISSING_PARAMETER', `The "${name}" parameter is required`)
  if (value.length > MAX_PARAM_LENGTH) throw new SmartError('MISSING_PARAMETER', `The "${name}" parameter is too long`)
  return value
}

/**
 * Runs the SMART App Launch for one browser session: EHR launch, callback, ready FHIR clients, refresh
 * and logout, with all state server-side in a `SmartStorage`.
 *
 * @example
 * const storage = expressSessionStorage(sessionStore)
 * const client = new SmartClient(req.sessionID, storage, config)
 * const { redirectUrl } = await client.launch({ iss, launch })   // → 302 to redirectUrl
 * // ... on the callback route:
 * await new SmartClient(req.sessionID, storage, config).callback(req.query)
 * // ... on later requests:
 * const fhir = await new SmartClient(req.sessionID, storage, config).ready()
 * const patient = await fhir.request(`Patient/${fhir.patient?.id}`)
 */
export class SmartClient {
  readonly #rt: Runtime
  readonly #storage: SmartStorage
  readonly #session: SessionState
  readonly #activePatient: string | null
  readonly #browser: BrowserProof | null

  constructor(sessionId: string, storage: SmartStorage, config: SmartClientConfiguration, options?: SmartClientOptions)
  /** With the value the page sent (`X-Active-Patient`): which launch it means (multi-launch), or must be (single-launch). */
  constructor(session: SessionRef, storage: SmartStorage, config: SmartClientConfiguration, options?: SmartClientOptions)
  constructor(session: string | SessionRef, storage: SmartStorage, config: SmartClientConfiguration, options?: SmartClientOptions) {
    this.#rt = runtimeFor(config, options)
    const sessionId = typeof session === 'string' ? session : session?.sessionId
    if (typeof sessionId !== 'string' || sessionId === '') throw new TypeError('express-smart-on-fhir: sessionId must be a non-empty string')
    if (!storage || typeof storage.get !== 'function' || typeof storage.set !== 'function' || typeof storage.delete !== 'function') {
      throw new TypeError('express-smart-on-fhir: storage must implement SmartStorage (get, set, delete)')
    }
    const active = typeof session === 'string' ? null : session.activePatient
    if (active !== null && active !== undefined && typeof active !== 'string') throw new TypeError('express-smart-on-fhir: activePatient must be a string or null')
    this.#storage = storage
    this.#browser = typeof session === 'string' ? null : session.browser ?? null
    this.#session = new SessionState(storage, this.#rt.config, sessionId, sessionCacheFor(this.#rt, storage), this.#browser?.keys ?? [])
    // Single-launch mode honours it too: naming another patient than the session's is refused.
    this.#activePatient = active || null
  }

  /** EHR launch: checks the issuer (allow-list first, before any network call), discovers it and starts the authorization. */
  launch(params: { iss: string; launch: string }, opts: LaunchOptions = {}): Promise<{ redirectUrl: string }> {
    return this.#rt.observe('launch', {}, (observation) =>
      this.#authorize(param('iss', params?.iss), param('launch', params?.launch), 'ehr', opts, observation))
  }

  /**
   * Standalone launch (the app opened outside the EHR): the same checks and authorization request as
   * `launch`, without a `launch` parameter and without the bare `launch` scope — `launch/patient` asks the
   * EHR for a patient (its picker). `iss` may be omitted when `knownFhirServers` names exactly one EHR.
   *
   * @example
   * const { redirectUrl } = await new SmartClient(req.sessionID, storage, config).login({ iss: req.query.iss })
   */
  login(params: { iss?: string } = {}, opts: LaunchOptions = {}): Promise<{ redirectUrl: string }> {
    return this.#rt.observe('login', {}, (observation) => {
      const { config } = this.#rt
      const only = config.knownFhirServers?.size === 1 ? [...config.knownFhirServers.values()][0].issuer : undefined
      const iss = params?.iss === undefined && only ? only : param('iss', params?.iss)
      return this.#authorize(iss, null, 'standalone', opts, observation)
    })
  }

  async #authorize(iss: string, launch: string | null, kind: 'ehr' | 'standalone', opts: LaunchOptions, observation: Observation): Promise<{ redirectUrl: string }> {
    const { config } = this.#rt
    const known = config.knownFhirServers?.get(normalizeIssuer(iss))
    if (config.knownFhirServers && !known) throw new SmartError('UNKNOWN_ISSUER', 'This EHR (iss) is not one the app is configured to trust')
    let url: URL
    try {
      url = new URL(iss)
    } catch {
      throw new SmartError('MISSING_PARAMETER', 'The "iss" parameter must be an absolute URL')
    }
    if (url.protocol !== 'https:' && !(config.allowNonHttpsLaunch && url.protocol === 'http:')) {
      throw new SmartError('INSECURE_ISSUER', 'The EHR (iss) must use https; allowNonHttpsLaunch permits http for local development')
    }
    observation.set({ 'smart.iss': iss })
    const smart = await this.#rt.discover(iss)
    const registration = registrationFor(config, iss)
    checkCapabilities(smart, iss, { kind, clientType: registration.server?.type ?? 'public' }, config.logger)
    const requested = kind === 'ehr' ? registration.scope : registration.standaloneScope
    const request = await buildAuthorizationRequest(this.#authorizationServer(iss, smart), {
      redirectUri: config.callbackUrl,
      scope: scopeForEhr(smart, iss, requested, registration.server?.scope !== undefined, config.logger),
      launch,
      openid: registration.openid,
    })
    const binding = typeof opts?.binding === 'string' && opts.binding.length >= 32 ? digest(opts.binding) : null
    await startPendingLaunch(this.#storage, request.state, {
      sessionId: this.#session.sessionId,
      iss,
      binding,
      secrets: sealSecrets(config.encryptionKeys, request.state, { codeVerifier: request.codeVerifier, nonce: request.nonce }),
      smart: pinnedDiscovery(smart),
      createdAt: config.now(),
    })
    return { redirectUrl: request.url }
  }

  /**
   * Forgets a launch still pending: its callback will be refused (`INVALID_STATE`). The middleware calls it for
   * the oldest of a browser session's pending launches beyond the bound (SECURITY S37).
   *
   * @example
   * await client.cancelLaunch(new URL(redirectUrl).searchParams.get('state')!)
   */
  async cancelLaunch(state: string): Promise<void> {
    await forgetPendingLaunch(this.#storage, param('state', state))
  }

  /**
   * Verifies state (single use, this browser's), RFC 9207 `iss`, redeems the code with PKCE, verifies the
   * id_token and stores the launch — under the regenerated session id when `opts.regenerate` is given.
   */
  callback(query: CallbackQuery, opts: CallbackOptions = {}): Promise<CallbackResult> {
    return this.#rt.observe('callback', { 'smart.multi_launch': this.#rt.config.enableMultiLaunch }, (observation) => this.#callback(query, opts, observation))
  }

  async #callback(query: CallbackQuery, opts: CallbackOptions, observation: Observation): Promise<CallbackResult> {
    const { config } = this.#rt
    const owns = (owner: string) => this.#session.owns(owner)
    if (query?.error !== undefined) {
      if (typeof query.state === 'string' && query.state !== '') await dropPendingLaunch(this.#storage, query.state, owns, this.#browser).catch(() => undefined)
      // Query parsers give arrays and objects too: `error[toString]=x` (extended parser) makes String() throw.
      const code = (typeof query.error === 'string' ? query.error : 'malformed').replace(/[^\w.-]/g, '').slice(0, 64)
      throw new SmartError('AUTHORIZATION_DENIED', `The EHR did not authorize the app (${code})`)
    }
    const code = param('code', query?.code)
    const state = param('state', query?.state)
    const pending = await consumePendingLaunch(this.#storage, state, owns, this.#browser, config.now())
    const secrets = secretsOf(config.encryptionKeys, state, pending)
    observation.set({ 'smart.iss': pending.iss })
    const as = this.#authorizationServer(pending.iss, pending.smart)
    checkResponseIssuer(pending.smart, query.iss)
    const answer = await redeemCode(as, { redirectUri: config.callbackUrl, code, state, codeVerifier: secrets.codeVerifier })
    const now = config.now()
    const tokens = tokenSetFrom(answer.response, now)
    const registration = registrationFor(config, pending.iss)
    const context = launchContextFrom(answer.response, registration.scope)
    try {
      checkPatientId(context.patient)
    } catch (err) {
      await this.#revoke(as, tokens)
      throw err
    }
    const idTokenClaims = answer.idToken
      ? await verifyIdToken(answer.idToken, { issuer: pending.smart.issuer, jwksUri: pending.smart.jwks_uri, clientId: registration.clientId, nonce: secrets.nonce, now: config.now, http: this.#rt.http })
      : null
    const id = newLaunchId()
    const completed: CompletedLaunch = {
      id, iss: pending.iss, tokens: this.#session.sealTokens(id, tokens), ...context,
      idTokenClaims: idTokenClaims as Record<string, unknown> | null, completedAt: now, lastUsedAt: now, startedAt: pending.createdAt,
    }
    // Nothing is stored before the session id is regenerated: a failed regeneration leaves nothing under a possibly fixated id.
    const sessionId = opts.regenerate ? await opts.regenerate() : this.#session.sessionId
    const committed = await this.#session.commit(sessionId, completed, {
      multiLaunch: config.enableMultiLaunch, bare: bareSelectors(this.#rt), proof: this.#browser, binding: pending.binding, pendingCreatedAt: pending.createdAt,
    })
    const launch = committed.launch!
    observation.set({ 'smart.patient_count': committed.launches, 'smart.intent': context.intent ?? '' })
    observation.patient(context.patient)
    // A later launch of the same EHR and patient (another tab) was kept: this one's tokens are not needed; nor
    // are those of the launches this one replaced or evicted (best effort: the callback does not fail for them).
    if (launch.id !== completed.id) await this.#revoke(as, tokens)
    await Promise.all(committed.dropped.map((gone) => this.#revokeLaunch(gone).catch(() => undefined)))
    // Single-launch mode too: a page that names its launch is never answered for a later one (SECURITY S35).
    const redirectUrl = withActivePatient(config.redirectUrl, launch.selector)
    return { redirectUrl, patient: context.patient, intent: context.intent, activePatient: launch.selector, browserKey: committed.browserKey }
  }

  /** A ReadyClient for the launch this request selects, refreshed first when near expiry. */
  async ready(): Promise<ReadyClient> {
    return (await this.#ready(null)).client
  }

  static {
    readyAtImpl = (client, version) => client.#ready(version)
  }

  async #ready(version: string | null): Promise<{ client: ReadyClient; version: string | null }> {
    const { config } = this.#rt
    const now = config.now()
    let resolved = await this.#session.resolve(now, version)
    let launch: LaunchRecord
    try {
      launch = this.#select(resolved, now)
    } catch (err) {
      // A copy may be behind the store (a launch added by a concurrent callback): refusals come from the store only.
      if (!resolved.fromCopy) throw err
      resolved = await this.#session.resolve(now)
      launch = this.#select(resolved, now)
    }
    let tokens = this.#session.tokensOf(launch)
    const expiresAt = tokens.expiresAt ?? Infinity
    if (config.autoRefresh && tokens.refreshToken && expiresAt - this.#refreshLead(tokens) <= now) {
      ({ launch, tokens } = await this.#refreshLaunch(resolved.sid, launch, tokens.accessToken))
    } else if (expiresAt <= now) {
      throw new SmartError('SESSION_EXPIRED', 'The SMART session has expired; launch the app again from the EHR')
    } else if (needsTouch(launch, this.#session.lifetimes, now)) {
      ({ launch, tokens } = await this.#touch(resolved.sid, launch))
    }
    const current = resolved.sid === this.#session.sessionId ? (this.#session.knownVersion() ?? null) : null
    return { client: this.#readyClient(resolved.sid, { launch, tokens }), version: current }
  }

  /** Always refreshes (single-flight per launch across processes), whatever the token's remaining lifetime. */
  async refresh(): Promise<ReadyClient> {
    const now = this.#rt.config.now()
    const resolved = await this.#session.resolve(now)
    const launch = this.#select(resolved, now)
    return this.#readyClient(resolved.sid, await this.#refreshLaunch(resolved.sid, launch, this.#session.tokensOf(launch).accessToken))
  }

  /**
   * Forgets SMART state and revokes its tokens: with an active patient, that launch only (refused when the
   * session has no such launch); otherwise every launch of the session.
   */
  logout(): Promise<void> {
    return this.#rt.observe('logout', {}, (observation) => this.#logout(observation))
  }

  async #logout(observation: Observation): Promise<void> {
    const now = this.#rt.config.now()
    const resolved = await this.#session.resolve(now)
    // With a header, a session that reaches nothing is refused like a request would be, never a quiet 204.
    if (resolved.record === null && this.#activePatient === null) return
    if (resolved.record === null) throw new SmartError('NO_SESSION', 'No SMART launch has completed in this session; launch the app from the EHR')
    const reachable = Object.values(resolved.record.launches).filter((launch) => resolved.held === null || resolved.held.has(launch.id))
    // With a header: exactly the launch it names (the same rules as a request; an ended one says so).
    const chosen = this.#activePatient === null
      ? reachable
      : [selectLaunch(resolved.record, { multiLaunch: true, activePatient: this.#activePatient, held: resolved.held, now, lifetimes: this.#session.lifetimes })]
    const ending = new Set(chosen.map((launch) => launch.id))
    const forgotten = await this.#session.update(resolved.sid, async (current) => {
      if (!current) return { result: [] as LaunchRecord[] }
      const gone = Object.values(current.launches).filter((launch) => ending.has(launch.id))
      const kept = Object.fromEntries(Object.entries(current.launches).filter(([id]) => !ending.has(id)))
      const ended = withEnded(current.ended, Object.fromEntries(gone.map((launch) => [launch.selector, { reason: 'closed' as const, at: now }])))
      return { record: { ...current, launches: kept, ended }, result: gone }
    })
    observation.set({ 'smart.launches_ended': forgotten.length })
    await Promise.all(forgotten.map((launch) => this.#revokeLaunch(launch)))
  }

  /**
   * After the app regenerated the session id without a callback: moves this session's launches to
   * `newSessionId` (SECURITY S22); the old id keeps a short grace for requests already on their way.
   */
  async moveSession(newSessionId: string): Promise<void> {
    if (typeof newSessionId !== 'string' || newSessionId === '') throw new TypeError('express-smart-on-fhir: newSessionId must be a non-empty string')
    if (newSessionId === this.#session.sessionId) return
    await this.#session.commit(newSessionId, null, {
      multiLaunch: this.#rt.config.enableMultiLaunch, bare: bareSelectors(this.#rt), proof: this.#browser, binding: null, pendingCreatedAt: null,
    })
  }

  #select(resolved: Resolved, now: number): LaunchRecord {
    const { config } = this.#rt
    return selectLaunch(resolved.record, {
      multiLaunch: config.enableMultiLaunch, activePatient: this.#activePatient, held: resolved.held, now, lifetimes: this.#session.lifetimes,
    })
  }

  /**
   * How long before expiry to refresh: `refreshLeewaySeconds`, but never more than half the token's lifetime
   * (one-minute sandbox tokens would otherwise be refreshed on every request).
   */
  #refreshLead(tokens: TokenSet): number {
    const leeway = this.#rt.config.refreshLeewaySeconds * 1000
    if (tokens.expiresAt === null || tokens.issuedAt === undefined) return leeway
    return Math.min(leeway, (tokens.expiresAt - tokens.issuedAt) / 2)
  }

  /** Records the launch's use (idle timeout); at most once per touch interval. */
  async #touch(sid: string, used: LaunchRecord): Promise<{ launch: LaunchRecord; tokens: TokenSet }> {
    const now = this.#rt.config.now()
    const launch = await this.#session.update(sid, async (current) => {
      const found = current?.launches[used.id]
      if (!current || !found || !isLive(found, this.#session.lifetimes, now)) throw new SmartError('SESSION_EXPIRED', 'The SMART session has expired; launch the app again from the EHR')
      const touched = { ...found, lastUsedAt: now }
      return { record: { ...current, launches: { ...current.launches, [used.id]: touched } }, result: touched }
    })
    return { launch, tokens: this.#session.tokensOf(launch) }
  }

  async #revoke(as: AuthorizationServer | null, tokens: TokenSet): Promise<void> {
    if (!as) return
    if (tokens.refreshToken) await revokeToken(as, tokens.refreshToken, 'refresh_token')
    await revokeToken(as, tokens.accessToken, 'access_token')
  }

  /** Revokes a stored launch's tokens at its own EHR. */
  async #revokeLaunch(launch: LaunchRecord): Promise<void> {
    await this.#revoke(await this.#authorizationServerOf(launch.iss), this.#session.tokensOf(launch))
  }

  async #authorizationServerOf(iss: string): Promise<AuthorizationServer | null> {
    return this.#authorizationServer(iss, await this.#rt.discover(iss).catch(() => null))
  }

  /** The launch with fresh tokens: refreshed by us, or by whoever held the session's lock before us. */
  async #refreshLaunch(sid: string, stale: LaunchRecord, staleAccessToken: string): Promise<{ launch: LaunchRecord; tokens: TokenSet }> {
    const launchId = stale.id
    const outcome = await singleFlight(this.#rt, `${sid}\u0000${launchId}`, () =>
      this.#session.update<{ launch: LaunchRecord; tokens: TokenSet } | SmartError>(sid, async (current) => {
        const launch = current?.launches[launchId]
        // A relaunch of the same EHR and patient replaced it while we waited for the lock: its tokens are new.
        const relaunched = launch ? undefined : Object.values(current?.launches ?? {}).find((other) => other.selector === stale.selector)
        if (relaunched) return { result: { launch: relaunched, tokens: this.#session.tokensOf(relaunched) } }
        if (!current || !launch) throw new SmartError('NO_SESSION', 'The SMART launch ended while refreshing; launch again')
        const tokens = this.#session.tokensOf(launch)
        // Someone else refreshed while we waited for the lock: use their tokens (a refresh token is single use).
        if (tokens.accessToken !== staleAccessToken) return { result: { launch, tokens } }
        if (!tokens.refreshToken) throw new SmartError('SESSION_EXPIRED', 'The SMART session has expired and cannot be refreshed; launch again')
        const as = this.#authorizationServer(launch.iss, await this.#rt.discover(launch.iss))
        try {
          const refreshToken = tokens.refreshToken
          const response = await this.#rt.observe('refresh', { 'smart.iss': launch.iss }, () => redeemRefreshToken(as, refreshToken))
          const now = this.#rt.config.now()
          const refreshed = tokenSetFrom(response, now, tokens)
          const scope = typeof response.scope === 'string' && response.scope ? response.scope : launch.scope
          const updated: LaunchRecord = { ...launch, scope, tokens: this.#session.sealTokens(launchId, refreshed), lastUsedAt: now }
          return { record: { ...current, launches: { ...current.launches, [launchId]: updated } }, result: { launch: updated, tokens: refreshed } }
        } catch (err) {
          if (!(err instanceof SmartError) || err.code !== 'SESSION_EXPIRED') throw err
          // A refused refresh (invalid_grant) ends this launch, and only this one: the next request does
          // not try again (S33), and other patients' launches keep their lifetime.
          const { [launchId]: ended, ...rest } = current.launches
          const endings = withEnded(current.ended, { [ended.selector]: { reason: 'refused', at: this.#rt.config.now() } })
          return { record: { ...current, launches: rest, ended: endings }, result: err }
        }
      }),
    )
    if (outcome instanceof SmartError) throw outcome
    return outcome
  }

  #readyClient(sid: string, { launch, tokens }: { launch: LaunchRecord; tokens: TokenSet }): ReadyClient {
    const refresh = this.#rt.config.autoRefresh ? async (stale: string) => (await this.#refreshLaunch(sid, launch, stale)).tokens.accessToken : null
    // Cached reads are never shared between sessions or launches.
    const cache = { store: fhirReadCacheFor(this.#rt), scope: `${sid}\u0000${launch.id}` }
    return new ReadyClient({ launch, accessToken: tokens.accessToken, http: this.#rt.http, refresh, cache, observe: this.#rt.observe })
  }

  #authorizationServer(iss: string, smart: SmartConfiguration): AuthorizationServer
  #authorizationServer(iss: string, smart: SmartConfiguration | null): AuthorizationServer | null
  #authorizationServer(iss: string, smart: SmartConfiguration | null): AuthorizationServer | null {
    if (!smart) return null
    const { config, http } = this.#rt
    const { clientId, server } = registrationFor(config, iss)
    return { iss, smart, clientId, server, http, allowHttp: config.allowNonHttpsLaunch }
  }
}
