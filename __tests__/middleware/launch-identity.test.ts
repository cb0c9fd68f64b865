// Issue 8: a launch is identified by its EHR and its patient; every request is answered for the launch
// its page selected, or refused. Over every store kind.
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

/** What a page asking with `selector` is answered: status, and the EHR and patient of the context. */
async function served(agent: request.Agent, selector?: string): Promise<{ status: number; iss?: string; patient?: string; echo?: string }> {
  const req = agent.get('/api/context')
  const res = await (selector === undefined ? req : req.set('X-Active-Patient', selector))
  return { status: res.status, iss: res.body?.fhirServer, patient: res.body?.patient?.id, echo: res.headers['x-active-patient'] }
}

describe.each(storeKinds())('launch identity over %s', (_name, kind) => {
  let store: Store
  let close: () => Promise<void>
  beforeAll(async () => ({ store, close } = await kind.open()))
  afterAll(() => close())

  describe('1. two EHRs launch the same patient id into one browser session (multi-launch)', () => {
    it('each page keeps its own EHR: the bare id for the first, an opaque handle for the second', async () => {
      const agent = request.agent(testApp({ store, options: multi }))
      const first = await launchAs(agent, ehrA, { patient: 'patient-1' })
      const second = await launchAs(agent, ehrB, { patient: 'patient-1' })
      expect(first.patient).toBe('patient-1')
      expect(second.patient).not.toBe('patient-1')
      expect(second.patient).toMatch(/^launch_[A-Za-z0-9_-]+$/)
      expect(await served(agent, first.patient)).toEqual({ status: 200, iss: ehrA.iss, patient: 'patient-1', echo: first.patient })
      expect(await served(agent, second.patient)).toEqual({ status: 200, iss: ehrB.iss, patient: 'patient-1', echo: second.patient })
      // Without the header the request is ambiguous: refused, never a pick.
      expect((await served(agent)).status).toBe(400)
    })

    it('a relaunch of the same EHR and patient keeps its selector; the other EHR is never reached by it', async () => {
      const agent = request.agent(testApp({ store, options: multi }))
      await launchAs(agent, ehrA, { patient: 'patient-2' })
      const handle = (await launchAs(agent, ehrB, { patient: 'patient-2' })).patient
      expect((await launchAs(agent, ehrB, { patient: 'patient-2' })).patient).toBe(handle)
      expect((await launchAs(agent, ehrA, { patient: 'patient-2' })).patient).toBe('patient-2')
      expect((await served(agent, 'patient-2')).iss).toBe(ehrA.iss)
      expect((await served(agent, handle)).iss).toBe(ehrB.iss)
    })

    it('after the first EHR\'s launch ends, its bare id is refused — never answered with the other EHR\'s patient', async () => {
      const agent = request.agent(testApp({ store, options: multi }))
      await launchAs(agent, ehrA, { patient: 'patient-3' })
      const handle = (await launchAs(agent, ehrB, { patient: 'patient-3' })).patient
      await agent.post('/logout').set('X-Active-Patient', 'patient-3').expect(204)
      expect((await served(agent, 'patient-3')).status).toBe(403)
      expect((await served(agent, handle)).iss).toBe(ehrB.iss)
      // Even with every launch gone and the other EHR launching that id anew, the bare id stays its first EHR's.
      await agent.post('/logout').expect(204)
      const again = await launchAs(agent, ehrB, { patient: 'patient-3' })
      expect(again.patient).not.toBe('patient-3')
      expect((await served(agent, 'patient-3')).status).toBe(403)
      expect((await served(agent, again.patient)).iss).toBe(ehrB.iss)
    })
  })

  describe('2. single-launch mode honours X-Active-Patient', () => {
    it('tab A\'s callback completes last: tab B asking for patient-2 is refused (403), tab A is served', async () => {
      const agent = request.agent(testApp({ store, jsonErrors: true }))
      const tabA = await agent.get(`/launch${launchQuery(ehrA, 'patient-1')}`).expect(302)
      const tabB = await agent.get(`/launch${launchQuery(ehrA, 'patient-2')}`).expect(302)
      const backA = await ehrA.authorize(tabA.headers.location)
      const backB = await ehrA.authorize(tabB.headers.location)
      await agent.get(pathOf(backB)).expect(302)
      await agent.get(pathOf(backA)).expect(302)
      const refused = await agent.get('/api/patient').set('X-Active-Patient', 'patient-2')
      expect({ status: refused.status, body: refused.body }).toEqual({
        status: 403, body: { code: 'UNKNOWN_PATIENT', message: 'X-Active-Patient names another patient than the one this session was launched for' },
      })
      expect(refused.text).not.toContain('patient-1')
      expect(await served(agent, 'patient-1')).toMatchObject({ status: 200, patient: 'patient-1' })
      expect(await served(agent)).toMatchObject({ status: 200, patient: 'patient-1' })
    })

    it('the same patient id relaunched from another EHR: the first EHR\'s page is refused', async () => {
      const agent = request.agent(testApp({ store }))
      await launchAs(agent, ehrA, { patient: 'patient-1' })
      await launchAs(agent, ehrB, { patient: 'patient-1' })
      expect((await served(agent, 'patient-1')).status).toBe(403)
      const current = await served(agent)
      expect(current).toMatchObject({ status: 200, iss: ehrB.iss, patient: 'patient-1' })
      expect((await served(agent, current.echo)).iss).toBe(ehrB.iss)
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
      await launchAs(agent, ehrA, { patient: 'patient-2' })
      const res = await agent.get('/api/patient').set('X-Active-Patient', 'patient-2').expect(200)
      expect(res.headers['x-active-patient']).toBe('patient-2')
      expect(res.headers['x-smart-patient']).toBe('patient-2')
      expect(res.headers['x-smart-iss']).toBe(ehrA.iss)
      expect(res.body.id).toBe('patient-2')
    })
  })

  describe('8. smartLogout()', () => {
    it('multi-launch: ends the active patient\'s launch only and revokes its tokens', async () => {
      const agent = request.agent(testApp({ store, options: multi }))
      await launchAs(agent, ehrA, { patient: 'patient-1' })
      await launchAs(agent, ehrA, { patient: 'patient-2' })
      const revocations = ehrA.stats.revocations
      await agent.post('/logout').set('X-Active-Patient', 'patient-1').expect(204)
      expect(ehrA.stats.revocations - revocations).toBe(2)
      expect((await served(agent, 'patient-1')).status).toBe(403)
      expect(await served(agent, 'patient-2')).toMatchObject({ status: 200, patient: 'patient-2' })
      expect((await agent.post('/logout').set('X-Active-Patient', 'patient-1')).status).toBe(403)
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
