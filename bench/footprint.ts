/**
 * e. What a launched session costs at rest:
 *   - in Redis: every key one launch left behind (express-session's and the library's), STRLEN and
 *     MEMORY USAGE, without and with `encryptionKey`;
 *   - in MemoryStore: the app process's heap after full GCs, before and after N real launches through
 *     the middleware (N = 10,000 in the full run), divided by N.
 */
import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import type { BenchContext } from './context'
import { OUR_ROUTES, checkSession, launchMany, launchSession } from './launch'
import type { HeapReport } from './types'

export interface StoredKey {
  /** The key without the app's prefix, its ids replaced by placeholders, e.g. `smart:session:<id>`. */
  kind: string
  strlen: number
  memoryUsage: number
  ttlSeconds: number
}

export interface RedisFootprint {
  /** Every key one launch wrote, right after it (the short-lived ones included). */
  strlen: number
  memoryUsage: number
  /** The keys that outlive the launch's 10-minute stragglers (TTL > 600 s): what a launched session holds at rest. */
  longLived: { strlen: number; memoryUsage: number }
  keys: StoredKey[]
}

/** Keys with a TTL above this are the session's own; the others (retired sid, its forward) expire within minutes. */
const SHORT_LIVED_SECONDS = 600

export interface MemoryFootprint {
  sessions: number
  /** Real launches through the middleware (never synthesized copies). */
  launched: 'real'
  heapBefore: number
  heapAfter: number
  bytesPerSession: number
  storeEntriesPerSession: number
  /** MemoryStore only: characters of its JSON strings per session (each a byte in V8's one-byte strings). */
  storeCharsPerSession?: number | null
  launchSeconds: number
}

/** Launches run this many at a time: the mock EHR's authorization, not the app, is the slow part. */
const LAUNCH_CONCURRENCY = 8

/** The express-session id a browser's `Cookie` header carries (`connect.sid=s:<sid>.<signature>`). */
function sessionIdOf(cookie: string): string | null {
  const value = /(?:^|;\s*)connect\.sid=([^;]+)/.exec(cookie)?.[1]
  const decoded = value ? decodeURIComponent(value) : ''
  return decoded.startsWith('s:') ? decoded.slice(2, decoded.lastIndexOf('.')) : null
}

/**
 * What a key is. The callback leaves keys of the pre-callback session id besides the new session's: its
 * express-session record, retired to a short lifetime, and its SMART record, now a forward.
 */
function kindOf(key: string, prefix: string, value: string, sid: string | null): string {
  const rest = key.slice(prefix.length)
  const smart = /^smart:(\w+):/.exec(rest)
  if (!smart) return rest === sid ? '<sid> (express-session)' : '<old sid> (express-session, retired)'
  if (smart[1] === 'session' && value.includes('"kind":"forward"')) return 'smart:session:<old sid> (forward)'
  return `smart:${smart[1]}:<id>`
}

