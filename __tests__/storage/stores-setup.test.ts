// Self-test of the test infrastructure: global-setup's Redis and the storeKinds() helper.
import type { SessionData, Store } from 'express-session'
import { createClient } from 'redis'
import { storeDestroy, storeGet, storeKinds, storeSet } from '../helpers/stores'

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

describe('test Redis', () => {
  it('storeKinds() includes RedisStore exactly when Redis is available (always under CI=true)', () => {
    expect(storeKinds().map(([name]) => name)).toEqual(redisExpected ? ['MemoryStore', 'RedisStore'] : ['MemoryStore'])
    if (inCi) expect(process.env.REDIS_URL).toMatch(/^rediss?:\/\//)
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
    if (name === 'RedisStore') expect(other).not.toBe(store)
    await storeSet(store, 'sid-2', sessionWith('written by the first'))
    expect(probeOf(await storeGet(other, 'sid-2'))).toBe('written by the first')
    await storeSet(other, 'sid-3', sessionWith('written by the second'))
    expect(probeOf(await storeGet(store, 'sid-3'))).toBe('written by the second')
  })
})

describe('RedisStore isolation', () => {
  if (redisExpected) it('two open() calls use different prefixes, and close() removes the keys', async () => {
    const redisKind = storeKinds().find(([name]) => name === 'RedisStore')?.[1]
    if (!redisKind) throw new Error('no RedisStore row')
    const sid = `same-sid-${process.pid}-${Date.now()}`
    const a = await redisKind.open()
    const b = await redisKind.open()
    try {
      await storeSet(a.store, sid, sessionWith('a'))
      expect(await storeGet(b.store, sid)).toBeFalsy()
    } finally {
      await a.close()
      await b.close()
    }
    const client = createClient({ url: process.env.REDIS_URL, socket: { reconnectStrategy: false } })
    client.on('error', () => {})
    await client.connect()
    try {
      expect(await client.keys(`test:*${sid}`)).toEqual([])
    } finally {
      await client.close()
    }
  })
})
