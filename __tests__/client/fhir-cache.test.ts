import { MemoryStore } from 'express-session'
import type * as fhir4 from 'fhir/r4'
import { SmartClient, expressSessionStorage, type SmartClientOptions } from '../../lib'
import { createFhirReadCache } from '../../lib/fhir/fhir-cache'
import { createMockEhr, type LaunchContext, type MockEhr } from '../../lib/testing'
import { completeLaunch, devOptions, openConfig, testClock } from '../helpers/smart'

// The read cache of ReadyClient.read / request({ cache }), through SmartClient.ready() as an app uses it.

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
const config = openConfig({ scope: 'openid fhirUser launch launch/patient patient/*.cruds offline_access' })
// One options object: every client below shares one runtime, hence one read cache, as an app's would.
const options: SmartClientOptions = { ...devOptions }
let n = 0

/** A completed launch; `ready()` builds a new SmartClient and ReadyClient each time, as each HTTP request does. */
async function launch(context: LaunchContext = { patient: 'patient-1' }, opts: SmartClientOptions = options) {
  const sessionId = `fhir-cache-${++n}`
  const client = () => new SmartClient(sessionId, storage, config, opts)
  await completeLaunch(ehr, context, client())
  return { sessionId, ready: () => client().ready() }
}

async function launched(context?: LaunchContext) {
  return (await launch(context)).ready()
}

const observation = (patient: string, text: string): fhir4.Observation => ({
  resourceType: 'Observation',
  status: 'preliminary',
  code: { text },
  subject: { reference: `Patient/${patient}` },
})

describe('read cache', () => {
  it('a second cached read within the ttl sends no request, even from the next request\'s ReadyClient', async () => {
    const clock = testClock()
    const clocked = { ...devOptions, now: clock.now }
    const { ready } = await launch({ patient: 'patient-1' }, clocked)
    const first = await (await ready()).read('Patient', 'patient-1', { cache: { ttlSeconds: 60 } })
    first.active = false
    const before = ehr.fhirLog.length
    const second = await (await ready()).read('Patient', 'patient-1', { cache: { ttlSeconds: 60 } })
    second.active = false
    const third = await (await ready()).read('Patient', 'patient-1', { cache: { ttlSeconds: 60 } })
    expect(ehr.fhirLog.length).toBe(before)
    expect(third).toMatchObject({ id: 'patient-1', active: true })
    clock.advance(61_000)
    await (await ready()).read('Patient', 'patient-1', { cache: { ttlSeconds: 60 } })
    expect(ehr.fhirLog.length).toBe(before + 1)
  })

  it('a read without the cache option neither uses nor fills the cache', async () => {
    const fhir = await launched()
    const before = ehr.fhirLog.length
    await fhir.read('Patient', 'patient-1')
    await fhir.read('Patient', 'patient-1', { cache: { ttlSeconds: 60 } })
    await fhir.read('Patient', 'patient-1')
    expect(ehr.fhirLog.length).toBe(before + 3)
  })

  it('sessions do not share entries', async () => {
    const a = await launched()
    const b = await launched()
    await a.read('Practitioner', 'smart-practitioner-1', { cache: { ttlSeconds: 60 } })
    const before = ehr.fhirLog.length
    await b.read('Practitioner', 'smart-practitioner-1', { cache: { ttlSeconds: 60 } })
    expect(ehr.fhirLog.length).toBe(before + 1)
    expect(ehr.fhirLog.at(-1)!.accessToken).not.toBe(ehr.fhirLog.at(-2)!.accessToken)
  })

  it('patients of one multi-launch session do not share entries', async () => {
    const multi = { ...devOptions, enableMultiLaunch: true as const }
    const sessionId = `fhir-cache-${++n}`
    const client = (activePatient: string | null) => new SmartClient({ sessionId, activePatient }, storage, config, multi)
    await completeLaunch(ehr, { patient: 'patient-1' }, client(null))
    await completeLaunch(ehr, { patient: 'patient-2' }, client(null))
    const read = async (patient: string) => (await client(patient).ready()).read('Practitioner', 'smart-practitioner-1', { cache: { ttlSeconds: 60 } })
    await read('patient-1')
    const before = ehr.fhirLog.length
    await read('patient-2')
    expect(ehr.fhirLog.length).toBe(before + 1)
    await read('patient-1')
    await read('patient-2')
    expect(ehr.fhirLog.length).toBe(before + 1)
  })

  it('errors are never cached', async () => {
    const fhir = await launched()
    const before = ehr.fhirLog.length
    for (let i = 0; i < 2; i++) await expect(fhir.read('Patient', 'missing', { cache: { ttlSeconds: 60 } })).rejects.toMatchObject({ status: 404 })
    expect(ehr.fhirLog.length).toBe(before + 2)
  })

  it('a write through the client drops its cached read of that resource', async () => {
    const fhir = await launched({ patient: 'patient-3' })
    const created = await fhir.create(observation('patient-3', 'cached'))
    await fhir.read('Observation', created.id!, { cache: { ttlSeconds: 60 } })
    await fhir.update({ ...created, status: 'final' })
    await expect(fhir.read('Observation', created.id!, { cache: { ttlSeconds: 60 } })).resolves.toMatchObject({ status: 'final' })
  })

  it('cache options are checked: GET only, positive ttl', async () => {
    const fhir = await launched()
    await expect(fhir.request('Observation', { method: 'POST', body: {}, cache: { ttlSeconds: 60 } })).rejects.toThrow(new TypeError('request: cache applies to GET only, not POST'))
    await expect(fhir.read('Patient', 'patient-1', { cache: { ttlSeconds: 0 } })).rejects.toThrow(new TypeError('cache.ttlSeconds must be a positive number of seconds'))
  })

  it('is bounded: the 501st entry evicts the least recently used one', async () => {
    const fhir = await launched()
    const cached = (i: number) => fhir.request(`Patient/patient-1?_n=${i}`, { cache: { ttlSeconds: 600 } })
    for (let i = 0; i <= 500; i++) await cached(i)
    const before = ehr.fhirLog.length
    await cached(500)
    await cached(1)
    expect(ehr.fhirLog.length).toBe(before)
    await cached(0)
    expect(ehr.fhirLog.length).toBe(before + 1)
  })

  it('createFhirReadCache keeps at most maxEntries, most recently used first', () => {
    const clock = testClock()
    const cache = createFhirReadCache(2, clock.now)
    cache.set('a', { v: 1 }, 10)
    cache.set('b', { v: 2 }, 10)
    expect(cache.get('a')).toEqual({ v: 1 })
    cache.set('c', { v: 3 }, 10)
    expect([cache.get('a'), cache.get('b'), cache.get('c'), cache.size]).toEqual([{ v: 1 }, undefined, { v: 3 }, 2])
    clock.advance(10_000)
    expect(cache.get('a')).toBeUndefined()
    expect(() => createFhirReadCache(0)).toThrow(new TypeError('createFhirReadCache: maxEntries must be a positive integer'))
  })
})
