import * as client from 'openid-client'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { CookieBrowser, left, page, pickerAction, pickerRows } from './cookie-browser'
import { authorizeApp, authorizeStandalone, configFor, fhir, redeem, STANDALONE_SCOPE, standaloneRequest } from './flow'

let ehr: MockEhr
let config: client.Configuration
beforeAll(async () => {
  ehr = await createMockEhr()
  config = await configFor(ehr)
})
afterAll(() => ehr.close())

async function status(path: string, token: string): Promise<number> {
  return (await fhir(ehr, path, token)).status
}

describe('the patient picker', () => {
  test('lists the three seeded patients with name, MRN, sex and birth date, a Select per patient and Deny', async () => {
    const { url } = await standaloneRequest(ehr, config)
    const picker = page(await new CookieBrowser(new URL(ehr.iss).origin).open(url))
    expect(picker.status).toBe(200)
    expect(picker.url.pathname).toMatch(/^\/interaction\/[\w-]+$/)
    expect(picker.headers.get('content-type')).toMatch(/^text\/html/)
    expect(picker.headers.get('content-security-policy')).toContain("frame-ancestors 'self'")
    const rows = pickerRows(picker.html)
    expect([...rows.keys()]).toEqual(['patient-1', 'patient-2', 'patient-3'])
    expect(rows.get('patient-1')).toMatch(/SHAW, Amy V\.[\s\S]*MRN-100001[\s\S]*female[\s\S]*1987-02-20/)
    expect(rows.get('patient-2')).toMatch(/ADAMS, Daniel X\.[\s\S]*MRN-100002[\s\S]*male[\s\S]*1952-11-04/)
    expect(rows.get('patient-3')).toMatch(/MARTINEZ, Rosa[\s\S]*MRN-100003[\s\S]*female[\s\S]*2009-07-13/)
    for (const [id, row] of rows) expect(row).toContain(`name="patient" value="${id}">Select</button>`)
    expect(picker.html).toContain('name="deny" value="deny">Deny</button>')
    expect(picker.html).toContain('Signed in as Dr. Susan Clark')
    expect(picker.html).toContain('<strong id="client-id">mock-app</strong>')
    expect(pickerAction(picker.html, picker.url).pathname).toBe(picker.url.pathname)
  })

  test('choosing a patient puts it in the token response, with the banner and no encounter; the token sees that patient only', async () => {
    const authorized = await authorizeStandalone(ehr, config, { as: { patient: 'patient-2' } })
    expect(authorized.callback.searchParams.get('state')).toBe(authorized.state)
    const tokens = await redeem(config, authorized)
    expect(tokens).toMatchObject({ patient: 'patient-2', need_patient_banner: true })
    expect(tokens).not.toHaveProperty('encounter')
    expect(tokens.scope!.split(' ').sort()).toEqual(STANDALONE_SCOPE.split(' ').sort())
    expect(tokens.claims()).toMatchObject({ sub: 'smart-practitioner-1', fhirUser: `${ehr.iss}/Practitioner/smart-practitioner-1` })

    expect(await status('Patient/patient-2', tokens.access_token)).toBe(200)
    const observations = await (await fhir(ehr, 'Observation?patient=patient-2', tokens.access_token)).json()
    expect(observations.total).toBeGreaterThan(0)
    for (const path of ['Patient/patient-1', 'Patient/patient-3', 'Observation/patient-1-hr-1', 'Observation?patient=patient-3', 'Condition?subject=Patient/patient-1']) {
      expect([path, await status(path, tokens.access_token)]).toEqual([path, 403])
    }
    // patient/*.rs: reading, not writing
    const write = await fhir(ehr, 'Observation', tokens.access_token, {
      method: 'POST',
      body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/patient-2' } }),
    })
    expect(write.status).toBe(403)

    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!)
    expect(refreshed).toMatchObject({ patient: 'patient-2', need_patient_banner: true })
    expect(await status('Patient/patient-1', refreshed.access_token)).toBe(403)
  })

  test('Deny sends access_denied back to the app with its state and no code', async () => {
    const denied = await authorizeStandalone(ehr, config, { as: { deny: true } })
    expect(denied.callback.searchParams.get('error')).toBe('access_denied')
    expect(denied.callback.searchParams.get('state')).toBe(denied.state)
    expect(denied.callback.searchParams.get('code')).toBeNull()
  })

  test('the answer is checked: an unknown patient gets the picker again (400), and the right one completes', async () => {
    const browser = new CookieBrowser(new URL(ehr.iss).origin)
    const request = await standaloneRequest(ehr, config)
    const picker = page(await browser.open(request.url))
    const action = pickerAction(picker.html, picker.url)
    const wrong = page(await browser.open(action, { patient: 'patient-9' }))
    expect(wrong.status).toBe(400)
    expect(wrong.html).toContain('Unknown patient patient-9')
    expect([...pickerRows(wrong.html).keys()]).toEqual(['patient-1', 'patient-2', 'patient-3'])
    const back = left(await browser.open(action, { patient: 'patient-3' }))
    const tokens = await redeem(config, { callback: back, ...request })
    expect(tokens.patient).toBe('patient-3')
  })

  test('a choice posted to an authorization without a picker is refused', async () => {
    const browser = new CookieBrowser(new URL(ehr.iss).origin)
    const { url } = await standaloneRequest(ehr, config, 'openid fhirUser user/*.rs')
    // Stop at the redirect to the interaction, before its page finishes it.
    const started = await browser.step(url)
    expect(started.status).toBe(303)
    const interaction = new URL(started.headers.get('location')!, url)
    const forged = page(await browser.open(interaction, { patient: 'patient-1' }))
    expect(forged.status).toBe(400)
    expect(forged.html).toContain('no patient to choose')
  })

  test('every authorization shows the picker, also in a browser that is still signed in at the EHR', async () => {
    const browser = new CookieBrowser(new URL(ehr.iss).origin)
    // Without offline_access: nothing forces a consent prompt, only the fresh grant per authorization does.
    const scope = 'openid fhirUser launch/patient patient/*.rs'
    const first = await standaloneRequest(ehr, config, scope)
    const firstPicker = page(await browser.open(first.url))
    const firstBack = left(await browser.open(pickerAction(firstPicker.html, firstPicker.url), { patient: 'patient-1' }))
    expect((await redeem(config, { callback: firstBack, ...first })).patient).toBe('patient-1')

    const second = await standaloneRequest(ehr, config, scope)
    const secondPicker = page(await browser.open(second.url))
    expect([...pickerRows(secondPicker.html).keys()]).toEqual(['patient-1', 'patient-2', 'patient-3'])
    const secondBack = left(await browser.open(pickerAction(secondPicker.html, secondPicker.url), { patient: 'patient-3' }))
    expect((await redeem(config, { callback: secondBack, ...second })).patient).toBe('patient-3')
  })
})

