import type { SmartClientConfiguration, SmartClientOptions } from '../config'
import { SmartError } from '../errors'
import { ReadyClient } from '../fhir/ReadyClient'
import { fhirReadCacheFor } from '../fhir/fhir-cache'
import type { Observation } from '../observe'
import type { BrowserProof } from '../session/browser-binding'
import { bareSelectors, isLive, needsTouch, selectLaunch, withEnded } from '../session/launch-identity'
import { forgetPendingLaunch } from '../session/pending-launch'
import { tokensOf } from '../session/sealed-tokens'
import { sessionCacheFor } from '../session/session-cache'
import { SessionState, type Resolved } from '../session/session-state'
import type { LaunchRecord, TokenSet } from '../storage/records'
import type { SmartStorage } from '../storage/SmartStorage'
import { authorize, type LaunchOptions } from './authorize'
import { completeCallback, type CallbackOptions, type CallbackQuery, type CallbackResult } from './callback'
import { param } from './params'
import { refreshLaunch, refreshLead } from './refresh'
import { revokeLaunch } from './revoke'
import { runtimeFor, type ClientParts, type Runtime } from './runtime'

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
  /**
   * What only this browser holds (its launch and browser cookies); the middleware reads it from the request.
   * Read only when needed (a callback, a moved session id): the middleware passes a getter, so that a request
   * served from its own session never parses its cookies.
   */
  browser?: BrowserProof
}

/**
 * The ReadyClient made for a stored launch record object, reused while requests are served from this process's copy
 * of that record version (a refresh, a touch, any write makes a new object); weakly keyed, it goes with the copy.
 * Its one mutable field, the access token a 401 refresh renews, concurrent requests of the launch may share.
 */
const readyClients = new WeakMap<LaunchRecord, { rt: Runtime; sid: string; accessToken: string; client: ReadyClient }>()

/** The ReadyClient made for `launch` under this runtime and session id with this access token, if any. */
function keptClient(launch: LaunchRecord, rt: Runtime, sid: string, accessToken: string): ReadyClient | undefined {
  const kept = readyClients.get(launch)
  return kept?.rt === rt && kept.sid === sid && kept.accessToken === accessToken ? kept.client : undefined
}

/**
 * The hot path of `requireSmartContext` (not public API), with no store call and no SmartClient: the ReadyClient
 * already made for this process's copy of the record version the request's session carries, when the selected
 * launch is live and neither a refresh nor a touch is due (`#ready`'s checks, in its order). Anything else — no
 * copy, a refusal, something due, no client made yet — is null: the request takes `readyAt` and the store's word.
 */
export function readyFromCopy(rt: Runtime, storage: SmartStorage, sessionId: string, version: string | null, activePatient: string | null): { client: ReadyClient; version: string } | null {
  if (version === null) return null
  const { config, lifetimes } = rt
  const now = config.now()
  const record = sessionCacheFor(rt, storage).get(sessionId, version, now)
  if (record === undefined) return null
  let launch: LaunchRecord
  try {
    launch = selectLaunch(record, { multiLaunch: config.enableMultiLaunch, activePatient, held: null, now, lifetimes })
  } catch {
    return null
  }
  const tokens = tokensOf(config.encryptionKeys, launch)
  const client = keptClient(launch, rt, sessionId, tokens.accessToken)
  if (client === undefined) return null
  const expiresAt = tokens.expiresAt ?? Infinity
  if (config.autoRefresh && tokens.refreshToken && expiresAt - refreshLead(config, tokens) <= now) return null
  if (expiresAt <= now || needsTouch(launch, lifetimes, now)) return null
  return { client, version }
}

type ReadyAt = (client: SmartClient, version: string | null) => Promise<{ client: ReadyClient; version: string | null }>
let readyAtImpl: ReadyAt

/**
 * `ready()` for the middleware (not public API): `version` is what the request's express-session session
 * carries; this process's copy of that version of the session record answers without a store read. Resolves
 * with the record's version now, for the middleware to keep in the session (null: keep none).
 */
