// Issue 8: a launch is identified by its EHR and its patient; every request is answered for the launch
// its page selected, or refused. Issue 19: the page's selector is a pure function of (EHR, patient) —
// `<patient>_<EHR tag>`, or the bare patient id where the app trusts exactly one EHR. Over every store kind.
import { createHash } from 'node:crypto'
import type { Store } from 'express-session'
import request from 'supertest'
import { expressSessionStorage } from '../../lib'
import { createMockEhr, launchAs, type MockEhr } from '../../lib/testing'
import { pathOf, recordingStorage, testApp } from '../helpers/app'
import { storeKinds } from '../helpers/stores'

let ehrA: MockEhr
let ehrB: MockEhr
beforeAll(async () => ([ehrA, ehrB] = await Promise.all([createMockEhr(), createMockEhr()])))
afterAll(() => Promise.all([ehrA.close(), ehrB.close()]))

const multi = { enableMultiLaunch: true }
const launchQuery = (ehr: MockEhr, patient: string) => new URL(ehr.launchUrl('http://app.test/launch', { patient })).search

/**
 * The selector of a launch of `patient` by `ehr` in an app that trusts several EHRs (or any): the patient id,
 * `_`, and 12 base64url characters of the SHA-256 of the issuer (without a trailing slash). Computed here
 * independently of the library, so that a change of the scheme is seen.
 */
const selectorOf = (ehr: MockEhr, patient: string) =>
  `${patient}_${createHash('sha256').update(ehr.iss.replace(/\/$/, '')).digest('base64url').slice(0, 12)}`

/** The `?patient=` the callback's redirect gave the page. */
const pageSelector = (res: request.Response) => new URL(res.headers.location, 'http://app.test').searchParams.get('patient')

/** What a page asking with `selector` is answered: status, the EHR and patient of the context, or the error (jsonErrors apps). */
async function served(agent: request.Agent, selector?: string): Promise<{ status: number; iss?: string; patient?: string; echo?: string; code?: string; message?: string }> {
  const req = agent.get('/api/context')
  const res = await (selector === undefined ? req : req.set('X-Active-Patient', selector))
  return {
    status: res.status, iss: res.body?.fhirServer, patient: res.body?.patient?.id, echo: res.headers['x-active-patient'],
    code: res.body?.code, message: res.body?.message,
  }
}

const CLOSED = { status: 401, code: 'SESSION_EXPIRED', message: 'The launch this page was opened for was closed; launch the app again from the EHR' }
const REPLACED = { status: 403, code: 'UNKNOWN_PATIENT', message: 'The launch this page was opened for was replaced by a later launch of another patient; launch the app again from the EHR' }

