// Issue 8, as issue 19 left it: no tab breaks another. Concurrent callbacks of one browser keep every launch;
// another tab's callback never fails requests in flight; the old session id reaches the browser's launches
// only with that browser's cookie; each launch lives by its own lifetimes. Over every store kind, in one app
// and across two.
import type { Express } from 'express'
import type { Store } from 'express-session'
import request from 'supertest'
import { expressSessionStorage, type SmartClientOptions } from '../../lib'
import { createMockEhr, launchAs, type MockEhr } from '../../lib/testing'
import { pathOf, recordingStorage, testApp, withCookies } from '../helpers/app'
import { testClock } from '../helpers/smart'
import { storeKinds } from '../helpers/stores'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const launchQuery = (patient: string) => new URL(ehr.launchUrl('http://app.test/launch', { patient })).search

/** Starts a launch in a tab of the browser holding `cookie` (none: a new browser): its cookies after, and the callback it will bring back. */
async function startLaunch(app: Express, cookie: string | undefined, patient: string): Promise<{ cookie: string; callback: string }> {
  const req = request(app).get(`/launch${launchQuery(patient)}`)
  const res = await (cookie ? req.set('Cookie', cookie) : req).expect(302)
  return { cookie: withCookies(cookie, res), callback: pathOf(await ehr.authorize(res.headers.location)) }
}

async function patientServed(app: Express, cookie: string, selector: string): Promise<string | number> {
  const res = await request(app).get('/api/context').set('Cookie', cookie).set('X-Active-Patient', selector)
  return res.status === 200 ? res.body.patient.id : res.status
}

/** The browser's cookies without one of them (a lost or never-set cookie). */
const without = (cookie: string, name: string) => cookie.split('; ').filter((pair) => !pair.startsWith(`${name}=`)).join('; ')

