import type { ResolvedConfig } from '../config'
import { SmartError } from '../errors'
import { seal, unseal } from '../storage/encryption'
import { withStorageLock } from '../storage/lock'
import {
  keys, readAliases, readStoredSession,
  type Aliases, type LaunchRecord, type SessionRecord, type StoredSession, type TokenSet,
} from '../storage/records'
import type { SmartStorage } from '../storage/SmartStorage'
import { addLaunch, deadlineOf, liveLaunches, newVersion, type CompletedLaunch, type Lifetimes } from './launch-identity'
import { PENDING_LAUNCH_TTL_SECONDS } from './pending-launch'
import type { SessionCache } from './session-cache'

/**
 * How long a session id the callback regenerated away from still answers requests already on their way
 * (other tabs' requests sent with the old cookie), and how long a concurrent callback of the same browser
 * may still join the session the first one moved to.
 */
export const MOVE_GRACE_MS = 10_000
/** Forwards and links never chain further than this (each callback adds one hop at most). */
const MAX_HOPS = 8

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

/** A commit's outcome: the launch as stored, and how many launches the session holds. */
export interface Committed {
  launch: LaunchRecord | null
  launches: number
}

/** What a change under the session's lock leaves: a new record, null to end the session, undefined for no write. */
export type Change<T> = (current: SessionRecord | null) => Promise<{ record?: SessionRecord | null; result: T }>

/**
 * One browser session's completed launches in the storage: read in one call (the hot path), changed only
 * under the session's lock, each launch's tokens sealed at rest when an encryption key is set. When the
 * callback regenerates the session id, the launches move to the new id and the old id becomes a forward.
 */
export class SessionState {
  readonly #lifetimes: Lifetimes

