// Issue 10: a protected request costs no store read beyond express-session's own look-up while the access
// token is fresh — and every guarantee still holds across app instances: a logout or a refused refresh on one
// instance is seen by every instance on the next request; a refresh on one is used by the others.
import { createHash, randomBytes } from 'node:crypto'
import type { Express } from 'express'
import { MemoryStore, type SessionData, type Store } from 'express-session'
import request from 'supertest'
import { expressSessionStorage, type SmartClientOptions, type SmartStorage } from '../../lib'
import { createMockEhr, launchAs, type MockEhr } from '../../lib/testing'
import { launchedCookie, recordingStorage, testApp } from '../helpers/app'
import { testClock } from '../helpers/smart'
import { storeKinds, storeSet } from '../helpers/stores'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

/** The page's selector of a launch of `patient` by the mock EHR, testApp trusting any EHR (issue 19): `<patient>_<issuer tag>`. */
const selectorOf = (patient: string) => `${patient}_${createHash('sha256').update(ehr.iss.replace(/\/$/, '')).digest('base64url').slice(0, 12)}`

function countingReads(inner: SmartStorage): { storage: SmartStorage; reads: string[] } {
  const reads: string[] = []
  return {
    reads,
    storage: { ...inner, get: (key) => (reads.push(key), inner.get(key)), setIfAbsent: inner.setIfAbsent?.bind(inner) },
  }
}

