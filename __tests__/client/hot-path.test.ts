import { MemoryStore, type Store } from 'express-session'
import { SmartClient, expressSessionStorage, type SmartStorage } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { completeLaunch, devOptions, openConfig } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

function counting(inner: SmartStorage) {
  const calls: string[] = []
  const storage: SmartStorage = {
    get: (key) => (calls.push(`get ${key}`), inner.get(key)),
    set: (key, value, ttl) => (calls.push(`set ${key}`), inner.set(key, value, ttl)),
    delete: (key) => (calls.push(`delete ${key}`), inner.delete(key)),
    setIfAbsent: (key, value, ttl) => (calls.push(`setIfAbsent ${key}`), inner.setIfAbsent!(key, value, ttl)),
  }
  return { storage, calls }
}

describe('the hot path', () => {
  it('ready() on an established session costs one store read and no network call', async () => {
    const { storage, calls } = counting(expressSessionStorage(new MemoryStore()))
    const requests: string[] = []
    const options = { ...devOptions, fetch: ((input, init) => (requests.push(String(input)), fetch(input, init))) as typeof fetch }
    await completeLaunch(ehr, { patient: 'patient-1' }, new SmartClient('hot', storage, openConfig(), options))
    calls.length = 0
    requests.length = 0
    const fhir = await new SmartClient('hot', storage, openConfig(), options).ready()
    expect(fhir.patient?.id).toBe('patient-1')
    expect(calls).toEqual(['get session:{hot}'])
    expect(requests).toEqual([])
  })
})

describe('a failing store', () => {
  function failingStore(): Store {
    const store = new MemoryStore()
    store.get = (_sid, cb) => cb(new Error('connection lost'))
    return store
  }

  it('is STORAGE_UNAVAILABLE (503) for ready() and callback()', async () => {
    const storage = expressSessionStorage(failingStore())
    const client = new SmartClient('down', storage, openConfig(), devOptions)
    await expect(client.ready()).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', status: 503 })
    await expect(client.callback({ code: 'c', state: 's'.repeat(43) })).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', status: 503 })
  })

  it('a store that hangs fails fast', async () => {
    const store = new MemoryStore()
    store.get = () => undefined
    const client = new SmartClient('hang', expressSessionStorage(store, { timeoutMs: 200 }), openConfig(), devOptions)
    const started = Date.now()
    await expect(client.ready()).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' })
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('S27 a broken stored session fails closed (NO_SESSION), never a guess', async () => {
    const inner = expressSessionStorage(new MemoryStore())
    for (const broken of [
      { kind: 'session', version: 'v', launches: { x: { iss: 42 } } },
      { kind: 'forward', to: 7 },
      { kind: 'forward', to: 'elsewhere', at: 'yesterday', held: [] },
      { kind: 'forward', to: 'elsewhere', at: 1, held: 'all' },
      { kind: 'link', to: null },
      { kind: 'something-else' },
      'not an object',
    ]) {
      await inner.set('session:{broken}', broken)
      await expect(new SmartClient('broken', inner, openConfig(), devOptions).ready()).rejects.toMatchObject({ code: 'NO_SESSION', message: expect.stringContaining('unreadable') })
    }
  })
})