describe('without a picker', () => {
  test('user-level scopes: no picker, no patient, every patient readable', async () => {
    const authorized = await authorizeStandalone(ehr, config, { scope: 'openid fhirUser user/*.rs' })
    const tokens = await redeem(config, authorized)
    expect(tokens).not.toHaveProperty('patient')
    expect(tokens).not.toHaveProperty('need_patient_banner')
    expect(tokens.claims()).toMatchObject({ fhirUser: `${ehr.iss}/Practitioner/smart-practitioner-1` })
    for (const path of ['Patient/patient-1', 'Patient/patient-3', 'Observation?patient=patient-2']) {
      expect([path, await status(path, tokens.access_token)]).toEqual([path, 200])
    }
    const patients = await (await fhir(ehr, 'Patient', tokens.access_token)).json()
    expect(patients.total).toBe(3)
  })

  test('an EHR launch asking for launch/patient keeps its launch context', async () => {
    const tokens = await redeem(config, await authorizeApp(ehr, config, { context: { patient: 'patient-3', encounter: 'patient-3-encounter-1' } }))
    expect(tokens).toMatchObject({ patient: 'patient-3', encounter: 'patient-3-encounter-1' })
  })

  test('the bare launch scope without a launch parameter is refused', async () => {
    const { url, state } = await standaloneRequest(ehr, config, 'openid fhirUser launch launch/patient patient/*.rs')
    const refused = await ehr.authorize(url.href)
    expect(refused.searchParams.get('error')).toBe('invalid_request')
    expect(refused.searchParams.get('error_description')).toMatch(/launch is required with the launch scope.*launch\/patient/)
    expect(refused.searchParams.get('state')).toBe(state)
  })
})