describe.each(storeKinds())('the hot path over %s', (_name, kind) => {
  let store: Store
  let newStore: () => Promise<Store>
  let close: () => Promise<void>
  beforeAll(async () => ({ store, newStore, close } = await kind.open()))
  afterAll(() => close())

  /** Two app instances on one backing store, each with its own SMART storage (and so its own copies). */
  async function twoInstances(options: SmartClientOptions = {}): Promise<Array<{ app: Express; reads: string[] }>> {
    return Promise.all([store, await newStore()].map((s) => {
      const { storage, reads } = countingReads(expressSessionStorage(s))
      return { app: testApp({ store: s, storage, options, jsonErrors: true }), reads }
    }))
  }

  it('requests after the first read no SMART record from the store while the token is fresh', async () => {
    const [one] = await twoInstances()
    const agent = request.agent(one.app)
    await launchAs(agent, ehr, { patient: 'patient-1' })
    await agent.get('/api/context').expect(200)
    one.reads.length = 0
    for (let i = 0; i < 20; i++) expect((await agent.get('/api/context').expect(200)).body.patient.id).toBe('patient-1')
    expect(one.reads).toEqual([])
  })

  it('a logout on one instance is seen by the other on the next request', async () => {
    const [a, b] = await twoInstances({ enableMultiLaunch: true })
    const cookie = await launchedCookie(a.app, ehr, { patient: 'patient-2' }, await launchedCookie(a.app, ehr, { patient: 'patient-1' }))
    const ask = (app: Express, patient: string) => request(app).get('/api/context').set('Cookie', cookie).set('X-Active-Patient', selectorOf(patient))
    // Instance B serves the session twice (its copy is warm and the session carries its version).
    for (let i = 0; i < 2; i++) await ask(b.app, 'patient-1').expect(200)
    await request(a.app).post('/logout').set('Cookie', cookie).set('X-Active-Patient', selectorOf('patient-1')).expect(204)
    // The closed launch's page is told it was closed (401), never served from B's copy.
    const closed = await ask(b.app, 'patient-1')
    expect({ status: closed.status, code: closed.body.code, message: closed.body.message }).toEqual({
      status: 401, code: 'SESSION_EXPIRED', message: 'The launch this page was opened for was closed; launch the app again from the EHR',
    })
    expect((await ask(b.app, 'patient-2').expect(200)).body.patient.id).toBe('patient-2')
  })

  it('a refused refresh on one instance is seen by the other on the next request', async () => {
    const clock = testClock()
    const refusing: typeof fetch = async (input, init) =>
      String(init?.body ?? '').includes('grant_type=refresh_token') ? Response.json({ error: 'invalid_grant' }, { status: 400 }) : fetch(input, init)
    const [a, b] = await twoInstances({ now: clock.now })
    const cookie = await launchedCookie(a.app, ehr, { patient: 'patient-2' })
    await request(b.app).get('/api/context').set('Cookie', cookie).expect(200)
    await request(b.app).get('/api/context').set('Cookie', cookie).expect(200)
    const refusingApp = testApp({ store, options: { now: clock.now, fetch: refusing }, jsonErrors: true })
    clock.advance(3600 * 1000)
    const refused = await request(refusingApp).get('/api/context').set('Cookie', cookie)
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 401, code: 'SESSION_EXPIRED' })
    const seen = await request(b.app).get('/api/context').set('Cookie', cookie)
    expect({ status: seen.status, code: seen.body.code }).toEqual({ status: 401, code: 'SESSION_EXPIRED' })
  })

  it('a refresh through a FHIR 401 on one instance is used by the other (one refresh grant)', async () => {
    const [a, b] = await twoInstances()
    const cookie = await launchedCookie(a.app, ehr, { patient: 'patient-3' })
    await request(a.app).get('/api/patient').set('Cookie', cookie).expect(200)
    await request(b.app).get('/api/patient').set('Cookie', cookie).expect(200)
    await request(b.app).get('/api/patient').set('Cookie', cookie).expect(200)
    ehr.expireAccessTokens()
    const grants = ehr.stats.refreshGrants
    await request(a.app).get('/api/patient').set('Cookie', cookie).expect(200)
    expect((await request(b.app).get('/api/patient').set('Cookie', cookie).expect(200)).body.id).toBe('patient-3')
    expect(ehr.stats.refreshGrants - grants).toBe(1)
  })

  /** The access tokens the FHIR server saw on the last `n` requests. */
  const lastTokens = (n: number) => ehr.fhirLog.slice(-n).map((entry) => entry.accessToken)

  it('two browsers launched for the same patient are served with their own tokens, request after request, with and without encryptionKey', async () => {
    for (const options of [{}, { encryptionKey: randomBytes(32).toString('base64') }] as SmartClientOptions[]) {
      const [a] = await twoInstances(options)
      const cookies = [await launchedCookie(a.app, ehr, { patient: 'patient-1' }), await launchedCookie(a.app, ehr, { patient: 'patient-1' })]
      const seen: Array<Set<string | null>> = [new Set(), new Set()]
      for (let i = 0; i < 6; i++) {
        await request(a.app).get('/api/patient').set('Cookie', cookies[i % 2]).expect(200)
        seen[i % 2].add(lastTokens(1)[0])
      }
      expect(seen.map((tokens) => tokens.size)).toEqual([1, 1])
      expect([...seen[0]][0]).not.toBe([...seen[1]][0])
    }
  })

  it('after a refresh on the hot path, every later request carries the new token (sealed tokens too)', async () => {
    const clock = testClock()
    const [a] = await twoInstances({ now: clock.now, encryptionKey: randomBytes(32).toString('base64') })
    const cookie = await launchedCookie(a.app, ehr, { patient: 'patient-2' })
    for (let i = 0; i < 3; i++) await request(a.app).get('/api/patient').set('Cookie', cookie).expect(200)
    const [before] = lastTokens(1)
    const grants = ehr.stats.refreshGrants
    clock.advance(3600 * 1000 - 30_000)
    for (let i = 0; i < 4; i++) await request(a.app).get('/api/patient').set('Cookie', cookie).expect(200)
    expect(ehr.stats.refreshGrants - grants).toBe(1)
    const after = lastTokens(4)
    expect(new Set(after).size).toBe(1)
    expect(after[0]).not.toBe(before)
  })

  it('req.smart, shared by a session\'s requests, cannot be changed by one of them: writes throw, and the next request sees the launch as stored', async () => {
    const writes: Record<string, (smart: Record<string, any>) => void> = {
      'a property of its own': (smart) => void (smart.note = 'from another request'),
      'patient.id': (smart) => void (smart.patient.id = 'patient-2'),
      'user.id': (smart) => void (smart.user.id = 'someone-else'),
      'idTokenClaims.sub': (smart) => void (smart.idTokenClaims.sub = 'someone-else'),
      'fhirContext': (smart) => void smart.fhirContext.push({ reference: 'Patient/patient-2' }),
      'scope': (smart) => void (smart.scope = 'patient/*.*'),
    }
    const app = testApp({ store, jsonErrors: true, routes: (router, requireContext) => router.get('/api/write', requireContext, (req, res) => {
      const refused = Object.entries(writes).filter(([, write]) => {
        try {
          write(req.smart as unknown as Record<string, any>)
          return false
        } catch (err) {
          return err instanceof TypeError
        }
      }).map(([name]) => name)
      res.json({ refused })
    }) })
    const cookie = await launchedCookie(app, ehr, { patient: 'patient-1', fhirContext: [{ reference: 'Encounter/patient-1-encounter-1' }] })
    const before = (await request(app).get('/api/context').set('Cookie', cookie).expect(200)).body
    expect(before.patient.id).toBe('patient-1')
    for (let i = 0; i < 3; i++) {
      expect((await request(app).get('/api/write').set('Cookie', cookie).expect(200)).body.refused).toEqual(Object.keys(writes))
    }
    const after = await request(app).get('/api/context').set('Cookie', cookie).expect(200)
    expect(after.body).toEqual(before)
    expect(after.body.note).toBeUndefined()
    expect(after.headers['x-smart-patient']).toBe('patient-1')
  })

  it('an app writing back an older copy of the session is bounded: no copy answers for longer than 2 s', async () => {
    const clock = testClock()
    const [a, b] = await twoInstances({ enableMultiLaunch: true, now: clock.now })
    const cookie = await launchedCookie(a.app, ehr, { patient: 'patient-1' })
    await request(a.app).get('/api/context').set('Cookie', cookie).expect(200)
    await request(b.app).get('/api/context').set('Cookie', cookie).expect(200)
    // The cookie is the browser's whole jar (session and browser cookies): the session id is connect.sid's.
    const sid = /(?:^|;\s*)connect\.sid=s%3A([^.;]+)\./.exec(cookie)![1]
    const before = await new Promise<unknown>((resolve, reject) => store.get(sid, (err, data) => (err ? reject(err) : resolve(data))))
    expect(before).toMatchObject({ smartOnFhir: expect.anything() })
    await request(a.app).post('/logout').set('Cookie', cookie).expect(204)
    // An app route that loaded the session before the logout saves it after: the old version is back.
    await storeSet(store, sid, before as never)
    clock.advance(2100)
    expect((await request(b.app).get('/api/context').set('Cookie', cookie)).status).toBe(401)
  })
})

