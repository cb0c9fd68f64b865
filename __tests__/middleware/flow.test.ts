import { createHash } from 'node:crypto'
import type { Store } from 'express-session'
import request from 'supertest'
import { createMockEhr, launchAs, type MockEhr } from '../../lib/testing'
import { secretRecordingFetch, testApp } from '../helpers/app'
import { memoryStoreKind, storeKinds } from '../helpers/stores'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

function launchQuery(context: { patient: string; encounter?: string }): string {
  return new URL(ehr.launchUrl('http://app.test/launch', context)).search
}

/** The selector the callback gives a page of `patient` (issue 19): `<patient>_<12 chars of the issuer's SHA-256>`, testApp trusting any EHR. */
const selectorOf = (patient: string) => `${patient}_${createHash('sha256').update(ehr.iss.replace(/\/$/, '')).digest('base64url').slice(0, 12)}`

function cookieOf(res: request.Response): string {
  const header = ([] as string[]).concat(res.headers['set-cookie'] ?? [])
  const cookie = header.find((c) => c.startsWith('connect.sid='))
  if (!cookie) throw new Error(`no session cookie in a ${res.status} answer`)
  return cookie
}

describe.each(storeKinds())('middleware flow over %s', (_name, kind) => {
  let store: Store
  let close: () => Promise<void>
  beforeAll(async () => ({ store, close } = await kind.open()))
  afterAll(() => close())

  it('launch → 302 to the EHR, callback → 302 to redirectUrl, then req.smart serves the patient', async () => {
    const agent = request.agent(testApp({ store }))
    const launch = await agent.get(`/launch${launchQuery({ patient: 'patient-1', encounter: 'patient-1-encounter-1' })}`).expect(302)
    expect(launch.headers.location.startsWith(ehr.issuer)).toBe(true)
    const back = await ehr.authorize(launch.headers.location)
    expect(back.pathname).toBe('/callback')
    const callback = await agent.get(`${back.pathname}${back.search}`).expect(302)
    // Single-launch mode too, the redirect carries the page's selector.
    expect(callback.headers.location).toBe(`/app?patient=${selectorOf('patient-1')}`)

    const context = await agent.get('/api/context').expect(200)
    expect(context.body).toMatchObject({ patient: { id: 'patient-1' }, encounter: { id: 'patient-1-encounter-1' }, fhirServer: ehr.iss })
    const patient = await agent.get('/api/patient').expect(200)
    expect(patient.body).toMatchObject({ resourceType: 'Patient', id: 'patient-1' })
  })

  it('S22 the session cookie changes across the callback and the old cookie no longer reaches the context', async () => {
    const app = testApp({ store })
    const agent = request.agent(app)
    const launch = await agent.get(`/launch${launchQuery({ patient: 'patient-1' })}`).expect(302)
    const before = cookieOf(launch).split(';')[0]
    const back = await ehr.authorize(launch.headers.location)
    const callback = await agent.get(`${back.pathname}${back.search}`).expect(302)
    const after = cookieOf(callback).split(';')[0]
    expect(after).not.toBe(before)
    await agent.get('/api/context').expect(200)
    await request(app).get('/api/context').set('Cookie', before).expect(401)
  })

  it('S23 cookies of the documented setup are HttpOnly and SameSite=Lax', async () => {
    const agent = request.agent(testApp({ store }))
    const launch = await agent.get(`/launch${launchQuery({ patient: 'patient-1' })}`).expect(302)
    const cookie = cookieOf(launch)
    expect(cookie).toMatch(/;\s*HttpOnly/i)
    expect(cookie).toMatch(/;\s*SameSite=Lax/i)
    // The launch cookie and, after the callback, the browser cookie are set alike.
    const back = await ehr.authorize(launch.headers.location)
    const callback = await agent.get(`${back.pathname}${back.search}`).expect(302)
    const smartCookies = [launch, callback].flatMap((res) => ([] as string[]).concat(res.headers['set-cookie'] ?? [])).filter((c) => c.startsWith('smart-'))
    expect(smartCookies.map((c) => c.split('=')[0])).toEqual(expect.arrayContaining([expect.stringMatching(/^smart-launch-/), 'smart-browser']))
    for (const set of smartCookies) {
      expect(set).toMatch(/;\s*HttpOnly/i)
      expect(set).toMatch(/;\s*SameSite=Lax/i)
    }
  })

  it('single-launch: a second launch replaces the first; X-Active-Patient naming the first is refused (403), never answered with the second', async () => {
    const agent = request.agent(testApp({ store, jsonErrors: true }))
    const first = await launchAs(agent, ehr, { patient: 'patient-1' })
    const second = await launchAs(agent, ehr, { patient: 'patient-2' })
    expect([first.patient, second.patient]).toEqual([selectorOf('patient-1'), selectorOf('patient-2')])
    expect((await agent.get('/api/context').set('X-Active-Patient', second.patient).expect(200)).body.patient.id).toBe('patient-2')
    expect((await agent.get('/api/context').set('X-Active-Patient', 'patient-2').expect(200)).body.patient.id).toBe('patient-2')
    for (const selector of [first.patient, 'patient-1']) {
      const refused = await agent.get('/api/context').set('X-Active-Patient', selector)
      expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 403, code: 'UNKNOWN_PATIENT' })
      expect(refused.text).not.toContain('patient-2')
    }
    // A request without the header may come from the first page: refused, never answered with the second.
    const unnamed = await agent.get('/api/context')
    expect({ status: unnamed.status, code: unnamed.body.code }).toEqual({ status: 400, code: 'ACTIVE_PATIENT_REQUIRED' })
    expect(unnamed.text).not.toContain('patient-2')
  })

  describe('multi-launch: two tabs in one browser session', () => {
    it('both launches, called back in reverse order, succeed and each header gets its own patient', async () => {
      const agent = request.agent(testApp({ store, options: { enableMultiLaunch: true } }))
      const tabA = await agent.get(`/launch${launchQuery({ patient: 'patient-1' })}`).expect(302)
      const tabB = await agent.get(`/launch${launchQuery({ patient: 'patient-2' })}`).expect(302)
      const backA = await ehr.authorize(tabA.headers.location)
      const backB = await ehr.authorize(tabB.headers.location)
      expect((await agent.get(`${backB.pathname}${backB.search}`).expect(302)).headers.location).toBe(`/app?patient=${selectorOf('patient-2')}`)
      expect((await agent.get(`${backA.pathname}${backA.search}`).expect(302)).headers.location).toBe(`/app?patient=${selectorOf('patient-1')}`)
      for (const patient of ['patient-1', 'patient-2']) {
        expect((await agent.get('/api/context').set('X-Active-Patient', selectorOf(patient)).expect(200)).body.patient.id).toBe(patient)
      }

      expect((await agent.get('/api/context').set('X-Active-Patient', 'patient-1').expect(200)).body.patient.id).toBe('patient-1')
      expect((await agent.get('/api/context').set('X-Active-Patient', 'patient-2').expect(200)).body.patient.id).toBe('patient-2')
      expect((await agent.get('/api/patient').set('X-Active-Patient', 'patient-2').expect(200)).body.id).toBe('patient-2')
      const unknown = await agent.get('/api/context').set('X-Active-Patient', 'patient-3')
      expect(unknown.status).toBe(403)
      await agent.get('/api/context').expect(400)
    })

    it('a tab whose launch started before another tab was called back still completes', async () => {
      const agent = request.agent(testApp({ store, options: { enableMultiLaunch: true } }))
      const early = await agent.get(`/launch${launchQuery({ patient: 'patient-3' })}`).expect(302)
      await launchAs(agent, ehr, { patient: 'patient-1' })
      const back = await ehr.authorize(early.headers.location)
      await agent.get(`${back.pathname}${back.search}`).expect(302)
      expect((await agent.get('/api/context').set('X-Active-Patient', 'patient-3').expect(200)).body.patient.id).toBe('patient-3')
      expect((await agent.get('/api/context').set('X-Active-Patient', 'patient-1').expect(200)).body.patient.id).toBe('patient-1')
    })
  })

  it('S25 no response of a full flow carries a token, code, code_verifier or id_token', async () => {
    const recorder = secretRecordingFetch()
    const agent = request.agent(testApp({ store, options: { fetch: recorder.fetch, enableMultiLaunch: true } }))
    const responses: request.Response[] = []
    const launch = await agent.get(`/launch${launchQuery({ patient: 'patient-1' })}`)
    responses.push(launch)
    const back = await ehr.authorize(launch.headers.location)
    responses.push(await agent.get(`${back.pathname}${back.search}`))
    for (const path of ['/api/context', '/api/patient', '/api/fhir?path=Patient/does-not-exist']) {
      responses.push(await agent.get(path).set('X-Active-Patient', 'patient-1'))
    }
    expect(recorder.secrets.size).toBeGreaterThanOrEqual(4)
    const everything = responses.map((res) => `${JSON.stringify(res.headers)}\n${res.text}`).join('\n')
    for (const secret of recorder.secrets) expect(everything).not.toContain(secret)
  })

  it('S29 with encryptionKey, launches survive the session-id regenerations of later callbacks, and a refresh', async () => {
    const agent = request.agent(testApp({ store, options: { enableMultiLaunch: true, encryptionKey: Buffer.alloc(32, 5).toString('base64') } }))
    await launchAs(agent, ehr, { patient: 'patient-1' })
    await launchAs(agent, ehr, { patient: 'patient-2' })
    await launchAs(agent, ehr, { patient: 'patient-3' })
    for (const patient of ['patient-1', 'patient-2', 'patient-3']) {
      expect((await agent.get('/api/patient').set('X-Active-Patient', patient).expect(200)).body.id).toBe(patient)
    }
    ehr.expireAccessTokens()
    expect((await agent.get('/api/patient').set('X-Active-Patient', 'patient-1').expect(200)).body.id).toBe('patient-1')
  })

  it('works mounted under a sub-path router', async () => {
    const agent = request.agent(testApp({ store, mountAt: '/smart' }))
    const { patient } = await launchAs(agent, ehr, { patient: 'patient-2' }, { launchPath: '/smart/launch' })
    expect(patient).toBe(selectorOf('patient-2'))
    expect((await agent.get('/smart/api/context').expect(200)).body.patient.id).toBe('patient-2')
    expect((await agent.get('/smart/api/context').set('X-Active-Patient', patient).expect(200)).body.patient.id).toBe('patient-2')
    await request.agent(testApp({ store, mountAt: '/smart' })).get('/smart/api/context').expect(401)
  })
})

describe('launchAs, as a user would write a test of their own app', () => {
  it('launches patient-3 and reads it through the app', async () => {
    const { store, close } = await memoryStoreKind.open()
    try {
      const agent = request.agent(testApp({ store, options: { enableMultiLaunch: true } }))
      const { patient } = await launchAs(agent, ehr, { patient: 'patient-3' })
      const res = await agent.get('/api/patient').set('X-Active-Patient', patient).expect(200)
      expect(res.body.name[0].family).toBe('Martinez')
    } finally {
      await close()
    }
  })
})
