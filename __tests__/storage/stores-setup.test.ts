// Self-test of the test infrastructure: global-setup's Redis and Redis Cluster, and the storeKinds() helper.
import type { RedisStore } from 'connect-redis'
import type { SessionData, Store } from 'express-session'
import { createClient } from 'redis'
import { storeDestroy, storeGet, storeKinds, storeSet, type StoreKind } from '../helpers/stores'

const inCi = process.env.CI === 'true'

function sessionWith(value: string): SessionData {
  return {
    cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000), httpOnly: true, path: '/' },
    probe: value,
  } as SessionData & { probe: string }
}

function probeOf(session: SessionData | null | undefined): unknown {
  return (session as (SessionData & { probe?: unknown }) | null | undefined)?.probe
}

// Outside CI a machine without redis-server runs the MemoryStore rows only (global-setup warns);
// these Redis checks are then not defined at all rather than skipped.
const redisExpected = Boolean(process.env.REDIS_URL) || inCi
const clusterExpected = Boolean(process.env.REDIS_CLUSTER_NODES) || inCi
const postgresExpected = Boolean(process.env.DATABASE_URL) || inCi

function kindNamed(name: string): StoreKind {
  const kind = storeKinds().find(([row]) => row === name)?.[1]
  if (!kind) throw new Error(`no ${name} row`)
  return kind
}

describe('test Redis', () => {
  it('storeKinds() includes RedisStore, RedisCluster and PostgreSQL exactly when they are available (always under CI=true)', () => {
    const expected = ['MemoryStore', ...(redisExpected ? ['RedisStore'] : []), ...(clusterExpected ? ['RedisCluster'] : []), ...(postgresExpected ? ['PostgreSQL'] : [])]
    expect(storeKinds().map(([name]) => name)).toEqual(expected)
    if (inCi) {
      expect(process.env.REDIS_URL).toMatch(/^rediss?:\/\//)
      expect(process.env.REDIS_CLUSTER_NODES).toMatch(/^[\w.-]+:\d+(,[\w.-]+:\d+)+$/)
      expect(process.env.DATABASE_URL).toMatch(/^postgres(ql)?:\/\//)
    }
  })

  if (redisExpected) it('answers PING at REDIS_URL', async () => {
    const client = createClient({ url: process.env.REDIS_URL, socket: { connectTimeout: 5000, reconnectStrategy: false } })
    client.on('error', () => {})
    try {
      await client.connect()
      await expect(client.ping()).resolves.toBe('PONG')
    } finally {
      if (client.isOpen) await client.close()
    }
  })
})

describe('test Redis Cluster', () => {
  if (clusterExpected) it('has three masters sharing all 16384 slots, and every node says cluster_state:ok', async () => {
    const nodes = (process.env.REDIS_CLUSTER_NODES ?? '').split(',')
    const infos = await Promise.all(
      nodes.map(async (node) => {
        const client = createClient({ url: `redis://${node}`, socket: { connectTimeout: 5000, reconnectStrategy: false } })
        client.on('error', () => {})
        try {
          await client.connect()
          return await client.clusterInfo()
        } finally {
          if (client.isOpen) await client.close()
        }
      }),
    )
    for (const info of infos) {
      expect(info).toMatch(/^cluster_state:ok\r?$/m)
      expect(info).toMatch(/^cluster_slots_assigned:16384\r?$/m)
      expect(info).toMatch(/^cluster_size:3\r?$/m)
    }
  })
})

describe.each(storeKinds())('over %s', (name, kind) => {
  let store: Store
  let close: () => Promise<void>
  let newStore: () => Promise<Store>
  beforeAll(async () => ({ store, close, newStore } = await kind.open()))
  afterAll(() => close())

  it('sets, gets and destroys a session', async () => {
    await storeSet(store, 'sid-1', sessionWith('one'))
    expect(probeOf(await storeGet(store, 'sid-1'))).toBe('one')
    await storeDestroy(store, 'sid-1')
    expect(await storeGet(store, 'sid-1')).toBeFalsy()
  })

  it('newStore() sees what the first store wrote, and the reverse', async () => {
    const other = await newStore()
    if (name !== 'MemoryStore') expect(other).not.toBe(store)
    await storeSet(store, 'sid-2', sessionWith('written by the first'))
    expect(probeOf(await storeGet(other, 'sid-2'))).toBe('written by the first')
    await storeSet(other, 'sid-3', sessionWith('written by the second'))
    expect(probeOf(await storeGet(store, 'sid-3'))).toBe('written by the second')
  })
})

/** KEYS `pattern` on every server of a Redis kind, read without the helper under test (test-only: KEYS blocks). */
async function keysOnEveryServer(name: string, pattern: string): Promise<string[]> {
  const urls = name === 'RedisStore' ? [process.env.REDIS_URL!] : process.env.REDIS_CLUSTER_NODES!.split(',').map((node) => `redis://${node}`)
  const found: string[] = []
  for (const url of urls) {
    const client = createClient({ url, socket: { connectTimeout: 5000, reconnectStrategy: false } })
    client.on('error', () => {})
    await client.connect()
    try {
      found.push(...(await client.keys(pattern)))
    } finally {
      await client.close()
    }
  }
  return found
}

const isolated = [...(redisExpected ? ['RedisStore'] : []), ...(clusterExpected ? ['RedisCluster'] : [])]
if (isolated.length) describe.each(isolated)('%s isolation', (name) => {
  it('two open() calls use different prefixes, keys() lists what was written, and close() removes it on every server', async () => {
    const a = await kindNamed(name).open()
    const b = await kindNamed(name).open()
    const run = `${process.pid}-${Date.now()}`
    const sids = Array.from({ length: 12 }, (_, i) => `sid-${i}-${run}`)
    let servers: Set<string>
    try {
      for (const sid of sids) await storeSet(a.store, sid, sessionWith('a'))
      for (const sid of sids) expect(await storeGet(b.store, sid)).toBeFalsy()
      const { prefix } = a.store as RedisStore
      const written = await a.keys!()
      expect(written.map(({ key }) => key).sort()).toEqual(sids.map((sid) => `${prefix}${sid}`).sort())
      expect(await b.keys!()).toEqual([])
      servers = new Set(written.map(({ node }) => node))
    } finally {
      await a.close()
      await b.close()
    }
    // Twelve ids land on more than one master (all on one: a chance of 3 in 3^12), so close() had to clean each of them.
    if (name === 'RedisCluster') expect(servers.size).toBeGreaterThan(1)
    expect(await keysOnEveryServer(name, `test:*${run}`)).toEqual([])
  })
})
