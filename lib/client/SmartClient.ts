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
import { keys, type LaunchRecord, type TokenSet } from '../storage/records'
import type { SmartStorage } from '../storage/SmartStorage'
import { PENDING_LAUNCH_TTL_SECONDS, consumePendingLaunch, startPendingLaunch } from './pending-launch'
import { fhirReadCacheFor } from './fhir-cache'
import { ReadyClient } from './ReadyClient'
import { runtimeFor, type Runtime } from './runtime'
import { SessionState, selectLaunch } from './session-state'

export type CallbackQuery = { code?: string; state?: string; iss?: string; error?: string; error_description?: string }
export type CallbackResult = { redirectUrl: string; patient: string | null; intent: string | null }
export type SessionRef = { sessionId: string; activePatient: string | null }

const MAX_PARAM_LENGTH = 4096

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

  constructor(sessionId: string, storage: SmartStorage, config: SmartClientConfiguration, options?: SmartClientOptions)
  constructor(session: SessionRef, storage: SmartStorage, config: SmartClientConfiguration, options: SmartClientOptions & { enableMultiLaunch: true })
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
    this.#session = new SessionState(storage, this.#rt.config, sessionId)
    this.#activePatient = this.#rt.config.enableMultiLaunch && active ? active : null
  }

  /** Checks the issuer (allow-list first, before any network call), discovers it and starts the authorization. */
  async launch(params: { iss: string; launch: string }): Promise<{ redirectUrl: string }> {
    const { config } = this.#rt
    const iss = param('iss', params?.iss)
    const launch = param('launch', params?.launch)
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
    const smart = await this.#rt.discover(iss)
    const request = await buildAuthorizationRequest(this.#authorizationServer(iss, smart), {
      redirectUri: config.callbackUrl,
      scope: config.scope,
      launch,
      openid: config.scopes.has('openid'),
    })
    await startPendingLaunch(this.#storage, request.state, {
      sessionId: this.#session.sessionId,
      iss,
      codeVerifier: request.codeVerifier,
      nonce: request.nonce,
      smart: snapshot(smart),
      createdAt: config.now(),
    })
    return { redirectUrl: request.url }
  }

  /** Verifies state (single use), RFC 9207 `iss`, redeems the code with PKCE, verifies the id_token, stores the launch. */
  async callback(query: CallbackQuery): Promise<CallbackResult> {
    const { config } = this.#rt
    if (query?.error !== undefined) {
      if (typeof query.state === 'string') await this.#storage.delete(keys.pending(query.state)).catch(() => undefined)
      const code = String(query.error).replace(/[^\w.-]/g, '').slice(0, 64)
      throw new SmartError('AUTHORIZATION_DENIED', `The EHR did not authorize the app (${code})`)
    }
    const code = param('code', query?.code)
    const state = param('state', query?.state)
    const pending = await consumePendingLaunch(this.#storage, state, this.#session.sessionId, config.now())
    const as = this.#authorizationServer(pending.iss, pending.smart)
    checkResponseIssuer(pending.smart, query.iss)
    const answer = await redeemCode(as, { redirectUri: config.callbackUrl, code, state, codeVerifier: pending.codeVerifier })
    const now = config.now()
    const tokens = tokenSetFrom(answer.response, now)
    const context = launchContextFrom(answer.response, config.scope)
    const idTokenClaims = answer.idToken
      ? await verifyIdToken(answer.idToken, { issuer: pending.smart.issuer, jwksUri: pending.smart.jwks_uri, clientId: config.clientId, nonce: pending.nonce, now: config.now, http: this.#rt.http })
      : null
    const record: LaunchRecord = { iss: pending.iss, tokens: this.#session.sealTokens(tokens), ...context, idTokenClaims: idTokenClaims as Record<string, unknown> | null, completedAt: now }
    const key = config.enableMultiLaunch ? (context.patient ?? '') : ''
    await this.#session.update(async (current) => ({
      // Single-launch: the newest completed launch replaces the session's context.
      record: { launches: config.enableMultiLaunch ? { ...current?.launches, [key]: record } : { [key]: record } },
      result: undefined,
    }))
    const redirectUrl = config.enableMultiLaunch && context.patient ? withPatient(config.redirectUrl, context.patient) : config.redirectUrl
    return { redirectUrl, patient: context.patient, intent: context.intent }
  }

  /** A ReadyClient for this session (multi-launch: for the active patient), refreshed first when near expiry. */
  async ready(): Promise<ReadyClient> {
    const { config } = this.#rt
    const { key, launch } = selectLaunch(await this.#session.read(), config.enableMultiLaunch, this.#activePatient)
    const tokens = this.#session.tokensOf(launch)
    const now = config.now()
    const expiresAt = tokens.expiresAt ?? Infinity
    if (config.autoRefresh && tokens.refreshToken && expiresAt - config.refreshLeewaySeconds * 1000 <= now) {
      return this.#readyClient(key, await this.#refreshLaunch(key, tokens.accessToken))
    }
    if (expiresAt <= now) throw new SmartError('SESSION_EXPIRED', 'The SMART session has expired; launch the app again from the EHR')
    return this.#readyClient(key, { launch, tokens })
  }

  /** Always refreshes (single-flight per session across processes), whatever the token's remaining lifetime. */
  async refresh(): Promise<ReadyClient> {
    const { key, launch } = selectLaunch(await this.#session.read(), this.#rt.config.enableMultiLaunch, this.#activePatient)
    return this.#readyClient(key, await this.#refreshLaunch(key, this.#session.tokensOf(launch).accessToken))
  }

  /** Forgets this session's SMART state (multi-launch with an active patient: that patient's) and revokes its tokens. */
  async logout(): Promise<void> {
    const active = this.#activePatient
    const forgotten = await this.#session.update(async (current) => {
      const launches = { ...current?.launches }
      const ending = active === null ? Object.keys(launches) : Object.keys(launches).filter((key) => key === active)
      const removed = ending.map((key) => launches[key])
      for (const key of ending) delete launches[key]
      return { record: { launches }, result: removed }
    })
    await Promise.all(forgotten.map((launch) => this.#revoke(launch)))
  }

  /**
   * After the app regenerated the session id (session fixation defence, SECURITY S22): moves this
   * session's completed launches to `newSessionId`, and lets launches still pending under the old id
   * complete under the new one. The old id keeps nothing usable.
   */
  async moveSession(newSessionId: string): Promise<void> {
    if (typeof newSessionId !== 'string' || newSessionId === '') throw new TypeError('express-smart-on-fhir: newSessionId must be a non-empty string')
    const oldSessionId = this.#session.sessionId
    if (newSessionId === oldSessionId) return
    await this.#session.update(async (current) => {
      if (current) {
        const target = new SessionState(this.#storage, this.#rt.config, newSessionId)
        await target.update(async (existing) => ({ record: { launches: { ...existing?.launches, ...current.launches } }, result: undefined }))
      }
      await this.#storage.set(keys.moved(oldSessionId), newSessionId, PENDING_LAUNCH_TTL_SECONDS)
      return { record: null, result: undefined }
    })
  }

  async #revoke(launch: LaunchRecord): Promise<void> {
    const tokens = this.#session.tokensOf(launch)
    const as = this.#authorizationServer(launch.iss, await this.#rt.discover(launch.iss).catch(() => null))
    if (!as) return
    if (tokens.refreshToken) await revokeToken(as, tokens.refreshToken, 'refresh_token')
    await revokeToken(as, tokens.accessToken, 'access_token')
  }

  /** The launch with fresh tokens: refreshed by us, or by whoever held the session's lock before us. */
  async #refreshLaunch(key: string, staleAccessToken: string): Promise<{ launch: LaunchRecord; tokens: TokenSet }> {
    const flight = `${this.#session.sessionId}\u0000${key}`
    const outcome = await singleFlight(this.#rt, flight, () =>
      this.#session.update<{ launch: LaunchRecord; tokens: TokenSet } | SmartError>(async (current) => {
        const launch = current?.launches[key]
        if (!current || !launch) throw new SmartError('NO_SESSION', 'The SMART launch ended while refreshing; launch again')
        const tokens = this.#session.tokensOf(launch)
        // Someone else refreshed while we waited for the lock: use their tokens (a refresh token is single use).
        if (tokens.accessToken !== staleAccessToken) return { record: current, result: { launch, tokens } }
        if (!tokens.refreshToken) throw new SmartError('SESSION_EXPIRED', 'The SMART session has expired and cannot be refreshed; launch again')
        const as = this.#authorizationServer(launch.iss, await this.#rt.discover(launch.iss))
        try {
          const response = await redeemRefreshToken(as, tokens.refreshToken)
          const refreshed = tokenSetFrom(response, this.#rt.config.now(), tokens)
          const scope = typeof response.scope === 'string' && response.scope ? response.scope : launch.scope
          const updated: LaunchRecord = { ...launch, scope, tokens: this.#session.sealTokens(refreshed) }
          return { record: { launches: { ...current.launches, [key]: updated } }, result: { launch: updated, tokens: refreshed } }
        } catch (err) {
          if (!(err instanceof SmartError) || err.code !== 'SESSION_EXPIRED') throw err
          // A refused refresh (invalid_grant) ends this launch, and only this one: the next request does
          // not try again (S33), and other patients' launches keep their lifetime.
          const { [key]: _ended, ...rest } = current.launches
          return { record: { launches: rest }, result: err }
        }
      }),
    )
    if (outcome instanceof SmartError) throw outcome
    return outcome
  }

  #readyClient(key: string, { launch, tokens }: { launch: LaunchRecord; tokens: TokenSet }): ReadyClient {
    const refresh = this.#rt.config.autoRefresh ? async (stale: string) => (await this.#refreshLaunch(key, stale)).tokens.accessToken : null
    // Cached reads are never shared between sessions or patients.
    const cacheScope = `${this.#session.sessionId}\u0000${launch.patient ?? ''}`
    return new ReadyClient({ launch, accessToken: tokens.accessToken, http: this.#rt.http, refresh, cache: fhirReadCacheFor(this.#rt), cacheScope })
  }

  #authorizationServer(iss: string, smart: SmartConfiguration): AuthorizationServer
  #authorizationServer(iss: string, smart: SmartConfiguration | null): AuthorizationServer | null
  #authorizationServer(iss: string, smart: SmartConfiguration | null): AuthorizationServer | null {
    if (!smart) return null
    const { config, http } = this.#rt
    return { iss, smart, clientId: config.clientId, server: config.knownFhirServers?.get(normalizeIssuer(iss)), http, allowHttp: config.allowNonHttpsLaunch }
  }
}