describe('authorize() at the picker', () => {
  test('without { patient } it fails, saying a patient must be picked and naming the page', async () => {
    const { url } = await standaloneRequest(ehr, config)
    await expect(ehr.authorize(url.href)).rejects.toThrow(
      /patient picker at http:\/\/127\.0\.0\.1:\d+\/interaction\/[\w-]+ .*a patient must be picked.*'patient-1', 'patient-2', 'patient-3'/,
    )
  })

  test('it fails for a patient the picker does not list', async () => {
    const { url } = await standaloneRequest(ehr, config)
    await expect(ehr.authorize(url.href, { patient: 'patient-9' })).rejects.toThrow(
      /the patient picker at http:\/\/127\.0\.0\.1:\d+\/interaction\/[\w-]+ does not list 'patient-9'; it lists 'patient-1', 'patient-2', 'patient-3'/,
    )
  })

  test('it fails when a patient was to be picked but the EHR issued a code without a picker', async () => {
    const userLevel = await standaloneRequest(ehr, config, 'openid fhirUser user/*.rs')
    await expect(ehr.authorize(userLevel.url.href, { patient: 'patient-1' })).rejects.toThrow(/\{ patient: 'patient-1' \} answers the patient picker, but the EHR showed none/)
    const ehrLaunch = authorizeApp(ehr, config, { context: { patient: 'patient-2' }, as: { patient: 'patient-2' } })
    await expect(ehrLaunch).rejects.toThrow(/\{ patient: 'patient-2' \} answers the patient picker, but the EHR showed none/)
  })

  test('an error answer before the picker is returned, not thrown', async () => {
    ehr.faults.authorize = 'deny'
    try {
      const denied = await authorizeStandalone(ehr, config, { as: { patient: 'patient-1' } })
      expect(denied.callback.searchParams.get('error')).toBe('access_denied')
    } finally {
      delete ehr.faults.authorize
    }
  })

  test('contradictory options are refused before any request', async () => {
    const { url } = await standaloneRequest(ehr, config)
    await expect(ehr.authorize(url.href, { user: 'patient' })).rejects.toThrow(TypeError)
    await expect(ehr.authorize(url.href, { deny: true, patient: 'patient-1' })).rejects.toThrow(/deny/)
    await expect(ehr.authorize(url.href, { deny: true, user: 'patient', patient: 'patient-1' })).rejects.toThrow(/deny/)
    await expect(ehr.authorize(url.href, { user: 'nurse' as 'patient', patient: 'patient-1' })).rejects.toThrow(/user must be/)
  })
})

describe('patient-facing logins', () => {
  test('a patient signs in: no picker, their own record, fhirUser Patient/<id>', async () => {
    const tokens = await redeem(config, await authorizeStandalone(ehr, config, { as: { user: 'patient', patient: 'patient-2' } }))
    expect(tokens).toMatchObject({ patient: 'patient-2', need_patient_banner: true })
    expect(tokens).not.toHaveProperty('encounter')
    expect(tokens.claims()).toMatchObject({
      sub: 'Patient/patient-2',
      fhirUser: `${ehr.iss}/Patient/patient-2`,
      name: 'Daniel X. Adams',
      given_name: 'Daniel X.',
      family_name: 'Adams',
    })
    expect(await status('Patient/patient-2', tokens.access_token)).toBe(200)
    expect(await status('Patient/patient-1', tokens.access_token)).toBe(403)
  })

  test('a patient with user-level scopes gets no patient in the token, yet sees only their own record', async () => {
    const authorized = await authorizeStandalone(ehr, config, { scope: 'openid fhirUser user/*.rs', as: { user: 'patient', patient: 'patient-1' } })
    const tokens = await redeem(config, authorized)
    expect(tokens).not.toHaveProperty('patient')
    expect(tokens.claims()).toMatchObject({ fhirUser: `${ehr.iss}/Patient/patient-1` })
    expect(await status('Patient/patient-1', tokens.access_token)).toBe(200)
    expect(await status('Patient/patient-2', tokens.access_token)).toBe(403)
    const patients = await (await fhir(ehr, 'Patient', tokens.access_token)).json()
    expect(patients.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(['patient-1'])
  })

  test('a related person signs in for the patient: fhirUser RelatedPerson/<id>, the patient as context', async () => {
    const tokens = await redeem(config, await authorizeStandalone(ehr, config, { as: { user: 'related-person', patient: 'patient-3' } }))
    expect(tokens).toMatchObject({ patient: 'patient-3', need_patient_banner: true })
    expect(tokens.claims()).toMatchObject({
      sub: 'RelatedPerson/patient-3-related-person',
      fhirUser: `${ehr.iss}/RelatedPerson/patient-3-related-person`,
      name: 'Elena Martinez',
    })
    const related = await fhir(ehr, 'RelatedPerson/patient-3-related-person', tokens.access_token)
    expect(await related.json()).toMatchObject({ resourceType: 'RelatedPerson', patient: { reference: 'Patient/patient-3' } })
    expect(await status('Patient/patient-3', tokens.access_token)).toBe(200)
    expect(await status('Patient/patient-1', tokens.access_token)).toBe(403)
  })

  test('fhirUserRelative makes the patient\'s fhirUser relative', async () => {
    const relative = await createMockEhr({ fhirUserRelative: true })
    try {
      const own = await configFor(relative)
      const tokens = await redeem(own, await authorizeStandalone(relative, own, { as: { user: 'patient', patient: 'patient-1' } }))
      expect(tokens.claims()).toMatchObject({ fhirUser: 'Patient/patient-1' })
    } finally {
      await relative.close()
    }
  })

  test('an unknown patient cannot sign in', async () => {
    const { url } = await standaloneRequest(ehr, config)
    await expect(ehr.authorize(url.href, { user: 'patient', patient: 'patient-9' })).rejects.toThrow(/400[\s\S]*no such patient: patient-9/)
  })
})
