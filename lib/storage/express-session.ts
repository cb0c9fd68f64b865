import session, { type SessionData, type Store } from 'express-session'
import type { SmartLogger } from '../config'
import { warnWithoutErrorListener } from './error-listener'
import { innerStore } from './fail-fast-store'
import { processMutex } from './lock'
import { asPgStore, pgClaim, pgTake } from './postgres'
import { boundedStorageCall, type SmartStorage } from './SmartStorage'

/**
 * Options of `expressSessionStorage`.
 *
 * @example
 * const storage = expressSessionStorage(store, { prefix: 'smart:', timeoutMs: 2000, logger: pino(), requireAtomicStore: true })
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
  /**
   * Where the warning about a store without a cross-process atomic primitive goes (once per kind of store):
   * any pino-compatible logger. Default: `process.emitWarning`, so that it is never silent.
   */
  logger?: SmartLogger
  /**
   * Refuse, with a `TypeError` at creation, a store whose locks and single-use markers would hold within one
   * process only: anything but connect-redis (Redis, Redis Cluster), connect-pg-simple (PostgreSQL) and
   * express-session's one-process `MemoryStore`. Default false: such a store works, with a warning.
   */
  requireAtomicStore?: boolean
}

/** What a SMART value looks like inside the session store: a session-shaped envelope whose cookie carries the TTL. */
interface Envelope {
  cookie: { expires: string; originalMaxAge: number }
  smart: unknown
}

/** The part of a node-redis client (as used by connect-redis) that gives us an atomic SET NX. */
interface RedisLikeClient {
  set(key: string, value: string, options: { expiration: { type: 'EX'; value: number }; condition: 'NX' }): Promise<unknown>
  /** GETDEL (Redis 6.2+), atomic: node-redis names it `getDel`. */
  getDel?(key: string): Promise<string | null>
  /** MULTI/EXEC, for a server without GETDEL; a cluster client routes it by `routing` (a key). */
  multi?(routing?: string): RedisTransaction
}

interface RedisTransaction {
  get(key: string): RedisTransaction
  del(key: string): RedisTransaction
  exec(): Promise<unknown[]>
}

/** What a server answers to a command it does not have (Redis before 6.2 to GETDEL, or a renamed command). */
const UNKNOWN_COMMAND = /unknown command/i

interface RedisLikeStore {
  client: RedisLikeClient
  prefix: string
  serializer: { stringify(value: unknown): string; parse(text: string): unknown }
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
  if (typeof client?.set === 'function' && typeof candidate.prefix === 'string' && typeof serializer?.stringify === 'function' && typeof (serializer as { parse?: unknown }).parse === 'function') {
    return candidate as unknown as RedisLikeStore
  }
  return null
}

/** An atomic `setIfAbsent` shared by every process on the store. */
type Claim = (key: string, value: unknown, ttlSeconds: number) => Promise<boolean>

/** The store's own cross-process atomic write (Redis `SET NX`, a PostgreSQL upsert), or null when it has none we know. */
function sharedClaimOf(store: Store, prefix: string): Claim | null {
  const redis = asRedisStore(store)
  if (redis) {
    return async (key, value, ttlSeconds) => {
      const reply = await redis.client.set(redis.prefix + prefix + key, redis.serializer.stringify(envelope(value, ttlSeconds)), {
        expiration: { type: 'EX', value: Math.max(1, Math.ceil(ttlSeconds)) },
        condition: 'NX',
      })
      return reply === 'OK'
    }
  }
  const pg = asPgStore(store)
  if (pg) return (key, value, ttlSeconds) => pgClaim(pg, prefix + key, envelope(value, ttlSeconds), ttlSeconds)
  return null
}

/** An atomic read-and-delete shared by every process on the store: the value to one caller only. */
type Take = (key: string) => Promise<unknown>

/** The store's own cross-process atomic read-and-delete (Redis `GETDEL`, PostgreSQL `DELETE … RETURNING`), or null. */
function sharedTakeOf(store: Store, prefix: string): Take | null {
  const redis = asRedisStore(store)
  if (redis) {
    const { client, serializer } = redis
    if (typeof client.getDel !== 'function' || typeof client.multi !== 'function') return null
    // GET and DEL in one MULTI/EXEC is as atomic, one round trip too, for a server older than GETDEL.
    const transaction = async (full: string) => (await client.multi!(full).get(full).del(full).exec())[0] as string | null
    let getDel = true
    return async (key) => {
      const full = redis.prefix + prefix + key
      let text: string | null
      if (getDel) {
        try {
          text = await client.getDel!(full)
        } catch (err) {
          if (!UNKNOWN_COMMAND.test((err as Error)?.message ?? '')) throw err
          getDel = false
          text = await transaction(full)
        }
      } else {
        text = await transaction(full)
      }
      return text === null ? undefined : (serializer.parse(text) as Envelope | null)?.smart
    }
  }
  const pg = asPgStore(store)
  if (pg) return async (key) => ((await pgTake(pg, prefix + key)) as Envelope | undefined)?.smart
  return null
}

/** Store classes already reported as not atomic: the warning comes once per kind of store, however many adapters use it. */
const reported = new WeakSet<object>()