export async function redisFootprint(ctx: BenchContext, encrypted: boolean): Promise<RedisFootprint> {
  const variant = encrypted ? 'sealed' : 'plain'
  const prefix = `bench-bytes-${variant}-${process.pid}:`
  const app = await ctx.startApp(`bytes-${variant}`, {
    store: 'redis',
    redisPrefix: prefix,
    ...(encrypted ? { encryptionKey: randomBytes(32).toString('base64') } : {}),
  })
  const client = createClient({ url: ctx.redisUrl })
  await client.connect()
  const keysUnder = async (match: string) => {
    const keys = new Set<string>()
    for await (const batch of client.scanIterator({ MATCH: `${match}*`, COUNT: 1000 })) for (const key of batch) keys.add(key)
    return keys
  }
  try {
    await launchSession(app.base, ctx.ehr, OUR_ROUTES) // warm: discovery cached, nothing else left to fetch
    const before = await keysUnder(prefix)
    const cookie = await launchSession(app.base, ctx.ehr, OUR_ROUTES)
    await checkSession(app.base, OUR_ROUTES, cookie)
    const written = [...await keysUnder(prefix)].filter((key) => !before.has(key))
    const keys: StoredKey[] = []
    for (const key of written) {
      const ttlSeconds = await client.ttl(key)
      keys.push({ kind: kindOf(key, prefix, (await client.get(key)) ?? '', sessionIdOf(cookie)), strlen: await client.strLen(key), memoryUsage: Number(await client.memoryUsage(key)), ttlSeconds })
    }
    keys.sort((a, b) => a.kind.localeCompare(b.kind))
    const sum = (of: StoredKey[]) => ({ strlen: of.reduce((total, key) => total + key.strlen, 0), memoryUsage: of.reduce((total, key) => total + key.memoryUsage, 0) })
    const total = { ...sum(keys), longLived: sum(keys.filter((key) => key.ttlSeconds > SHORT_LIVED_SECONDS)) }
    ctx.check(`stored bytes (${variant}): the launch left its session keys in Redis`, keys.some((key) => key.kind.includes('smart:session:')) && keys.some((key) => key.kind.includes('express-session')),
      keys.map((key) => key.kind).join(', '))
    ctx.log(`  Redis, ${variant}: ${keys.length} keys, ${total.strlen} bytes (STRLEN), ${total.memoryUsage} bytes (MEMORY USAGE); `
      + `at rest (TTL > ${SHORT_LIVED_SECONDS} s): ${total.longLived.strlen} bytes (STRLEN), ${total.longLived.memoryUsage} bytes (MEMORY USAGE)`)
    for (const key of keys) ctx.log(`    ${key.kind.padEnd(38)} ${String(key.strlen).padStart(5)} B  ${String(key.memoryUsage).padStart(5)} B in memory  TTL ${key.ttlSeconds} s`)
    return { ...total, keys }
  } finally {
    await client.close()
    await app.stop()
  }
}

/**
 * Heap per launched session of an app process after full GCs. Over MemoryStore: the sessions themselves (the
 * store's JSON strings) and everything the process keeps per session. Over Redis: only what the process keeps
 * (the library's in-process copies and caches), the sessions being in Redis.
 */
export async function memoryFootprint(ctx: BenchContext, store: 'memory' | 'redis' = 'memory', sessions = ctx.opts.memorySessions): Promise<MemoryFootprint> {
  ctx.log(`\n${store === 'memory' ? 'MemoryStore' : 'Redis'}: app heap per launched session (${sessions} real launches, ${LAUNCH_CONCURRENCY} at a time)`)
  const app = await ctx.startApp(`heap-${store}`, store === 'memory' ? { store } : await ctx.storeSettings('redis', 'heap'), ['--expose-gc'])
  try {
    // Warm-up: JIT, discovery, JWKS and module-level caches reach their steady size first.
    await launchMany(app.base, ctx.ehr, Math.min(50, sessions), LAUNCH_CONCURRENCY)
    const before = await app.handle.call<HeapReport>('heap')
    const started = Date.now()
    const cookies = await launchMany(app.base, ctx.ehr, sessions, LAUNCH_CONCURRENCY)
    const launchSeconds = (Date.now() - started) / 1000
    const after = await app.handle.call<HeapReport>('heap')
    await checkSession(app.base, OUR_ROUTES, cookies[0])
    ctx.check(`heap footprint (${store}): every launch completed`, cookies.length === sessions, `${cookies.length}/${sessions} launches`)
    const result: MemoryFootprint = {
      sessions,
      launched: 'real',
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
      bytesPerSession: (after.heapUsed - before.heapUsed) / sessions,
      storeEntriesPerSession: ((after.storeEntries ?? 0) - (before.storeEntries ?? 0)) / sessions,
      storeCharsPerSession: after.storeChars === undefined || before.storeChars === undefined ? null : (after.storeChars - before.storeChars) / sessions,
      launchSeconds,
    }
    const chars = result.storeCharsPerSession == null ? '' : `, of which the MemoryStore's JSON strings hold ${result.storeCharsPerSession.toFixed(0)} characters`
    ctx.log(`  ${result.bytesPerSession.toFixed(0)} bytes of heap per session${chars}, ${result.storeEntriesPerSession} store entries per session (${launchSeconds.toFixed(1)} s of launches)`)
    return result
  } finally {
    await app.stop()
  }
}
