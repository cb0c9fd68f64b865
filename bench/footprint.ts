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
  strlen: number
  memoryUsage: number
  keys: StoredKey[]
}

export interface MemoryFootprint {
  sessions: number
  /** Real launches through the middleware (never synthesized copies). */
  launched: 'real'
  heapBefore: number
  heapAfter: number
  bytesPerSession: number
  storeEntriesPerSession: number
  launchSeconds: number
}

/** Launches run this many at a time: the mock EHR's authorization, not the app, is the slow part. */
const LAUNCH_CONCURRENCY = 8

/**
 * What a key is. The callback leaves two keys of the pre-callback session id besides the new session's: its
 * express-session record, retired to a 10 s lifetime, and its SMART record, now a forward (10 minutes).
 */
function kindOf(key: string, prefix: string, value: string, ttlSeconds: number): string {
  const rest = key.slice(prefix.length)
  const smart = /^smart:(\w+):/.exec(rest)
  if (!smart) return ttlSeconds <= 60 ? '<old sid> (express-session, retired)' : '<sid> (express-session)'
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
      keys.push({ kind: kindOf(key, prefix, (await client.get(key)) ?? '', ttlSeconds), strlen: await client.strLen(key), memoryUsage: Number(await client.memoryUsage(key)), ttlSeconds })
    }
    keys.sort((a, b) => a.kind.localeCompare(b.kind))
    const total = { strlen: keys.reduce((sum, key) => sum + key.strlen, 0), memoryUsage: keys.reduce((sum, key) => sum + key.memoryUsage, 0) }
    ctx.check(`stored bytes (${variant}): the launch left its session keys in Redis`, keys.some((key) => key.kind.includes('smart:session:')) && keys.some((key) => key.kind.includes('express-session')),
      keys.map((key) => key.kind).join(', '))
    ctx.log(`  Redis, ${variant}: ${keys.length} keys, ${total.strlen} bytes (STRLEN), ${total.memoryUsage} bytes (MEMORY USAGE)`)
    for (const key of keys) ctx.log(`    ${key.kind.padEnd(38)} ${String(key.strlen).padStart(5)} B  ${String(key.memoryUsage).padStart(5)} B in memory  TTL ${key.ttlSeconds} s`)
    return { ...total, keys }
  } finally {
    await client.close()
    await app.stop()
  }
}

export async function memoryFootprint(ctx: BenchContext): Promise<MemoryFootprint> {
  const sessions = ctx.opts.memorySessions
  ctx.log(`\nMemoryStore heap per launched session (${sessions} real launches, ${LAUNCH_CONCURRENCY} at a time)`)
  const app = await ctx.startApp('memory-footprint', { store: 'memory' }, ['--expose-gc'])
  try {
    // Warm-up: JIT, discovery, JWKS and module-level caches reach their steady size first.
    await launchMany(app.base, ctx.ehr, Math.min(50, sessions), LAUNCH_CONCURRENCY)
    const before = await app.handle.call<HeapReport>('heap')
    const started = Date.now()
    const cookies = await launchMany(app.base, ctx.ehr, sessions, LAUNCH_CONCURRENCY)
    const launchSeconds = (Date.now() - started) / 1000
    const after = await app.handle.call<HeapReport>('heap')
    await checkSession(app.base, OUR_ROUTES, cookies[0])
    ctx.check('memory footprint: every launch completed', cookies.length === sessions, `${cookies.length}/${sessions} launches`)
    const result: MemoryFootprint = {
      sessions,
      launched: 'real',
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
      bytesPerSession: (after.heapUsed - before.heapUsed) / sessions,
      storeEntriesPerSession: ((after.storeEntries ?? 0) - (before.storeEntries ?? 0)) / sessions,
      launchSeconds,
    }
    ctx.log(`  ${result.bytesPerSession.toFixed(0)} bytes of heap per session, ${result.storeEntriesPerSession} store entries per session (${launchSeconds.toFixed(1)} s of launches)`)
    return result
  } finally {
    await app.stop()
  }
}