/** The discovery fields a callback needs, pinned at launch time (mix-up defence: the callback talks to the same server). */
function snapshot(smart: SmartConfiguration): SmartConfiguration {
  const { issuer, authorization_endpoint, token_endpoint, jwks_uri, revocation_endpoint, authorization_response_iss_parameter_supported } = smart
  return { issuer, authorization_endpoint, token_endpoint, jwks_uri, revocation_endpoint, authorization_response_iss_parameter_supported }
}

/** RFC 9207 (SECURITY S14): a returned `iss` must be the discovered issuer; required when the server says it sends one. */
function checkResponseIssuer(smart: SmartConfiguration, iss: string | undefined): void {
  if (iss === undefined) {
    if (smart.authorization_response_iss_parameter_supported === true) {
      throw new SmartError('ISSUER_MISMATCH', 'The authorization response lacks the "iss" its server promises (RFC 9207)')
    }
    return
  }
  if (typeof iss !== 'string' || (smart.issuer !== undefined && iss !== smart.issuer)) {
    throw new SmartError('ISSUER_MISMATCH', 'The authorization response comes from another issuer than the one this launch used (RFC 9207)')
  }
}

function withPatient(redirectUrl: string, patient: string): string {
  const [path, hash] = redirectUrl.split('#', 2)
  const joined = `${path}${path.includes('?') ? '&' : '?'}patient=${encodeURIComponent(patient)}`
  return hash === undefined ? joined : `${joined}#${hash}`
}
