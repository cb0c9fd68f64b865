// No silent downgrade (SECURITY S38, issue 22): a store without an atomic primitive shared across processes is
// reported once — through the logger, else process.emitWarning — or refused at start-up with requireAtomicStore.
// MemoryStore (one process), connect-redis and connect-pg-simple, also behind failFastStore, are not.
import connectPgSimple from 'connect-pg-simple'
import { RedisStore } from 'connect-redis'
import session, { MemoryStore, type SessionData, type Store } from 'express-session'
import { Pool } from 'pg'
import { createClient, createCluster } from 'redis'
import request from 'supertest'
import { expressSessionStorage, failFastStore, type SmartLogger } from '../../lib'
import { createMockEhr } from '../../lib/testing'
import { testApp } from '../helpers/app'

type Callback = (err?: unknown, value?: unknown) => void

/** A store that works, shared by nobody: its get-then-set has no atomic form. A class per test, as warnings come once per class. */
function nonAtomicStoreClass() {
  return class NonAtomicStore extends session.Store {
    readonly data = new Map<string, SessionData>()
    get(sid: string, cb: (err: unknown, value?: SessionData | null) => void): void {
      cb(null, this.data.get(sid) ?? null)
    }
    set(sid: string, value: SessionData, cb?: Callback): void {
      this.data.set(sid, JSON.parse(JSON.stringify(value)))
      cb?.()
    }
    destroy(sid: string, cb?: Callback): void {
      this.data.delete(sid)
      cb?.()
    }
  }
}

function recordingLogger(): { logger: SmartLogger; warnings: Array<{ fields: Record<string, unknown>; message: string }> } {
  const warnings: Array<{ fields: Record<string, unknown>; message: string }> = []
  const ignore = () => undefined
  return { warnings, logger: { debug: ignore, info: ignore, error: ignore, warn: (fields, message) => void warnings.push({ fields, message }) } }
}

const notAtomic = /has no atomic primitive shared across app processes/

describe('a store without an atomic primitive', () => {
  let emitWarning: jest.SpyInstance
  beforeEach(() => {
    emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
  })
  afterEach(() => emitWarning.mockRestore())

  it('is reported once through the logger, naming it and the option that refuses it; it still works in this process', async () => {
    const NonAtomicStore = nonAtomicStoreClass()
    const { logger, warnings } = recordingLogger()
    const storage = expressSessionStorage(new NonAtomicStore(), { logger })
    expressSessionStorage(new NonAtomicStore(), { logger })
    expressSessionStorage(failFastStore(new NonAtomicStore()), { logger })
    expect(warnings).toHaveLength(1)
    expect(warnings[0].fields).toEqual({ event: 'smart.storage.not_atomic', store: 'NonAtomicStore' })
    expect(warnings[0].message).toMatch(notAtomic)
    expect(warnings[0].message).toMatch(/NonAtomicStore/)
    expect(warnings[0].message).toMatch(/requireAtomicStore/)
    expect(emitWarning).not.toHaveBeenCalled()
    await expect(storage.setIfAbsent!('lock:x', 'a', 5)).resolves.toBe(true)
    await expect(storage.setIfAbsent!('lock:x', 'b', 5)).resolves.toBe(false)
  })

  it('without a logger: once through process.emitWarning, with a code', () => {
    const NonAtomicStore = nonAtomicStoreClass()
    expressSessionStorage(new NonAtomicStore())
    expressSessionStorage(new NonAtomicStore())
    expect(emitWarning).toHaveBeenCalledTimes(1)
    expect(emitWarning).toHaveBeenCalledWith(expect.stringMatching(notAtomic), { code: 'SMART_STORE_NOT_ATOMIC' })
  })

  it('with requireAtomicStore: a TypeError at creation naming the option, also behind failFastStore, every time', () => {
    const NonAtomicStore = nonAtomicStoreClass()
    for (const store of [new NonAtomicStore(), failFastStore(new NonAtomicStore()), new NonAtomicStore()]) {
      expect(() => expressSessionStorage(store, { requireAtomicStore: true })).toThrow(TypeError)
      expect(() => expressSessionStorage(store, { requireAtomicStore: true })).toThrow(/"requireAtomicStore" option refuses it: The session store \(NonAtomicStore\) has no atomic primitive/)
    }
    expect(emitWarning).not.toHaveBeenCalled()
  })

  it('the middlewares\' default storage reports it through the app\'s logger (options.logger)', async () => {
    const NonAtomicStore = nonAtomicStoreClass()
    const { logger, warnings } = recordingLogger()
    const ehr = await createMockEhr()
    try {
      const app = testApp({ store: new NonAtomicStore(), options: { logger } })
      await request(app).get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`).expect(302)
      await request(app).get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-2' })).search}`).expect(302)
    } finally {
      await ehr.close()
    }
    expect(warnings.filter(({ fields }) => fields.event === 'smart.storage.not_atomic')).toHaveLength(1)
    expect(emitWarning).not.toHaveBeenCalled()
  })

  it('refuses options of the wrong type, naming them', () => {
    const store = new MemoryStore()
    expect(() => expressSessionStorage(store, { logger: {} as SmartLogger })).toThrow(/"logger" option must be a pino-compatible logger/)
    expect(() => expressSessionStorage(store, { requireAtomicStore: 'yes' as unknown as boolean })).toThrow(/"requireAtomicStore" option must be a boolean/)
  })
})

describe('stores with an atomic primitive (or one process) are neither reported nor refused', () => {
  let emitWarning: jest.SpyInstance
  beforeEach(() => {
    emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
  })
  afterEach(() => emitWarning.mockRestore())

  // Nothing here connects: the stores are only built and recognised.
  const redis = createClient({ url: 'redis://127.0.0.1:1' })
  const cluster = createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:1' }] })
  const pool = new Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none' })
  afterAll(() => pool.end())
  const PGStore = connectPgSimple(session)

  it.each([
    ['MemoryStore', () => new MemoryStore()],
    ['RedisStore', () => new RedisStore({ client: redis })],
    ['RedisStore over a Redis Cluster', () => new RedisStore({ client: cluster })],
    ['PGStore (connect-pg-simple)', () => new PGStore({ pool, pruneSessionInterval: false })],
  ] as Array<[string, () => Store]>)('%s, also behind failFastStore', (_name, make) => {
    const { logger, warnings } = recordingLogger()
    for (const store of [make(), failFastStore(make())]) {
      expect(() => expressSessionStorage(store, { requireAtomicStore: true, logger })).not.toThrow()
      expect(() => expressSessionStorage(store)).not.toThrow()
    }
    expect(warnings).toEqual([])
    expect(emitWarning).not.toHaveBeenCalled()
  })
})