describe.each(storeKinds())('launch identity over %s', (_name, kind) => {
  let store: Store
  let close: () => Promise<void>
  beforeAll(async () => ({ store, close } = await kind.open()))
  afterAll(() => close())

  describe('1. two EHRs launch the same patient id into one browser session (multi-launch)', () => {
    it('each EHR\'s page gets its own qualified selector <patient>_<tag>; each selects only its own launch; the bare id is refused', async () => {
      const agent = request.agent(testApp({ store, options: multi, jsonErrors: true }))
      const first = await launchAs(agent, ehrA, { patient: 'patient-1' })
      const second = await launchAs(agent, ehrB, { patient: 'patient-1' })
      expect(first.patient).toBe(selectorOf(ehrA, 'patient-1'))
      expect(second.patient).toBe(selectorOf(ehrB, 'patient-1'))
      expect(second.patient).not.toBe(first.patient)
      expect(await served(agent, first.patient)).toEqual({ status: 200, iss: ehrA.iss, patient: 'patient-1', echo: first.patient })
      expect(await served(agent, second.patient)).toEqual({ status: 200, iss: ehrB.iss, patient: 'patient-1', echo: second.patient })
      // The bare id names a patient both EHRs launched: refused, never a pick.
      expect(await served(agent, 'patient-1')).toMatchObject({ status: 403, code: 'UNKNOWN_PATIENT' })
      // Without the header the request is ambiguous: refused, never a pick.
      expect(await served(agent)).toMatchObject({ status: 400, code: 'ACTIVE_PATIENT_REQUIRED' })
    })

    it('an app configured with exactly one knownFhirServer gives the bare patient id as the selector', async () => {
      const config = { allowAnyIssuer: undefined, knownFhirServers: [{ issuer: ehrA.iss, type: 'public' }] } as never
      const agent = request.agent(testApp({ store, options: multi, config, jsonErrors: true }))
      const { patient } = await launchAs(agent, ehrA, { patient: 'patient-1' })
      expect(patient).toBe('patient-1')
      expect(await served(agent, 'patient-1')).toEqual({ status: 200, iss: ehrA.iss, patient: 'patient-1', echo: 'patient-1' })
      // The qualified form is not this app's selector: it selects nothing.
      expect(await served(agent, selectorOf(ehrA, 'patient-1'))).toMatchObject({ status: 403, code: 'UNKNOWN_PATIENT' })
    })

    it('a relaunch of the same EHR and patient keeps its selector; the other EHR is never reached by it', async () => {
      const agent = request.agent(testApp({ store, options: multi, jsonErrors: true }))
      const fromA = (await launchAs(agent, ehrA, { patient: 'patient-2' })).patient
      const fromB = (await launchAs(agent, ehrB, { patient: 'patient-2' })).patient
      expect(fromB).not.toBe(fromA)
      expect((await launchAs(agent, ehrB, { patient: 'patient-2' })).patient).toBe(fromB)
      expect((await launchAs(agent, ehrA, { patient: 'patient-2' })).patient).toBe(fromA)
      expect(await served(agent, fromA)).toMatchObject({ status: 200, iss: ehrA.iss, echo: fromA })
      expect(await served(agent, fromB)).toMatchObject({ status: 200, iss: ehrB.iss, echo: fromB })
      expect(await served(agent, 'patient-2')).toMatchObject({ status: 403, code: 'UNKNOWN_PATIENT' })
    })

    it('after the first EHR\'s launch ends, its page is refused — never answered with the other EHR\'s patient', async () => {
      const agent = request.agent(testApp({ store, options: multi, jsonErrors: true }))
      const fromA = (await launchAs(agent, ehrA, { patient: 'patient-3' })).patient
      const fromB = (await launchAs(agent, ehrB, { patient: 'patient-3' })).patient
      // The bare id is ambiguous here: a logout naming it ends nothing.
      expect((await agent.post('/logout').set('X-Active-Patient', 'patient-3')).status).toBe(403)
      expect(await served(agent, fromA)).toMatchObject({ status: 200, iss: ehrA.iss })
      await agent.post('/logout').set('X-Active-Patient', fromA).expect(204)
      expect(await served(agent, fromA)).toEqual(CLOSED)
      expect(await served(agent, fromB)).toMatchObject({ status: 200, iss: ehrB.iss, echo: fromB })
      // Even with every launch gone and the other EHR launching that id anew, the first EHR's page stays refused.
      await agent.post('/logout').expect(204)
      const again = await launchAs(agent, ehrB, { patient: 'patient-3' })
      expect(again.patient).toBe(fromB)
      expect(await served(agent, fromA)).toEqual(CLOSED)
      expect(await served(agent, again.patient)).toMatchObject({ status: 200, iss: ehrB.iss, patient: 'patient-3' })
      // A bare id (typed, not a page's) selects the one live launch of that patient, and the answer says whose.
      expect(await served(agent, 'patient-3')).toEqual({ status: 200, iss: ehrB.iss, patient: 'patient-3', echo: fromB })
    })
  })

  describe('2. single-launch mode honours X-Active-Patient', () => {
    it('tab A\'s callback completes last: tab B\'s page (patient-2) is refused (403), tab A is served, no header is 400', async () => {
      const agent = request.agent(testApp({ store, jsonErrors: true }))
      const tabA = await agent.get(`/launch${launchQuery(ehrA, 'patient-1')}`).expect(302)
      const tabB = await agent.get(`/launch${launchQuery(ehrA, 'patient-2')}`).expect(302)
      const backA = await ehrA.authorize(tabA.headers.location)
      const backB = await ehrA.authorize(tabB.headers.location)
      // Single-launch mode too: every callback gives its page the selector of its launch.
      const pageB = pageSelector(await agent.get(pathOf(backB)).expect(302))
      const pageA = pageSelector(await agent.get(pathOf(backA)).expect(302))
      expect([pageA, pageB]).toEqual([selectorOf(ehrA, 'patient-1'), selectorOf(ehrA, 'patient-2')])
      const refused = await agent.get('/api/patient').set('X-Active-Patient', pageB!)
      expect({ status: refused.status, body: refused.body }).toEqual({ status: REPLACED.status, body: { code: REPLACED.code, message: REPLACED.message } })
      expect(refused.text).not.toContain('patient-1')
      expect(await served(agent, 'patient-2')).toMatchObject({ status: 403, code: 'UNKNOWN_PATIENT' })
      expect(await served(agent, pageA!)).toMatchObject({ status: 200, patient: 'patient-1', echo: pageA })
      // Without the header the page may be tab B's, still showing patient-2: refused, never answered for patient-1.
      expect(await served(agent)).toMatchObject({ status: 400, code: 'ACTIVE_PATIENT_REQUIRED' })
    })

    it('the same patient id relaunched from another EHR: the first EHR\'s page is refused', async () => {
      const agent = request.agent(testApp({ store, jsonErrors: true }))
      const fromA = (await launchAs(agent, ehrA, { patient: 'patient-1' })).patient
      const fromB = (await launchAs(agent, ehrB, { patient: 'patient-1' })).patient
      expect(fromB).not.toBe(fromA)
      expect(await served(agent, fromA)).toEqual(REPLACED)
      expect(await served(agent)).toMatchObject({ status: 400, code: 'ACTIVE_PATIENT_REQUIRED' })
      expect(await served(agent, fromB)).toEqual({ status: 200, iss: ehrB.iss, patient: 'patient-1', echo: fromB })
    })

    it('a malformed X-Active-Patient is 403 even on a session without launches (the id check refuses, not the session)', async () => {
      const res = await request(testApp({ store, jsonErrors: true })).get('/api/context').set('X-Active-Patient', '../patient-1')
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 403, code: 'UNKNOWN_PATIENT' })
      expect(res.body.message).toMatch(/X-Active-Patient header does not name a patient/)
    })

    it('a repeated X-Active-Patient is refused, never resolved to one of its values; an empty one counts as absent', async () => {
      const agent = request.agent(testApp({ store, jsonErrors: true }))
      await launchAs(agent, ehrA, { patient: 'patient-1' })
      // Two header lines (supertest sends an array value as one line each).
      const repeated = await agent.get('/api/context').set('X-Active-Patient', ['patient-1', 'patient-1'] as unknown as string)
      expect({ status: repeated.status, code: repeated.body.code }).toEqual({ status: 403, code: 'UNKNOWN_PATIENT' })
      expect(await served(agent, '')).toMatchObject({ status: 200, patient: 'patient-1' })
    })
  })

  describe('6. a patient that is not a FHIR id', () => {
    it.each(['a/b', 'x?y', 'p'.repeat(65), 'a b'])('%s is refused at the callback (502 TOKEN_EXCHANGE_FAILED), its tokens revoked, nothing stored', async (patient) => {
      const { storage, writes } = recordingStorage(expressSessionStorage(store))
      const agent = request.agent(testApp({ store, storage, options: multi, jsonErrors: true }))
      const launch = await agent.get(`/launch${launchQuery(ehrA, patient)}`).expect(302)
      const back = await ehrA.authorize(launch.headers.location)
      const revocations = ehrA.stats.revocations
      writes.length = 0
      const res = await agent.get(pathOf(back))
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 502, code: 'TOKEN_EXCHANGE_FAILED' })
      expect(writes.filter((w) => !w.key.startsWith('used:'))).toEqual([])
      expect(ehrA.stats.revocations).toBeGreaterThan(revocations)
      expect((await served(agent)).status).toBe(401)
    })
  })

  describe('7. every answer names the launch it was served for', () => {
    it('X-Active-Patient echoes the selector, X-Smart-Patient and X-Smart-Iss name patient and EHR', async () => {
      const agent = request.agent(testApp({ store, options: multi }))
      const { patient: selector } = await launchAs(agent, ehrA, { patient: 'patient-2' })
      expect(selector).toBe(selectorOf(ehrA, 'patient-2'))
      // The page's selector, or the bare id (one EHR launched patient-2): the echo is the selector either way.
      for (const sent of [selector, 'patient-2']) {
        const res = await agent.get('/api/patient').set('X-Active-Patient', sent).expect(200)
        expect(res.headers['x-active-patient']).toBe(selector)
        expect(res.headers['x-smart-patient']).toBe('patient-2')
        expect(res.headers['x-smart-iss']).toBe(ehrA.iss)
        expect(res.body.id).toBe('patient-2')
      }
    })
  })

  describe('8. smartLogout()', () => {
    it('multi-launch: ends the active patient\'s launch only and revokes its tokens', async () => {
      const agent = request.agent(testApp({ store, options: multi, jsonErrors: true }))
      const one = (await launchAs(agent, ehrA, { patient: 'patient-1' })).patient
      const two = (await launchAs(agent, ehrA, { patient: 'patient-2' })).patient
      const revocations = ehrA.stats.revocations
      await agent.post('/logout').set('X-Active-Patient', one).expect(204)
      expect(ehrA.stats.revocations - revocations).toBe(2)
      // The closed launch's page is told so (401), never answered for the other patient.
      expect(await served(agent, one)).toEqual(CLOSED)
      expect((await served(agent, 'patient-1')).status).toBe(401)
      expect(await served(agent, two)).toMatchObject({ status: 200, patient: 'patient-2' })
      // Closing it again: refused as closed, and nothing else is ended or revoked.
      const again = await agent.post('/logout').set('X-Active-Patient', one)
      expect({ status: again.status, code: again.body.code }).toEqual({ status: 401, code: 'SESSION_EXPIRED' })
      expect(ehrA.stats.revocations - revocations).toBe(2)
      expect(await served(agent, two)).toMatchObject({ status: 200, patient: 'patient-2' })
    })

    it('single-launch: ends the session\'s launch; a header naming another patient ends nothing (403)', async () => {
      const agent = request.agent(testApp({ store }))
      await launchAs(agent, ehrA, { patient: 'patient-1' })
      expect((await agent.post('/logout').set('X-Active-Patient', 'patient-2')).status).toBe(403)
      expect((await served(agent)).status).toBe(200)
      await agent.post('/logout').expect(204)
      expect((await served(agent)).status).toBe(401)
      await agent.post('/logout').expect(204)
    })
  })
})