describe.each(storeKinds())('concurrent tabs over %s', (_name, kind) => {
  let store: Store
  let newStore: () => Promise<Store>
  let close: () => Promise<void>
  beforeAll(async () => ({ store, newStore, close } = await kind.open()))
  afterAll(() => close())

  /** Two app instances on the same backing store (two processes over Redis; one MemoryStore shared in-process). */
  async function twoApps(options: SmartClientOptions): Promise<[Express, Express]> {
    return [testApp({ store, options }), testApp({ store: await newStore(), options })]
  }

  describe.each([['one app', false], ['two app instances', true]])('3. concurrent callbacks of one browser, %s', (_label, split) => {
    it.each([1, 2, 3])('round %i: both launches are kept, whichever Set-Cookie the browser keeps', async () => {
      const [app1, app2] = await twoApps({ enableMultiLaunch: true })
      const other = split ? app2 : app1
      const tabA = await startLaunch(app1, undefined, 'patient-1')
      const tabB = await startLaunch(app1, tabA.cookie, 'patient-2')
      // Both callbacks leave before either answer arrives: both carry the jar as it was after the two launches.
      const [backA, backB] = await Promise.all([
        request(app1).get(tabA.callback).set('Cookie', tabB.cookie),
        request(other).get(tabB.callback).set('Cookie', tabB.cookie),
      ])
      expect([backA.status, backB.status]).toEqual([302, 302])
      // Either answer's cookies applied last (the other's lost, or applied first): both launches are reached.
      for (const kept of [withCookies(withCookies(tabB.cookie, backB), backA), withCookies(withCookies(tabB.cookie, backA), backB), withCookies(tabB.cookie, backA), withCookies(tabB.cookie, backB)]) {
        for (const app of [app1, app2]) {
          expect(await patientServed(app, kept, 'patient-1')).toBe('patient-1')
          expect(await patientServed(app, kept, 'patient-2')).toBe('patient-2')
        }
      }
    })
  })

  describe('4. another tab\'s callback never fails requests in flight, nor logs the browser out', () => {
    it('a burst with the pre-callback cookie, across two app instances, is answered 200 for its own patient, at any time after', async () => {
      const clock = testClock()
      const [app1, app2] = await twoApps({ enableMultiLaunch: true, now: clock.now })
      const tabA = await startLaunch(app1, undefined, 'patient-1')
      const cookie = withCookies(tabA.cookie, await request(app1).get(tabA.callback).set('Cookie', tabA.cookie).expect(302))
      const tabB = await startLaunch(app1, cookie, 'patient-2')
      const burst = Array.from({ length: 10 }, (_, i) => patientServed(i % 2 ? app2 : app1, tabB.cookie, 'patient-1'))
      const [callback, ...answers] = await Promise.all([request(app2).get(tabB.callback).set('Cookie', tabB.cookie), ...burst])
      expect(callback.status).toBe(302)
      expect(answers).toEqual(Array(10).fill('patient-1'))

      // The callback's answer never arrived (its Set-Cookie lost): the old id, with the browser's cookie, reaches
      // every launch of the browser — also long after the move.
      clock.advance(11_000)
      expect(await patientServed(app1, tabB.cookie, 'patient-1')).toBe('patient-1')
      expect(await patientServed(app2, tabB.cookie, 'patient-2')).toBe('patient-2')
      clock.advance(3_600_000)
      expect(await patientServed(app2, tabB.cookie, 'patient-1')).toBe('patient-1')
      // S34: the old id without the browser's cookie (a planted copy of it) reaches nothing.
      expect(await patientServed(app1, without(tabB.cookie, 'smart-browser'), 'patient-1')).toBe(401)
      const fresh = withCookies(tabB.cookie, callback)
      expect(await patientServed(app2, fresh, 'patient-1')).toBe('patient-1')
      expect(await patientServed(app1, fresh, 'patient-2')).toBe('patient-2')
    })

    it('a callback arriving with the old cookie long after another tab\'s callback joins the browser\'s session: nothing lost', async () => {
      const clock = testClock()
      const [app1] = await twoApps({ enableMultiLaunch: true, now: clock.now })
      const tabA = await startLaunch(app1, undefined, 'patient-1')
      const tabB = await startLaunch(app1, tabA.cookie, 'patient-2')
      const backA = await request(app1).get(tabA.callback).set('Cookie', tabB.cookie).expect(302)
      clock.advance(11_000)
      // Tab B's callback leaves with the jar as it was before A's answer (A's answer lost).
      const backB = await request(app1).get(tabB.callback).set('Cookie', tabB.cookie).expect(302)
      for (const kept of [withCookies(tabB.cookie, backB), withCookies(withCookies(tabB.cookie, backB), backA)]) {
        expect(await patientServed(app1, kept, 'patient-2')).toBe('patient-2')
        expect(await patientServed(app1, kept, 'patient-1')).toBe('patient-1')
      }
    })
  })

  describe('5. lifetimes per launch (S24)', () => {
    it('S24 an older launch ends at its own absolute lifetime, not the newest one\'s', async () => {
      const clock = testClock()
      const agent = request.agent(testApp({ store, options: { enableMultiLaunch: true, now: clock.now, sessionTtlSeconds: 600, autoRefresh: false } }))
      await launchAs(agent, ehr, { patient: 'patient-1' })
      clock.advance(400_000)
      await launchAs(agent, ehr, { patient: 'patient-2' })
      clock.advance(201_000)
      const old = await agent.get('/api/context').set('X-Active-Patient', 'patient-1')
      expect(old.status).toBe(401)
      expect(old.text).not.toContain('patient-2')
      expect((await agent.get('/api/context').set('X-Active-Patient', 'patient-2').expect(200)).body.patient.id).toBe('patient-2')
      // One live launch left: the header-less page is served with it.
      expect((await agent.get('/api/context').expect(200)).body.patient.id).toBe('patient-2')
    })

    it('S24 idleTimeoutSeconds ends a launch not used for that long; use keeps it alive; the store TTL never outlives it', async () => {
      const clock = testClock()
      const { storage, writes } = recordingStorage(expressSessionStorage(store))
      const agent = request.agent(testApp({ store, storage, options: { now: clock.now, idleTimeoutSeconds: 300 } }))
      await launchAs(agent, ehr, { patient: 'patient-1' })
      for (let minute = 0; minute < 10; minute++) {
        clock.advance(240_000)
        await agent.get('/api/context').expect(200)
      }
      // Every write of a record holding launches (and their tokens).
      const sessionWrites = writes.filter((w) => {
        const value = w.value as { kind?: string; launches?: object } | null
        return value?.kind === 'session' && Object.keys(value.launches ?? {}).length > 0
      })
      expect(sessionWrites.length).toBeGreaterThan(3)
      for (const write of sessionWrites) expect(write.ttl).toBeLessThanOrEqual(300)
      // Use is recorded at most once per tenth of the idle timeout (30 s here): requests in between write nothing.
      const before = writes.length
      for (let second = 0; second < 5; second++) {
        clock.advance(1000)
        await agent.get('/api/context').expect(200)
      }
      expect(writes.length).toBe(before)
      clock.advance(301_000)
      const idle = await agent.get('/api/context')
      expect(idle.status).toBe(401)
    })
  })
})
