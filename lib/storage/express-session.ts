import type { SessionData, Store } from 'express-session'
import { boundedStorageCall, type SmartStorage } from './SmartStorage'
import { processMutex } from './lock'

/**
 * Options of `expressSessionStorage`.
 *
 * @example
 * const storage = expressSessionStorage(store, { prefix: 'smart:', timeoutMs: 2000 })
 */
export interface ExpressSessionStorageOptions {
  /**
   * Prepended to every key, so SMART records never collide with session ids. Default `'smart:'`.
   * No `{` or `}`: on a Redis Cluster those would make a hash tag of the prefix.
   */
  prefix?: string
  /** TTL for values stored without one. Default 86400 (one day). */
  ttlSeconds?: number
  /** Every store call fails with `STORAGE_UNAVAILABLE` after this long. Default 3000. */
  timeoutMs?: number
}

/** What a SMART value looks like inside the session store: a session-shaped envelope whose cookie carries the TTL. */
interface Envelope {
  cookie: { expires: string; originalMaxAge: number }
  smart: unknown
}

/** The part of a node-redis client (as used by connect-redis) that gives us an atomic SET NX. */
interface RedisLikeClient {
  set(key: string, value: string, options: { expiration: { type: 'EX'; value: number }; condition: 'NX' }): Promise<unknown>
}

interface RedisLikeStore {
  client: RedisLikeClient
  prefix: string
  serializer: { stringify(value: unknown): string }
}

/**
 * Redis Cluster places a key by its hash tag, the text inside its first `{…}`. SMART keys carry their
 * own (`session:{<sid>}`, `lock:{<sid>}`, …) so that a session's keys share a slot and sessions spread
 * over the masters; a brace in a prefix in front of them would take that role instead.
 */
const HASH_TAG_BRACE = /[{}]/

/** node-redis's cluster client (`createCluster`) lists its masters; a single-server client does not. */
function isClusterClient(client: RedisLikeClient): boolean {
  return 'masters' in client
}

/** connect-redis exposes its client, key prefix and serializer; any store that does gets Redis `SET NX` locks. */
function asRedisStore(store: Store): RedisLikeStore | null {
  const candidate = store as Store & Partial<Record<keyof RedisLikeStore, unknown>>
  const client = candidate.client as { set?: unknown } | undefined
  const serializer = candidate.serializer as { stringify?: unknown } | undefined
  if (typeof client?.set === 'function' && typeof candidate.prefix === 'string' && typeof serializer?.stringify === 'function') {
    return candidate as unknown as RedisLikeStore
  }
  return null
}

function envelope(value: unknown, ttlSeconds: number): Envelope {
  return { cookie: { expires: new Date(Date.now() + ttlSeconds * 1000).toISOString(), originalMaxAge: ttlSeconds * 1000 }, smart: value }
}

function callStore<T>(run: (done: (err: unknown, result?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    try {
      run((err, result) => (err ? reject(err) : resolve(result)))
    } catch (err) {
      reject(err)
    }
  })
}

/**
 * Adapts an express-session `Store` (its `MemoryStore`, connect-redis `RedisStore`, …) to `SmartStorage`,
 * so SMART state lives beside the app's sessions, with the same persistence and lifetime rules.
 *
 * `setIfAbsent` is atomic across processes over connect-redis (Redis `SET NX`), and within the process for
 * every other store (enough for `MemoryStore`, which cannot be shared anyway).
 *
 * @example
 * import session from 'express-session'
 * import { RedisStore } from 'connect-redis'
 * const store = new RedisStore({ client: redisClient })
 * app.use(session({ store, secret, resave: false, saveUninitialized: false }))
 * const storage = expressSessionStorage(store, { prefix: 'smart:' })
 */
export function expressSessionStorage(store: Store, opts: ExpressSessionStorageOptions = {}): SmartStorage {
  if (!store || typeof store.get !== 'function' || typeof store.set !== 'function' || typeof store.destroy !== 'function') {
    throw new TypeError('express-smart-on-fhir: expressSessionStorage(store) needs an express-session Store (get, set, destroy)')
  }
  const prefix = opts.prefix ?? 'smart:'
  if (HASH_TAG_BRACE.test(prefix)) {
    throw new TypeError(`express-smart-on-fhir: expressSessionStorage's "prefix" option (${JSON.stringify(prefix)}) must not contain "{" or "}": on a Redis Cluster they would override the hash tags that keep a session's keys in one slot`)
  }
  const defaultTtl = opts.ttlSeconds ?? 86_400
  const timeoutMs = opts.timeoutMs ?? 3000
  const redis = asRedisStore(store)
  if (redis && isClusterClient(redis.client) && HASH_TAG_BRACE.test(redis.prefix)) {
    throw new TypeError(`express-smart-on-fhir: the RedisStore "prefix" option (${JSON.stringify(redis.prefix)}) must not contain "{" or "}" over a Redis Cluster: they would override the hash tags that keep a session's keys in one slot and spread sessions over the masters`)
  }

  const storage: SmartStorage = {
    get(key) {
      return boundedStorageCall('a read', timeoutMs, async () => {
        const found = await callStore<SessionData | null>((done) => store.get(prefix + key, done))
        return found ? (found as unknown as Envelope).smart : undefined
      })
    },
    set(key, value, ttlSeconds = defaultTtl) {
      return boundedStorageCall('a write', timeoutMs, async () => {
        await callStore((done) => store.set(prefix + key, envelope(value, ttlSeconds) as unknown as SessionData, done))
      })
    },
    delete(key) {
      return boundedStorageCall('a delete', timeoutMs, async () => {
        await callStore((done) => store.destroy(prefix + key, done))
      })
    },
    setIfAbsent(key, value, ttlSeconds) {
      return boundedStorageCall('an atomic write', timeoutMs, async () => {
        if (redis) {
          const json = redis.serializer.stringify(envelope(value, ttlSeconds))
          const reply = await redis.client.set(redis.prefix + prefix + key, json, {
            expiration: { type: 'EX', value: Math.max(1, Math.ceil(ttlSeconds)) },
            condition: 'NX',
          })
          return reply === 'OK'
        }
        return processMutex(store, key, async () => {
          if ((await storage.get(key)) !== undefined) return false
          await storage.set(key, value, ttlSeconds)
          return true
        })
      })
    },
  }
  return storage
}
