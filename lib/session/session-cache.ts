import type { SessionRecord } from '../storage/records'
import type { SmartStorage } from '../storage/SmartStorage'

/**
 * This process's copies of session records, so that a request costs no store read beyond express-session's
 * own look-up: a copy is used only when the version the request's session carries (written there by the
 * middleware whenever the record changes) is the copy's, and only for a short while. Refusals never come from
 * a copy: the caller reads the store again before refusing.
 */
export interface SessionCache {
  /** The copy of `sid`'s record at `version`, when this process holds it and it is fresh enough. */
  get(sid: string, version: string, now: number): SessionRecord | undefined
  /** The version of the newest record of `sid` this process read or wrote, if it still holds it. */
  versionOf(sid: string): string | undefined
  set(sid: string, record: SessionRecord, now: number): void
  delete(sid: string): void
  readonly size: number
}

/**
 * How long a copy may answer without a store read even when the versions match: a bound on staleness should
 * an app route write back an older copy of the express-session session (express-session's last write wins).
 */
export const MAX_COPY_AGE_MS = 2000
/** Copies kept per configuration and store at most; the least recently used go first. */
export const MAX_CACHED_SESSIONS = 10_000

/**
 * A copy older than MAX_COPY_AGE_MS can never answer again, so it is dropped: when asked for, and from the
 * least recently used end whenever a copy is added. The cache then holds about the sessions of the last two
 * seconds, not the last 10,000 (heap per session, issue 24), and MAX_CACHED_SESSIONS bounds a burst.
 */
export function createSessionCache(maxEntries = MAX_CACHED_SESSIONS): SessionCache {
  const entries = new Map<string, { record: SessionRecord; at: number }>()
  const expired = (at: number, now: number) => now - at > MAX_COPY_AGE_MS || now < at
  return {
    get(sid, version, now) {
      const entry = entries.get(sid)
      if (!entry) return undefined
      if (expired(entry.at, now)) {
        entries.delete(sid)
        return undefined
      }
      if (entry.record.version !== version) return undefined
      entries.delete(sid)
      entries.set(sid, entry)
      return entry.record
    },
    versionOf(sid) {
      return entries.get(sid)?.record.version
    },
    set(sid, record, now) {
      entries.delete(sid)
      entries.set(sid, { record, at: now })
      for (const [oldest, entry] of entries) {
        if (entries.size <= maxEntries && !expired(entry.at, now)) break
        entries.delete(oldest)
      }
    },
    delete(sid) {
      entries.delete(sid)
    },
    get size() {
      return entries.size
    },
  }
}

const caches = new WeakMap<object, WeakMap<SmartStorage, SessionCache>>()

/**
 * The cache of `owner` over one storage: the client keys it by its runtime (one configuration), so that every
 * request of a middleware shares it.
 */
export function sessionCacheFor(owner: object, storage: SmartStorage): SessionCache {
  let byStorage = caches.get(owner)
  if (!byStorage) caches.set(owner, (byStorage = new WeakMap()))
  let cache = byStorage.get(storage)
  if (!cache) byStorage.set(storage, (cache = createSessionCache()))
  return cache
}
