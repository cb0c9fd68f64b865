// Issue 13: standalone launch — the app opened outside the EHR. smartLogin() starts it, smartCallback()
// completes it like an EHR launch. Security items apply unchanged.
import { createHash } from 'node:crypto'
import type { Store } from 'express-session'
import request from 'supertest'
import { expressSessionStorage } from '../../lib'
import { createMockEhr, launchAs, loginAs, type MockEhr } from '../../lib/testing'
import { pathOf, recordingStorage, testApp } from '../helpers/app'
import { storeKinds } from '../helpers/stores'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const USER_SCOPE = 'openid fhirUser launch user/*.rs offline_access'

/**
 * The selector of a launch of `patient` (none: '') by the mock EHR in an app trusting any EHR (issue 19):
 * `<patient>_<12 base64url chars of the issuer's SHA-256>`, computed here independently of the library.
 */
const selectorOf = (patient: string | null) => `${patient ?? ''}_${createHash('sha256').update(ehr.iss.replace(/\/$/, '')).digest('base64url').slice(0, 12)}`

describe.each(storeKinds())('smartLogin over %s', (_name, kind) => {
  let store: Store
  let close: () => Promise<void>
  beforeAll(async () => ({ store, close } = await kind.open()))
  afterAll(() => close())

  it('starts a standalone authorization: no launch parameter, no bare launch scope; aud, PKCE S256, state and nonce as for an EHR launch', async () => {
    const res = await request(testApp({ store })).get(`/login?iss=${encodeURIComponent(ehr.iss)}`).expect(302)
    const url = new URL(res.headers.location)
    expect(url.origin + url.pathname).toBe(`${ehr.issuer}/authorize`)
    expect(url.searchParams.has('launch')).toBe(false)
    const scope = url.searchParams.get('scope')!.split(' ')
    expect(scope).not.toContain('launch')
    expect(scope).toEqual(expect.arrayContaining(['openid', 'fhirUser', 'launch/patient', 'patient/*.rs', 'offline_access']))
    expect(url.searchParams.get('aud')).toBe(ehr.iss)
    expect(url.searchParams.get('code_challenge_method')).toBe('S256')
    expect(url.searchParams.get('state')!.length).toBeGreaterThanOrEqual(43)
    expect(url.searchParams.get('nonce')).toBeTruthy()
    expect(url.searchParams.get('redirect_uri')).toBe('http://app.test/callback')
  })

  it('iss may be omitted when knownFhirServers names exactly one EHR; otherwise it is required (400)', async () => {
    const one = testApp({ store, config: { allowAnyIssuer: undefined, knownFhirServers: [{ issuer: ehr.iss, type: 'public' }] } as never })
    expect(new URL((await request(one).get('/login').expect(302)).headers.location).searchParams.get('aud')).toBe(ehr.iss)
    const two = testApp({ store, jsonErrors: true, config: { allowAnyIssuer: undefined, knownFhirServers: [{ issuer: ehr.iss, type: 'public' }, { issuer: 'https://other.example/fhir', type: 'public' }] } as never })
    expect((await request(two).get('/login')).body.code).toBe('MISSING_PARAMETER')
    expect((await request(testApp({ store, jsonErrors: true })).get('/login')).body.code).toBe('MISSING_PARAMETER')
  })

  it('S1 an iss outside the allow-list is UNKNOWN_ISSUER before any network call; S2 http is INSECURE_ISSUER', async () => {
    const outbound: string[] = []
    const recording: typeof fetch = (input, init) => (outbound.push(String(input)), fetch(input, init))
    const closed = testApp({ store, jsonErrors: true, options: { fetch: recording }, config: { allowAnyIssuer: undefined, knownFhirServers: [{ issuer: 'https://trusted.example/fhir', type: 'public' }] } as never })
    const refused = await request(closed).get(`/login?iss=${encodeURIComponent(ehr.iss)}`)
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 403, code: 'UNKNOWN_ISSUER' })
    expect(outbound).toEqual([])
    const insecure = await request(testApp({ store, jsonErrors: true, options: { allowNonHttpsLaunch: false } })).get(`/login?iss=${encodeURIComponent(ehr.iss)}`)
    expect({ status: insecure.status, code: insecure.body.code }).toEqual({ status: 400, code: 'INSECURE_ISSUER' })
  })

  it('a standalone launch with user-level scopes only gives a ReadyClient without patient (multi-launch: selected by _<EHR tag>)', async () => {
    const agent = request.agent(testApp({ store, config: { scope: USER_SCOPE }, options: { enableMultiLaunch: true } }))
    const login = await agent.get(`/login?iss=${encodeURIComponent(ehr.iss)}`).expect(302)
    const back = await ehr.authorize(login.headers.location)
    const landing = new URL((await agent.get(pathOf(back)).expect(302)).headers.location, 'http://app.test')
    const selector = landing.searchParams.get('patient')!
    expect(selector).toBe(selectorOf(null))
    const context = await agent.get('/api/context').set('X-Active-Patient', selector).expect(200)
    expect(context.body).toMatchObject({ patient: null, fhirServer: ehr.iss, user: { resourceType: 'Practitioner' } })
    expect(context.headers['x-smart-patient']).toBeUndefined()
  })

  it.each([['single-launch', false], ['multi-launch', true]] as const)('%s: the patient chosen at the EHR\'s picker is the launch\'s patient, with its FHIR data and no other', async (_mode, multi) => {
    const agent = request.agent(testApp({ store, options: { enableMultiLaunch: multi } }))
    const { patient } = await loginAs(agent, ehr, { patient: 'patient-2' })
    expect(patient).toBe(selectorOf('patient-2'))
    const context = await agent.get('/api/context').set('X-Active-Patient', patient!).expect(200)
    expect(context.body).toMatchObject({ patient: { id: 'patient-2' }, encounter: null, needPatientBanner: true, fhirServer: ehr.iss })
    expect((await agent.get('/api/patient').set('X-Active-Patient', patient!).expect(200)).body.id).toBe('patient-2')
    expect((await agent.get('/api/fhir?path=Patient/patient-1').set('X-Active-Patient', patient!)).status).toBe(403)
  })

  it('multi-launch: standalone logins and EHR launches add launches under the same identity rules', async () => {
    const agent = request.agent(testApp({ store, options: { enableMultiLaunch: true } }))
    expect((await loginAs(agent, ehr, { patient: 'patient-1' })).patient).toBe(selectorOf('patient-1'))
    expect((await launchAs(agent, ehr, { patient: 'patient-3' })).patient).toBe(selectorOf('patient-3'))
    // The same EHR and patient again: the same launch identity, the same value.
    expect((await launchAs(agent, ehr, { patient: 'patient-1' })).patient).toBe(selectorOf('patient-1'))
    for (const patient of ['patient-1', 'patient-3']) {
      // The page's selector, or the bare id (one EHR launched it): the same launch.
      for (const sent of [selectorOf(patient), patient]) {
        const res = await agent.get('/api/context').set('X-Active-Patient', sent).expect(200)
        expect({ patient: res.body.patient.id, echo: res.headers['x-active-patient'] }).toEqual({ patient, echo: selectorOf(patient) })
      }
    }
    await agent.get('/api/context').expect(400)
  })

  it.each([['patient', 'Patient', 'patient-2'], ['related-person', 'RelatedPerson', 'patient-3-related-person']] as const)(
    'a patient-facing login (%s): req.smart.user is a %s; the context is the patient',
    async (user, resourceType, userId) => {
      const agent = request.agent(testApp({ store, options: { enableMultiLaunch: true } }))
      const patientId = user === 'patient' ? 'patient-2' : 'patient-3'
      const { patient } = await loginAs(agent, ehr, { patient: patientId, user })
      const context = await agent.get('/api/context').set('X-Active-Patient', patient!).expect(200)
      expect(context.body.user).toMatchObject({ resourceType, id: userId })
      expect(context.body.patient.id).toBe(patientId)
    },
  )

  it('S13 a denial at the picker is AUTHORIZATION_DENIED, no code exchange', async () => {
    const agent = request.agent(testApp({ store, jsonErrors: true }))
    const login = await agent.get(`/login?iss=${encodeURIComponent(ehr.iss)}`).expect(302)
    const back = await ehr.authorize(login.headers.location, { deny: true })
    const grants = ehr.stats.codeGrants
    const res = await agent.get(pathOf(back))
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 403, code: 'AUTHORIZATION_DENIED' })
    expect(ehr.stats.codeGrants).toBe(grants)
  })

  it('S13 a denial at the EHR is AUTHORIZATION_DENIED, no code exchange, nothing stored', async () => {
    const { storage, writes } = recordingStorage(expressSessionStorage(store))
    const agent = request.agent(testApp({ store, storage, jsonErrors: true }))
    const login = await agent.get(`/login?iss=${encodeURIComponent(ehr.iss)}`).expect(302)
    ehr.faults.authorize = 'deny'
    let back: URL
    try {
      back = await ehr.authorize(login.headers.location)
    } finally {
      delete ehr.faults.authorize
    }
    const grants = ehr.stats.codeGrants
    writes.length = 0
    const res = await agent.get(pathOf(back))
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 403, code: 'AUTHORIZATION_DENIED' })
    expect(ehr.stats.codeGrants).toBe(grants)
    expect(writes.filter((w) => w.key.startsWith('session:'))).toEqual([])
  })
})