// Issue 24: a launch writes two things, the pending launch (under its state) and the browser session. Both
// are sent to the store at once, so the launch costs one round trip, not two in a row.
it('smartLaunch writes the pending launch and the browser session at once: both writes start before either ends', async () => {
  const events: string[] = []
  class SlowStore extends MemoryStore {
    override set(sid: string, session: SessionData, callback?: (err?: unknown) => void): void {
      const what = sid.startsWith('smart:pending:') ? 'pending' : sid.startsWith('smart:') ? sid : 'session'
      events.push(`start ${what}`)
      setTimeout(() => {
        events.push(`end ${what}`)
        super.set(sid, session, callback)
      }, 100)
    }
  }
  const store = new SlowStore()
  const app = testApp({ store, storage: expressSessionStorage(store), jsonErrors: true })
  const res = await request(app).get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`)
  expect(res.status).toBe(302)
  expect(events.slice(0, 2).sort()).toEqual(['start pending', 'start session'])
  expect(events.slice(2).sort()).toEqual(['end pending', 'end session'])
})

// The copy answers without a SmartClient only while nothing is due (issue 24): the request that crosses the
// refresh lead refreshes, and the one that crosses the touch interval records the use, even when the copy of
// the session is fresh. 500 ms steps keep every copy younger than its 2 s.
describe('the copy never delays what is due', () => {
  let shortEhr: MockEhr
  beforeAll(async () => (shortEhr = await createMockEhr({ accessTokenTtlSeconds: 60 })))
  afterAll(() => shortEhr.close())

  it('the first request past the refresh lead refreshes (one grant), never the next copy miss', async () => {
    const clock = testClock()
    const store = new MemoryStore()
    const app = testApp({ store, options: { now: clock.now, refreshLeewaySeconds: 20, idleTimeoutSeconds: false }, jsonErrors: true })
    const cookie = await launchedCookie(app, shortEhr, { patient: 'patient-1' })
    const grants = shortEhr.stats.refreshGrants
    // The token lives 60 s from the callback (the clock stood still since): due from 40 s on.
    clock.advance(38_000)
    const grantsAt: number[] = []
    for (let step = 0; step < 8; step++) {
      await request(app).get('/api/context').set('Cookie', cookie).expect(200)
      grantsAt.push(shortEhr.stats.refreshGrants - grants)
      clock.advance(500)
    }
    // Requests at 38.0, 38.5, … 41.5 s: the one at 40.0 s is the first due.
    expect(grantsAt).toEqual([0, 0, 0, 0, 1, 1, 1, 1])
  })

  it('the first request past the touch interval records the use (one write of the session record)', async () => {
    const clock = testClock()
    const memory = new MemoryStore()
    const { storage, writes } = recordingStorage(expressSessionStorage(memory))
    const app = testApp({ store: memory, storage, options: { now: clock.now, idleTimeoutSeconds: 100 }, jsonErrors: true })
    const cookie = await launchedCookie(app, shortEhr, { patient: 'patient-1' })
    // Idle timeout 100 s: a use is recorded at most every 10 s, the first 10 s after the callback.
    clock.advance(8_000)
    const touchesAt: number[] = []
    for (let step = 0; step < 8; step++) {
      writes.length = 0
      await request(app).get('/api/context').set('Cookie', cookie).expect(200)
      touchesAt.push(writes.filter((w) => w.key.startsWith('session:')).length)
      clock.advance(500)
    }
    // Requests at 8.0, 8.5, … 11.5 s: the one at 10.0 s records the use, and the next ones need not.
    expect(touchesAt).toEqual([0, 0, 0, 0, 1, 0, 0, 0])
  })
})