/** A store without a shared atomic primitive: a `TypeError` when the app requires one, else a warning, once. */
function reportNotAtomic(store: Store, opts: ExpressSessionStorageOptions): void {
  const kind: object = store.constructor ?? store
  const name = store.constructor && store.constructor !== Object ? `The session store (${store.constructor.name || 'anonymous class'})` : 'The session store'
  const risk = 'single-use state and single-flight refresh hold within one process only (stores with one: connect-redis over Redis or Redis Cluster, connect-pg-simple over PostgreSQL)'
  if (opts.requireAtomicStore) {
    throw new TypeError(`express-smart-on-fhir: expressSessionStorage's "requireAtomicStore" option refuses it: ${name} has no atomic primitive shared across app processes, so ${risk}`)
  }
  if (reported.has(kind)) return
  reported.add(kind)
  const message = `express-smart-on-fhir: ${name} has no atomic primitive shared across app processes: ${risk}. Run one app process, use such a store, or set requireAtomicStore to refuse this one at start-up.`
  if (opts.logger) opts.logger.warn({ event: 'smart.storage.not_atomic', store: store.constructor?.name ?? null }, message)
  else process.emitWarning(message, { code: 'SMART_STORE_NOT_ATOMIC' })
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
 * `setIfAbsent` and `take` are atomic across processes over connect-redis (Redis `SET NX`, `GETDEL`) and
 * connect-pg-simple (an upsert into its session table, see `pgClaim`; `DELETE … RETURNING`), also behind
 * `failFastStore`; within the process for every
 * other store. That is enough for `MemoryStore`, which cannot be shared anyway; any other store is reported
 * once (`logger`, else `process.emitWarning`), or refused with `requireAtomicStore`.
 *
 * @example
 * import session from 'express-session'
 * import { RedisStore } from 'connect-redis'
 * const store = new RedisStore({ client: redisClient })
 * app.use(session({ store, secret, resave: false, saveUninitialized: false }))
 * const storage = expressSessionStorage(store, { prefix: 'smart:' })
 * // or, over PostgreSQL:
 * const pgStore = new (connectPgSimple(session))({ pool, tableName: 'session' })
 * const pgStorage = expressSessionStorage(pgStore, { requireAtomicStore: true, logger: pino() })
 */
export function expressSessionStorage(store: Store, opts: ExpressSessionStorageOptions = {}): SmartStorage {
  if (!store || typeof store.get !== 'function' || typeof store.set !== 'function' || typeof store.destroy !== 'function') {
    throw new TypeError('express-smart-on-fhir: expressSessionStorage(store) needs an express-session Store (get, set, destroy)')
  }
  const prefix = opts.prefix ?? 'smart:'
  if (HASH_TAG_BRACE.test(prefix)) {
    throw new TypeError(`express-smart-on-fhir: expressSessionStorage's "prefix" option (${JSON.stringify(prefix)}) must not contain "{" or "}": on a Redis Cluster they would override the hash tags that keep a session's keys in one slot`)
  }
  if (opts.logger !== undefined && typeof opts.logger?.warn !== 'function') {
    throw new TypeError('express-smart-on-fhir: expressSessionStorage\'s "logger" option must be a pino-compatible logger (with warn)')
  }
  if (opts.requireAtomicStore !== undefined && typeof opts.requireAtomicStore !== 'boolean') {
    throw new TypeError('express-smart-on-fhir: expressSessionStorage\'s "requireAtomicStore" option must be a boolean')
  }
  const defaultTtl = opts.ttlSeconds ?? 86_400
  const timeoutMs = opts.timeoutMs ?? 3000
  const inner = innerStore(store)
  const redis = asRedisStore(inner)
  if (redis && isClusterClient(redis.client) && HASH_TAG_BRACE.test(redis.prefix)) {
    throw new TypeError(`express-smart-on-fhir: the RedisStore "prefix" option (${JSON.stringify(redis.prefix)}) must not contain "{" or "}" over a Redis Cluster: they would override the hash tags that keep a session's keys in one slot and spread sessions over the masters`)
  }
  const sharedClaim = sharedClaimOf(inner, prefix)
  const sharedTake = sharedTakeOf(inner, prefix)
  if (!sharedClaim && !(inner instanceof session.MemoryStore)) reportNotAtomic(inner, opts)
  warnWithoutErrorListener(inner, opts.logger)

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
        if (sharedClaim) return sharedClaim(key, value, ttlSeconds)
        return processMutex(store, key, async () => {
          if ((await storage.get(key)) !== undefined) return false
          await storage.set(key, value, ttlSeconds)
          return true
        })
      })
    },
  }
  // A store with a shared setIfAbsent but no shared read-and-delete keeps the marker: never a weaker single use.
  if (sharedTake || !sharedClaim) {
    storage.take = (key) => boundedStorageCall('an atomic read-and-delete', timeoutMs, async () => {
      if (sharedTake) return sharedTake(key)
      // Within this process: MemoryStore, or a store already reported as not atomic (as for setIfAbsent).
      return processMutex(store, key, async () => {
        const value = await storage.get(key)
        if (value !== undefined) await storage.delete(key)
        return value
      })
    })
  }
  return storage
}
