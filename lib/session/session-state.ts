import type { ResolvedConfig } from '../config'
import { SmartError } from '../errors'
import { withStorageLock } from '../storage/lock'
import {
  keys, readStoredSession,
  type EndReason, type LaunchRecord, type SessionRecord, type StoredSession, type TokenSet,
} from '../storage/records'
import type { SmartStorage } from '../storage/SmartStorage'
import { addLaunch, deadlineOf, lapseOf, lifetimesOf, liveLaunches, newVersion, withEnded, type CompletedLaunch, type Lifetimes } from './launch-identity'
import { isSessionBrowser, newBrowserKey, ownsSession, withProof, type BrowserProof } from './browser-binding'
import { PENDING_LAUNCH_TTL_SECONDS } from './pending-launch'
import { sealTokens, tokensOf } from './sealed-tokens'
import type { SessionCache } from './session-cache'

/**
 * For sessions made without the middleware (no browser cookie): how long a session id the callback
 * regenerated away from still answers requests already on their way, with the launches it held.
 */
export const MOVE_GRACE_MS = 10_000
/**
 * Forwards are followed at most this far. Each callback adds one hop for a browser that kept an older id (a
 * lost answer); a walk that crosses more than one shortens the path of the id it started from.
 */
const MAX_HOPS = 32

/** A session's launches as a request reaches them. */
export interface Resolved {
  /** The session id whose record holds the launches: where their updates go. */
  sid: string
  record: SessionRecord | null
  /** Set when the request came through a forward within its grace: it reaches only these launch ids. */
  held: ReadonlySet<string> | null
  /** True when `record` is this process's copy, not a store read: refuse nothing on its word. */
  fromCopy: boolean
}

/** A commit's outcome: the launch as stored, how many launches the session holds, its browser cookie's value, and the launches it put out. */
export interface Committed {
  launch: LaunchRecord | null
  launches: number
  browserKey: string | null
  /** Launches replaced or evicted by this one: their tokens are to be revoked. */
  dropped: LaunchRecord[]
}

/** What a callback adds, and what it knows of the browser. */
export interface CommitOptions {
  multiLaunch: boolean
  /** Selectors are bare patient ids (the app trusts exactly one EHR). */
  bare: boolean
  /** The browser's cookies (middleware), or null (SmartClient used directly: the session id is the browser). */
  proof: BrowserProof | null
  /** SHA-256 of the added launch's launch cookie, kept as a concurrent tab's proof; null without one. */
  binding: string | null
  /** When the added launch's authorization started (null for a move without a launch). */
  pendingCreatedAt: number | null
}

/** What a change under the session's lock leaves: a new record, null to end the session, undefined for no write. */
export type Change<T> = (current: SessionRecord | null) => Promise<{ record?: SessionRecord | null; result: T }>

/**
 * One browser session's completed launches in the storage: read in one call (the hot path), changed only
 * under the session's lock, each launch's tokens sealed at rest when an encryption key is set. When the
 * callback regenerates the session id, the launches move to the new id and the old id becomes a forward,
 * which only the same browser follows (browser-binding.ts).
 */
export class SessionState {
  readonly #lifetimes: Lifetimes

  constructor(
    private readonly storage: SmartStorage,
    private readonly config: ResolvedConfig,
    readonly sessionId: string,
    private readonly cache: SessionCache,
    /** The request's browser cookie values (middleware); none without the middleware. */
    private readonly browserKeys: () => readonly string[] = () => [],
  ) {
    this.#lifetimes = lifetimesOf(config)
  }

  get lifetimes(): Lifetimes {
    return this.#lifetimes
  }

