/**
 * A bounded in-process cache of FHIR GET answers. Keys are built by ReadyClient and always start with
 * its session-and-patient scope, so entries are never shared between sessions or patients.
 *
 * @example
 * const cache = createFhirReadCache(500)
 * cache.set('scope\u0000https://ehr.example/fhir/Patient/1', patient, 60)
 * cache.get('scope\u0000https://ehr.example/fhir/Patient/1')   // a copy of patient, for 60 s
 */
export interface FhirReadCache {
  /** A copy of the live entry, or undefined when absent or expired. */
  get(key: string): unknown
  set(key: string, value: unknown, ttlSeconds: number): void
  delete(key: string): void
  /** Entries held, expired ones not yet evicted included. */
  readonly size: number
}

/** Throws a TypeError unless `ttlSeconds` is a positive finite number of seconds. */
export function checkTtlSeconds(ttlSeconds: unknown): void {
  if (typeof ttlSeconds !== 'number' || !(ttlSeconds > 0) || !Number.isFinite(ttlSeconds)) {
    throw new TypeError('cache.ttlSeconds must be a positive number of seconds')
  }
}

/** How many answers one SmartClient configuration keeps. */
export const DEFAULT_FHIR_CACHE_ENTRIES = 500

/**
 * An LRU cache of at most `maxEntries` answers, each kept for its own time to live.
 *
 * @example
 * const cache = createFhirReadCache(100, () => clock.now())
 */
export function createFhirReadCache(maxEntries: number = DEFAULT_FHIR_CACHE_ENTRIES, now: () => number = Date.now): FhirReadCache {
  if (!Number.isInteger(maxEntries) || maxEntries <= 0) throw new TypeError('createFhirReadCache: maxEntries must be a positive integer')
  // A Map iterates in insertion order: re-inserting on every hit makes its first key the least recently used.
  const entries = new Map<string, { value: unknown; expiresAt: number }>()
  return {
    get(key) {
      const entry = entries.get(key)
      if (!entry) return undefined
      entries.delete(key)
      if (entry.expiresAt <= now()) return undefined
      entries.set(key, entry)
      // A copy: one request handler mutating what it read must not change what the next one reads.
      return structuredClone(entry.value)
    },
    set(key, value, ttlSeconds) {
      checkTtlSeconds(ttlSeconds)
      entries.delete(key)
      entries.set(key, { value: structuredClone(value), expiresAt: now() + ttlSeconds * 1000 })
      while (entries.size > maxEntries) entries.delete(entries.keys().next().value as string)
    },
    delete(key) {
      entries.delete(key)
    },
    get size() {
      return entries.size
    },
  }
}

const ownerCaches = new WeakMap<object, FhirReadCache>()

/**
 * The read cache of `owner`, made with the clock `now` on first use: the client keys it by its runtime (one
 * configuration). ReadyClients are made per request, so the cache has to live with the owner to outlive them.
 *
 * @example
 * new ReadyClient({ ...init, cache: { store: fhirReadCacheFor(runtime, runtime.config.now), scope: `${sessionId}\u0000${launchId}` } })
 */
export function fhirReadCacheFor(owner: object, now: () => number): FhirReadCache {
  let cache = ownerCaches.get(owner)
  if (!cache) ownerCaches.set(owner, (cache = createFhirReadCache(DEFAULT_FHIR_CACHE_ENTRIES, now)))
  return cache
}