export const readyAt: ReadyAt = (client, version) => readyAtImpl(client, version)

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
  readonly #sessionRef: SessionRef | null
  #proof: BrowserProof | null | undefined
  /** What the launch, callback and refresh steps work with (authorize.ts, callback.ts, refresh.ts). */
  readonly #parts: ClientParts

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
    this.#sessionRef = typeof session === 'string' ? null : session
    this.#session = new SessionState(storage, this.#rt.config, sessionId, sessionCacheFor(this.#rt, storage), () => this.#browser?.keys ?? [])
    // Single-launch mode honours it too: naming another patient than the session's is refused.
    this.#activePatient = active || null
    const client = this
    this.#parts = { rt: this.#rt, storage, session: this.#session, get browser() { return client.#browser } }
  }

  /** The browser's proof, read from the session reference once, when first needed. */
  get #browser(): BrowserProof | null {
    if (this.#proof === undefined) this.#proof = this.#sessionRef?.browser ?? null
    return this.#proof
  }

  /** EHR launch: checks the issuer (allow-list first, before any network call), discovers it and starts the authorization. */
  launch(params: { iss: string; launch: string }, opts: LaunchOptions = {}): Promise<{ redirectUrl: string }> {
    return this.#rt.observe('launch', {}, (observation) =>
      authorize(this.#parts, param('iss', params?.iss), param('launch', params?.launch), 'ehr', opts, observation))
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
      return authorize(this.#parts, iss, null, 'standalone', opts, observation)
    })
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
    return this.#rt.observe('callback', { 'smart.multi_launch': this.#rt.config.enableMultiLaunch }, (observation) => completeCallback(this.#parts, query, opts, observation))
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
    if (config.autoRefresh && tokens.refreshToken && expiresAt - refreshLead(config, tokens) <= now) {
      ({ launch, tokens } = await refreshLaunch(this.#parts, resolved.sid, launch, tokens.accessToken))
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
    return this.#readyClient(resolved.sid, await refreshLaunch(this.#parts, resolved.sid, launch, this.#session.tokensOf(launch).accessToken))
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
    await Promise.all(forgotten.map((launch) => revokeLaunch(this.#parts, launch)))
  }

  /**
   * After the app regenerated the session id without a callback: moves this session's launches to
   * `newSessionId` (SECURITY S22); the old id keeps a short grace for requests already on their way.
   */
  async moveSession(newSessionId: string): Promise<void> {
    if (typeof newSessionId !== 'string' || newSessionId === '') throw new TypeError('express-smart-on-fhir: newSessionId must be a non-empty string')
    if (newSessionId === this.#session.sessionId) return
    await this.#session.commit(newSessionId, null, {
      multiLaunch: this.#rt.config.enableMultiLaunch, bare: bareSelectors(this.#rt.config), proof: this.#browser, binding: null, pendingCreatedAt: null,
    })
  }

  #select(resolved: Resolved, now: number): LaunchRecord {
    const { config } = this.#rt
    return selectLaunch(resolved.record, {
      multiLaunch: config.enableMultiLaunch, activePatient: this.#activePatient, held: resolved.held, now, lifetimes: this.#session.lifetimes,
    })
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

  #readyClient(sid: string, { launch, tokens }: { launch: LaunchRecord; tokens: TokenSet }): ReadyClient {
    const rt = this.#rt
    const kept = keptClient(launch, rt, sid, tokens.accessToken)
    if (kept !== undefined) return kept
    // What a refresh on 401 needs (the store and the session's lock), not this request's browser or objects.
    const parts = { rt, session: new SessionState(this.#storage, rt.config, sid, sessionCacheFor(rt, this.#storage)) }
    const refresh = rt.config.autoRefresh ? async (stale: string) => (await refreshLaunch(parts, sid, launch, stale)).tokens.accessToken : null
    // Cached reads are never shared between sessions or launches.
    const cache = { store: fhirReadCacheFor(rt, rt.config.now), scope: `${sid}\u0000${launch.id}` }
    const client = new ReadyClient({ launch, accessToken: tokens.accessToken, http: rt.http, refresh, cache, observe: rt.observe })
    readyClients.set(launch, { rt, sid, accessToken: tokens.accessToken, client })
    return client
  }
}
