import type { Store } from 'express-session'
import { expressSessionStorage, SmartError, type SmartStorage } from '../../lib'
import { storeKinds } from '../helpers/stores'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.each(storeKinds())('expressSessionStorage over %s', (_name, kind) => {
  let store: Store
  let storage: SmartStorage
  let close: () => Promise<void>
  let newStore: () => Promise<Store>

  beforeAll(async () => {
    ;({ store, close, newStore } = await kind.open())
    storage = expressSessionStorage(store)
  })
  afterAll(() => close())

  it('stores, reads and deletes JSON values', async () => {
    await storage.set('a', { nested: [1, 'two', { three: true }] })
    await expect(storage.get('a')).resolves.toEqual({ nested: [1, 'two', { three: true }] })
    await storage.delete('a')
    await expect(storage.get('a')).resolves.toBeUndefined()
  })

  it('answers undefined for a key never written', async () => {
    await expect(storage.get('never-written')).resolves.toBeUndefined()
  })

  it('honours TTLs', async () => {
    await storage.set('short', 'value', 1)
    await expect(storage.get('short')).resolves.toBe('value')
    await sleep(2100)
    await expect(storage.get('short')).resolves.toBeUndefined()
  })

  it('writes the TTL as the session cookie\'s expiry, the store\'s own expiry; a value without one lives a day', async () => {
    const expiresIn = (key: string) =>
      new Promise<number>((resolve, reject) =>
        store.get(`smart:${key}`, (err, data) => (err ? reject(err) : resolve(Date.parse(String(data?.cookie.expires)) - Date.now()))))
    await storage.set('ttl-60', 'v', 60)
    await storage.set('ttl-default', 'v')
    expect(Math.abs((await expiresIn('ttl-60')) - 60_000)).toBeLessThan(5000)
    expect(Math.abs((await expiresIn('ttl-default')) - 86_400_000)).toBeLessThan(5000)
  })

  it('a setIfAbsent claim lasts its TTL (a fraction of a second rounded up on Redis), then can be claimed again', async () => {
    await expect(storage.setIfAbsent!('claim:ttl', 'first', 2.5)).resolves.toBe(true)
    await sleep(1200)
    await expect(storage.setIfAbsent!('claim:ttl', 'second', 2.5)).resolves.toBe(false)
    await sleep(2100)
    await expect(storage.setIfAbsent!('claim:ttl', 'third', 2.5)).resolves.toBe(true)
    await storage.delete('claim:ttl')
  })

  it('keeps its keys apart from session ids by prefix', async () => {
    await storage.set('sid-1', 'smart')
    await expect(new Promise((resolve) => store.get('sid-1', (_err, value) => resolve(value)))).resolves.toBeFalsy()
  })

  it('setIfAbsent lets exactly one of many concurrent writers win', async () => {
    const other = expressSessionStorage(await newStore())
    const attempts = Array.from({ length: 20 }, (_, i) => (i % 2 ? other : storage).setIfAbsent!('lock:x', `owner-${i}`, 5))
    const wins = (await Promise.all(attempts)).filter(Boolean)
    expect(wins).toHaveLength(1)
    await storage.delete('lock:x')
    await expect(storage.setIfAbsent!('lock:x', 'again', 5)).resolves.toBe(true)
    await storage.delete('lock:x')
  })

  it('shares values with a second store on the same backend (another app process)', async () => {
    const other = expressSessionStorage(await newStore())
    await storage.set('shared', { n: 1 })
    await expect(other.get('shared')).resolves.toEqual({ n: 1 })
  })
})

describe('expressSessionStorage failures', () => {
  function brokenStore(behaviour: 'error' | 'hang'): Store {
    const answer = (cb: (err?: unknown) => void) => (behaviour === 'error' ? cb(new Error('ECONNREFUSED')) : undefined)
    return { get: (_sid: string, cb: (err?: unknown) => void) => answer(cb), set: (_s: string, _v: unknown, cb: (err?: unknown) => void) => answer(cb), destroy: (_s: string, cb: (err?: unknown) => void) => answer(cb) } as unknown as Store
  }

  it('turns a store error into STORAGE_UNAVAILABLE (503)', async () => {
    const err = await expressSessionStorage(brokenStore('error')).get('k').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SmartError)
    expect(err).toMatchObject({ code: 'STORAGE_UNAVAILABLE', status: 503 })
  })

  it('a store that throws instead of calling back: STORAGE_UNAVAILABLE at once, with its failure (not a timeout)', async () => {
    const store = { get: () => { throw new Error('ECONNREFUSED') }, set: () => undefined, destroy: () => undefined } as unknown as Store
    const started = Date.now()
    await expect(expressSessionStorage(store, { timeoutMs: 30_000 }).get('k')).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', message: 'The session store failed a read' })
    // Far below the 30 s bound even on a loaded machine: the failure, not the timer, answered.
    expect(Date.now() - started).toBeLessThan(15_000)
  })

  it('fails fast when the store never answers, naming the call', async () => {
    const storage = expressSessionStorage(brokenStore('hang'), { timeoutMs: 200 })
    const started = Date.now()
    for (const [what, call] of [
      ['a read', () => storage.get('k')],
      ['a write', () => storage.set('k', 1)],
      ['a delete', () => storage.delete('k')],
      ['an atomic write', () => storage.setIfAbsent!('k', 1, 5)],
    ] as const) {
      await expect(call()).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', message: `The session store did not answer ${what} within 200 ms` })
    }
    // Four 200 ms bounds; the margin is for a loaded machine (Jest's own timeout is 20 s).
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('refuses something that is not a Store at creation', () => {
    expect(() => expressSessionStorage({} as Store)).toThrow(new TypeError('express-smart-on-fhir: expressSessionStorage(store) needs an express-session Store (get, set, destroy)'))
    for (const store of [null, { get: () => undefined, set: () => undefined }, { get: () => undefined, destroy: () => undefined }, { set: () => undefined, destroy: () => undefined }]) {
      expect(() => expressSessionStorage(store as never)).toThrow(/needs an express-session Store/)
    }
  })
})