  constructor(
    private readonly storage: SmartStorage,
    private readonly config: ResolvedConfig,
    readonly sessionId: string,
    private readonly cache: SessionCache,
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
   * The launches this session id reaches now: its own, a link's, or a forward's held ones within the grace.
   * With `version` (what the request's session carries), this process's copy of that version answers without
   * a store read.
   */
  async resolve(now: number, version: string | null = null): Promise<Resolved> {
    const copy = version === null ? undefined : this.cache.get(this.sessionId, version, now)
    if (copy) return { sid: this.sessionId, record: copy, held: null, fromCopy: true }
    let sid = this.sessionId
    let held: Set<string> | null = null
    for (let hop = 0; hop <= MAX_HOPS; hop++) {
      const stored = await this.#load(sid)
      if (stored === null || stored.kind === 'session') return { sid, record: stored, held, fromCopy: false }
      if (stored.kind === 'forward') {
        if (now - stored.at > MOVE_GRACE_MS) break
        held = new Set(stored.held.filter((id) => held === null || held.has(id)))
      }
      sid = stored.to
    }
    return { sid, record: null, held, fromCopy: false }
  }

  /** The version of this session's record as this process last read or wrote it (what the middleware keeps). */
  knownVersion(): string | undefined {
    return this.cache.versionOf(this.sessionId)
  }

  /** Where `sid` ended up, following links and forwards (of any age still stored). */
  async #canonical(sid: string): Promise<string> {
    for (let hop = 0; hop <= MAX_HOPS; hop++) {
      const stored = await this.#load(sid)
      if (stored === null || stored.kind === 'session') return sid
      sid = stored.to
    }
    return sid
  }

  /** Whether a launch started under `owner` belongs to this browser: same id, or the same session after moves. */
  async owns(owner: string): Promise<boolean> {
    if (owner === this.sessionId) return true
    return (await this.#canonical(owner)) === (await this.#canonical(this.sessionId))
  }

  tokensOf(launch: LaunchRecord): TokenSet {
    const { tokens } = launch
    if ('sealed' in tokens) {
      if (this.config.encryptionKeys.length === 0) throw new SmartError('SESSION_EXPIRED', 'Stored tokens are encrypted but no encryptionKey is set; launch again')
      return unseal(this.config.encryptionKeys, tokens.sealed, sealedFor(launch.id)) as TokenSet
    }
    return tokens
  }

  /** The tokens of launch `launchId` as stored: sealed (AES-256-GCM) when an encryption key is set. */
  sealTokens(launchId: string, tokens: TokenSet): LaunchRecord['tokens'] {
    return this.config.encryptionKeys.length > 0 ? { sealed: seal(this.config.encryptionKeys, tokens, sealedFor(launchId)) } : tokens
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
   * Adds a completed launch to this browser's session and, when the callback regenerated the session id
   * (`newSid` ≠ this id), moves the session there (SECURITY S22):
   * - the usual case: every launch moves to `newSid`; this id becomes a forward that, for a short grace,
   *   still reaches the launches it held (never the new one), and lets its pending launches complete;
   * - a callback concurrent with another of the same browser (this id was moved away less than the grace
   *   ago, after this launch started): it joins the session the other moved to, and `newSid` links there,
   *   so whichever cookie the browser keeps reaches both launches;
   * - a stale id (moved away longer ago): nothing of it is reachable; `newSid` starts with this launch only.
   * With `newSid` equal to this id (no regeneration: SmartClient used on its own), the launch is added in place.
   * Returns the launch as stored (its selector; null when `added` is null) and how many the session now holds.
   */
  async commit(newSid: string, added: CompletedLaunch | null, opts: { multiLaunch: boolean; pendingCreatedAt: number | null }): Promise<Committed> {
    const now = this.config.now()
    const add = (record: SessionRecord | null, aliases: Aliases, join: boolean) =>
      added ? addLaunch(record, aliases, added, { multiLaunch: opts.multiLaunch, join, now, lifetimes: this.#lifetimes }) : { record, aliases, launch: null }
    const committed = (result: { record: SessionRecord | null; launch: LaunchRecord | null }): Committed =>
      ({ launch: result.launch, launches: Object.keys(liveLaunches(result.record, this.#lifetimes, now)).length })
    for (let attempt = 0; attempt < MAX_HOPS; attempt++) {
      const { sid, forwardedAt } = await this.#walk()
      const outcome = await this.#lock(sid, async () => {
        const stored = await this.#load(sid)
        if (stored !== null && stored.kind !== 'session') return 'moved' as const
        const aliases = readAliases(await this.storage.get(keys.aliases(sid)))
        if (forwardedAt === null && newSid !== this.sessionId) {
          const moved = add(stored, aliases, false)
          await this.#write(newSid, moved.record)
          await this.#writeAliases(newSid, moved.aliases)
          const held = Object.keys(liveLaunches(stored, this.#lifetimes, now))
          this.cache.delete(sid)
          await this.storage.set(keys.session(sid), { kind: 'forward', to: newSid, at: now, held }, PENDING_LAUNCH_TTL_SECONDS)
          return committed(moved)
        }
        const concurrent = forwardedAt !== null && now - forwardedAt <= MOVE_GRACE_MS && (opts.pendingCreatedAt ?? -Infinity) < forwardedAt
        if (forwardedAt === null || concurrent) {
          const joined = add(stored, aliases, concurrent)
          await this.#write(sid, joined.record)
          await this.#writeAliases(sid, joined.aliases)
          if (newSid !== this.sessionId) await this.storage.set(keys.session(newSid), { kind: 'link', to: sid }, this.config.sessionTtlSeconds)
          return committed(joined)
        }
        const fresh = add(null, {}, false)
        await this.#write(newSid, fresh.record)
        await this.#writeAliases(newSid, fresh.aliases)
        return committed(fresh)
      })
      if (outcome !== 'moved') return outcome
    }
    throw new SmartError('STORAGE_UNAVAILABLE', 'The SMART session kept moving while the callback was stored; try again')
  }

  /** Follows this id's links and forwards to the session record; notes when a forward was crossed. */
  async #walk(): Promise<{ sid: string; forwardedAt: number | null }> {
    let sid = this.sessionId
    let forwardedAt: number | null = null
    for (let hop = 0; hop <= MAX_HOPS; hop++) {
      const stored = await this.#load(sid)
      if (stored === null || stored.kind === 'session') break
      if (stored.kind === 'forward') forwardedAt ??= stored.at
      sid = stored.to
    }
    return { sid, forwardedAt }
  }

  /**
   * Writes the live launches with a fresh version, for as long as the longest-lived of them may live
   * (absolute and idle timeouts, SECURITY S24): the store never keeps tokens past their launch's end.
   */
  async #write(sid: string, record: SessionRecord | null): Promise<void> {
    const now = this.config.now()
    const launches = liveLaunches(record, this.#lifetimes, now)
    const deadlines = Object.values(launches).map((launch) => deadlineOf(launch, this.#lifetimes))
    this.cache.delete(sid)
    if (deadlines.length === 0) return this.storage.delete(keys.session(sid))
    const ttl = Math.ceil((Math.max(...deadlines) - now) / 1000)
    const stored: SessionRecord = { kind: 'session', version: newVersion(), launches }
    await this.storage.set(keys.session(sid), stored, ttl)
    this.cache.set(sid, stored, now)
  }

  async #writeAliases(sid: string, aliases: Aliases): Promise<void> {
    if (Object.keys(aliases).length > 0) await this.storage.set(keys.aliases(sid), aliases, this.config.sessionTtlSeconds)
  }
}

/**
 * The AAD of a launch's sealed tokens: its launch id, which moves with it when the session id is regenerated.
 * Sealed tokens copied into any other launch record do not decrypt.
 */
const sealedFor = (launchId: string) => `launch:${launchId}`

export function lifetimesOf(config: ResolvedConfig): Lifetimes {
  return { absoluteMs: config.sessionTtlSeconds * 1000, idleMs: config.idleTimeoutSeconds === null ? null : config.idleTimeoutSeconds * 1000 }
}
