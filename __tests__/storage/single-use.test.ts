// S12, single use across processes (issue 24): a pending launch is taken by one atomic read-and-delete —
// Redis GETDEL, PostgreSQL DELETE … RETURNING, within the process for MemoryStore — instead of a `used:` marker
// claimed with SET NX and a delete: one store call fewer per callback, and no marker left for ten minutes.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RedisStore } from 'connect-redis'
import { MemoryStore, type Store } from 'express-session'
import { createClient } from 'redis'
import request from 'supertest'
import { expressSessionStorage, type SmartStorage } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { testApp, withCookies } from '../helpers/app'
import { findOnPath, freePort, spawnRedisNode, stopProcess } from '../helpers/redis-server'
import { storeKinds } from '../helpers/stores'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

describe.each(storeKinds())('S12 a pending launch is taken once, over %s', (_name, kind) => {
  let store: Store
  let close: () => Promise<void>
  let newStore: () => Promise<Store>
  let storage: SmartStorage
  let other: SmartStorage
  beforeAll(async () => {
    ;({ store, close, newStore } = await kind.open())
    storage = expressSessionStorage(store)
    // Another app process (MemoryStore: the same store again, as it cannot be shared).
    other = expressSessionStorage(await newStore())
  })
  afterAll(() => close())

  it('take gives the value to exactly one of many concurrent takers in two processes, then answers undefined', async () => {
    for (const round of [1, 2, 3]) {
      const key = `pending:{take-${round}}`
      await storage.set(key, { round }, 60)
      const taken = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? other : storage).take!(key)))
      expect(taken.filter((value) => value !== undefined)).toEqual([{ round }])
      await expect(storage.get(key)).resolves.toBeUndefined()
      await expect(other.take!(key)).resolves.toBeUndefined()
    }
  })

  it('take answers undefined for a key never written and for an expired one (which it removes)', async () => {
    await expect(storage.take!('pending:{never}')).resolves.toBeUndefined()
    await storage.set('pending:{short}', 'value', 1)
    await sleep(2100)
    await expect(storage.take!('pending:{short}')).resolves.toBeUndefined()
    await expect(storage.get('pending:{short}')).resolves.toBeUndefined()
  })

  it('two app processes get the same callback at once: one completes, the other is INVALID_STATE, one code grant, no marker left', async () => {
    const first = testApp({ store, jsonErrors: true })
    const second = testApp({ store: await newStore(), jsonErrors: true })
    const started = await request(first).get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`)
    expect(started.status).toBe(302)
    const cookie = withCookies(undefined, started)
    const back = await ehr.authorize(started.headers.location)
    const state = back.searchParams.get('state')!
    const grants = ehr.stats.codeGrants
    const answers = await Promise.all([first, second, first, second].map((app) => request(app).get(`${back.pathname}${back.search}`).set('Cookie', cookie)))
    expect(answers.map((a) => a.status).sort()).toEqual([302, 400, 400, 400])
    for (const refused of answers.filter((a) => a.status === 400)) expect(refused.body.code).toBe('INVALID_STATE')
    expect(ehr.stats.codeGrants - grants).toBe(1)
    await expect(storage.get(`pending:{${state}}`)).resolves.toBeUndefined()
    await expect(storage.get(`used:{${state}}`)).resolves.toBeUndefined()
  })
})

describe('a storage without take keeps single use with a marker', () => {
  it('a custom SmartStorage with only get/set/delete/setIfAbsent: one of two concurrent callbacks completes', async () => {
    const memory = new MemoryStore()
    const inner = expressSessionStorage(memory)
    const custom: SmartStorage = {
      get: (key) => inner.get(key), set: (key, value, ttl) => inner.set(key, value, ttl), delete: (key) => inner.delete(key),
      setIfAbsent: (key, value, ttl) => inner.setIfAbsent!(key, value, ttl),
    }
    const app = testApp({ store: memory, storage: custom, jsonErrors: true })
    const started = await request(app).get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`)
    const cookie = withCookies(undefined, started)
    const back = await ehr.authorize(started.headers.location)
    const grants = ehr.stats.codeGrants
    const answers = await Promise.all([1, 2].map(() => request(app).get(`${back.pathname}${back.search}`).set('Cookie', cookie)))
    expect(answers.map((a) => a.status).sort()).toEqual([302, 400])
    expect(ehr.stats.codeGrants - grants).toBe(1)
    await expect(inner.get(`used:{${back.searchParams.get('state')}}`)).resolves.toBe(1)
  })
})

// A server without GETDEL (Redis before 6.2, or with the command renamed away): the same take, by GET and DEL
// in one MULTI/EXEC. A real redis-server started with `--rename-command GETDEL ""`.
const redisBinary = findOnPath('redis-server')
if (redisBinary || process.env.CI) describe('S12 over a Redis without GETDEL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'esof-nogetdel-'))
  let stop: () => Promise<void>
  const clients: Array<{ quit(): Promise<unknown>; getDel(key: string): Promise<unknown> }> = []
  const stores: Store[] = []
  beforeAll(async () => {
    if (!redisBinary) throw new Error('redis-server is not on PATH (CI installs it)')
    const port = await freePort()
    const child = await spawnRedisNode(redisBinary, { port, dir, name: 'nogetdel', extraArgs: ['--rename-command', 'GETDEL', ''] })
    stop = () => stopProcess(child)
    for (let i = 0; i < 2; i++) {
      const client = createClient({ url: `redis://127.0.0.1:${port}` })
      client.on('error', () => undefined)
      await client.connect()
      clients.push(client)
      stores.push(new RedisStore({ client, prefix: 'nogetdel:' }))
    }
    await expect(clients[0].getDel('x')).rejects.toThrow(/unknown command/i)
  })
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.quit().catch(() => undefined)))
    await stop?.()
    rmSync(dir, { recursive: true, force: true })
  })

  it('take still gives the value to exactly one of many concurrent takers in two processes', async () => {
    const [one, two] = stores.map((store) => expressSessionStorage(store))
    for (const round of [1, 2, 3]) {
      const key = `pending:{old-${round}}`
      await one.set(key, { round }, 60)
      const taken = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? two : one).take!(key)))
      expect(taken.filter((value) => value !== undefined)).toEqual([{ round }])
      await expect(one.get(key)).resolves.toBeUndefined()
    }
  })

  it('a callback completes once (one code grant), the replay is INVALID_STATE', async () => {
    const app = testApp({ store: stores[0], jsonErrors: true })
    const started = await request(app).get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`)
    const cookie = withCookies(undefined, started)
    const back = await ehr.authorize(started.headers.location)
    const grants = ehr.stats.codeGrants
    const answers = await Promise.all([stores[0], stores[1]].map((store) => request(testApp({ store, jsonErrors: true })).get(`${back.pathname}${back.search}`).set('Cookie', cookie)))
    expect(answers.map((a) => a.status).sort()).toEqual([302, 400])
    expect(ehr.stats.codeGrants - grants).toBe(1)
  })
})