  async #load(sid: string): Promise<StoredSession | null> {
    const stored = readStoredSession(await this.storage.get(keys.session(sid)))
    if (stored?.kind === 'session') this.cache.set(sid, stored, this.config.now())
    else this.cache.delete(sid)
    return stored
  }

  /**
   * The launches this session id reaches now: its own, a link's, or through a forward those of the session
   * its browser moved to (with that browser's cookie; without the middleware, the held ones within the grace).
   * With `version` (what the request's session carries), this process's copy of that version answers without
   * a store read.
   */
  async resolve(now: number, version: string | null = null): Promise<Resolved> {
    const copy = version === null ? undefined : this.cache.get(this.sessionId, version, now)
    if (copy) return { sid: this.sessionId, record: copy, held: null, fromCopy: true }
    let sid = this.sessionId
    let held: Set<string> | null = null
    let crossed = 0
    let lapsed = false
    for (let hop = 0; hop <= MAX_HOPS; hop++) {
      const stored = await this.#load(sid)
      if (stored === null) return { sid, record: null, held, fromCopy: false }
      if (stored.kind === 'session') {
        if (crossed === 0) return { sid, record: stored, held: null, fromCopy: false }
        if (stored.browser !== undefined) {
          if (!isSessionBrowser(stored, this.browserKeys())) return { sid, record: null, held: null, fromCopy: false }
          if (crossed > 1) await this.#shorten(sid, now)
          return { sid, record: stored, held: null, fromCopy: false }
        }
        return { sid, record: lapsed ? null : stored, held, fromCopy: false }
      }
      if (stored.kind === 'forward') {
        crossed++
        lapsed ||= now - stored.at > MOVE_GRACE_MS
        held = new Set(stored.held.filter((id) => held === null || held.has(id)))
      }
      sid = stored.to
    }
    return { sid, record: null, held, fromCopy: false }
  }

  /** Points this id's forward straight at `to` (best effort: a failure only leaves the longer path). */
  async #shorten(to: string, now: number): Promise<void> {
    if (to === this.sessionId) return
    await this.storage.set(keys.session(this.sessionId), { kind: 'forward', to, at: now, held: [] }, this.config.sessionTtlSeconds).catch(() => undefined)
  }

  /** The version of this session's record as this process last read or wrote it (what the middleware keeps). */
  knownVersion(): string | undefined {
    return this.cache.versionOf(this.sessionId)
  }

  /** Where `sid` ended up, following links and forwards (of any age still stored). */
  async #canonical(sid: string): Promise<string> {
    return (await this.#walk(sid)).sid
  }

  /** Whether a launch started under `owner` (without a browser binding) belongs to this session: same id, or the same session after moves. */
  async owns(owner: string): Promise<boolean> {
    if (owner === this.sessionId) return true
    return (await this.#canonical(owner)) === (await this.#canonical(this.sessionId))
  }

  tokensOf(launch: LaunchRecord): TokenSet {
    return tokensOf(this.config.encryptionKeys, launch)
  }

  /** The tokens of launch `launchId` as stored: sealed (AES-256-GCM) when an encryption key is set. */
  sealTokens(launchId: string, tokens: TokenSet): LaunchRecord['tokens'] {
    return sealTokens(this.config.encryptionKeys, launchId, tokens)
  }

  #lock<T>(sid: string, work: () => Promise<T>): Promise<T> {
    const { httpTimeoutMs } = this.config
    const lockOptions = { ttlSeconds: Math.ceil(httpTimeoutMs / 1000) * 3 + 5, waitMs: httpTimeoutMs * 2 + 2000 }
    return withStorageLock(this.storage, keys.lock(sid), lockOptions, work)
  }

  /**
   * Read-modify-write of the launches at `sid` under its lock (one writer at a time across every process
   * sharing the store). When `sid` moved meanwhile, the change follows it.
   */
  async update<T>(sid: string, change: Change<T>): Promise<T> {
    for (let hop = 0; hop <= MAX_HOPS; hop++) {
      const outcome = await this.#lock(sid, async (): Promise<{ done: true; result: T } | { done: false; next: string }> => {
        const stored = await this.#load(sid)
        if (stored !== null && stored.kind !== 'session') return { done: false, next: stored.to }
        const { record, result } = await change(stored)
        if (record !== undefined) await this.#write(sid, record)
        return { done: true, result }
      })
      if (outcome.done) return outcome.result
      sid = outcome.next
    }
    throw new SmartError('NO_SESSION', 'The SMART session moved too many times; launch again')
  }

  /**
   * Adds a completed launch and, when the callback regenerated the session id (`newSid` ≠ this id), moves
   * the session there (SECURITY S22, S34):
   * - the session this id reaches belongs to the calling browser (browser-binding.ts): every launch moves to
   *   `newSid` with it, and the id it had becomes a forward that only this browser follows;
   * - otherwise (no session, or another browser's — a planted id): `newSid` starts with this launch only, under
   *   a new browser cookie, and the other session is left as it was. An id with nothing stored under it
   *   forwards to `newSid` (a concurrent tab of this browser may still call back with it).
   * With `newSid` equal to this id (no regeneration: SmartClient used on its own), the launch is added in place.
   */
  async commit(newSid: string, added: CompletedLaunch | null, opts: CommitOptions): Promise<Committed> {
    const now = this.config.now()
    for (let attempt = 0; attempt < MAX_HOPS; attempt++) {
      const { sid, crossed, movedAt, origin } = await this.#walk(this.sessionId)
      const outcome = await this.#lock(sid, async (): Promise<Committed | 'moved'> => {
        const stored = await this.#load(sid)
        if (stored !== null && stored.kind !== 'session') return 'moved'
        if (opts.proof === null && stored?.browser === undefined && movedAt !== null && now - movedAt <= MOVE_GRACE_MS && (opts.pendingCreatedAt ?? -Infinity) < movedAt) {
          return this.#join(sid, stored, newSid, added, opts, now)
        }
        const owned = ownsSession(stored, crossed, opts.proof, now)
        const base = owned ? stored : null
        const browser = base?.browser ?? (opts.proof ? newBrowserKey() : undefined)
        const { record, launch, dropped } = added
          ? addLaunch(base, added, { multiLaunch: opts.multiLaunch, bare: opts.bare, now, lifetimes: this.#lifetimes })
          : { record: base ?? { kind: 'session' as const, version: '', launches: {} }, launch: null, dropped: [] }
        const written = await this.#write(newSid, { ...record, browser, proofs: withProof(base?.proofs, opts.binding, now) })
        if (newSid !== sid && owned) {
          this.cache.delete(sid)
          const held = Object.keys(liveLaunches(stored, this.#lifetimes, now))
          const ttl = browser === undefined ? PENDING_LAUNCH_TTL_SECONDS : this.config.sessionTtlSeconds
          await this.storage.set(keys.session(sid), { kind: 'forward', to: newSid, at: now, held }, ttl)
          // The id this browser called back with forwards straight there too (it may have been several moves behind).
          if (crossed && browser !== undefined) await this.#shorten(newSid, now)
        } else if (origin === null && this.sessionId !== newSid) {
          await this.storage.set(keys.session(this.sessionId), { kind: 'forward', to: newSid, at: now, held: [] }, PENDING_LAUNCH_TTL_SECONDS)
        }
        return { launch, launches: Object.keys(written?.launches ?? {}).length, browserKey: browser ?? null, dropped }
      })
      if (outcome !== 'moved') return outcome
    }
    throw new SmartError('STORAGE_UNAVAILABLE', 'The SMART session kept moving while the callback was stored; try again')
  }

  /**
   * Sessions made without the middleware (no browser): a callback concurrent with another of the same session
   * (its id was moved away less than the grace ago, after this launch started) joins the session the other
   * moved to, and `newSid` links there, so that either id reaches both launches. The session id is all such
   * an app has to tell browsers apart.
   */
  async #join(sid: string, stored: SessionRecord | null, newSid: string, added: CompletedLaunch | null, opts: CommitOptions, now: number): Promise<Committed> {
    const { record, launch, dropped } = added
      ? addLaunch(stored, added, { multiLaunch: opts.multiLaunch, bare: opts.bare, now, lifetimes: this.#lifetimes })
      : { record: stored, launch: null, dropped: [] }
    const written = await this.#write(sid, record)
    if (newSid !== this.sessionId) await this.storage.set(keys.session(newSid), { kind: 'link', to: sid }, this.config.sessionTtlSeconds)
    return { launch, launches: Object.keys(written?.launches ?? {}).length, browserKey: null, dropped }
  }

  /** Follows `from`'s links and forwards to the session record; notes whether (and when first) a forward was crossed, and what `from` itself holds. */
  async #walk(from: string): Promise<{ sid: string; crossed: boolean; movedAt: number | null; origin: StoredSession | null }> {
    let sid = from
    let movedAt: number | null = null
    let origin: StoredSession | null = null
    for (let hop = 0; hop <= MAX_HOPS; hop++) {
      const stored = await this.#load(sid)
      if (hop === 0) origin = stored
      if (stored === null || stored.kind === 'session') break
      if (stored.kind === 'forward') movedAt ??= stored.at
      sid = stored.to
    }
    return { sid, crossed: movedAt !== null, movedAt, origin }
  }

  /**
   * Writes the live launches with a fresh version, for as long as the longest-lived of them may live
   * (absolute and idle timeouts, SECURITY S24): the store never keeps tokens past their launch's end.
   * Launches past their lifetime are remembered as ended. A session without live launches keeps, without any
   * token, its browser and ended launches for `sessionTtlSeconds`. Returns what was written (null: deleted).
   */
  async #write(sid: string, record: SessionRecord | null): Promise<SessionRecord | null> {
    const now = this.config.now()
    const launches = liveLaunches(record, this.#lifetimes, now)
    const lapsed: Record<string, { reason: EndReason; at: number }> = {}
    for (const launch of Object.values(record?.launches ?? {})) {
      if (!(launch.id in launches)) lapsed[launch.selector] = { reason: lapseOf(launch, this.#lifetimes, now), at: now }
    }
    const ended = withEnded(record?.ended, lapsed)
    const deadlines = Object.values(launches).map((launch) => deadlineOf(launch, this.#lifetimes))
    this.cache.delete(sid)
    const keep = record !== null && (deadlines.length > 0 || record.browser !== undefined || Object.keys(ended).length > 0)
    if (!keep) {
      await this.storage.delete(keys.session(sid))
      return null
    }
    const ttl = deadlines.length > 0 ? Math.ceil((Math.max(...deadlines) - now) / 1000) : this.config.sessionTtlSeconds
    const stored: SessionRecord = { kind: 'session', version: newVersion(), launches }
    if (record.browser !== undefined) stored.browser = record.browser
    if (record.proofs?.length) stored.proofs = record.proofs
    if (Object.keys(ended).length > 0) stored.ended = ended
    await this.storage.set(keys.session(sid), stored, ttl)
    this.cache.set(sid, stored, now)
    return stored
  }
}
