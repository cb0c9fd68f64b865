import * as client from 'openid-client'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { PATIENT_SCOPE, REDIRECT_URI, configFor, fhir, launch } from './flow'

const APP_LAUNCH_URL = 'http://127.0.0.1:9/launch'

let ehr: MockEhr
let home: string
beforeAll(async () => {
  ehr = await createMockEhr({ appLaunchUrl: APP_LAUNCH_URL })
  home = new URL('/', ehr.iss).href
})
afterAll(() => ehr.close())

function rows(html: string): Map<string, string> {
  const found = new Map<string, string>()
  for (const match of html.matchAll(/<tr data-patient-id="([^"]+)">([\s\S]*?)<\/tr>/g)) found.set(match[1], match[2])
  return found
}

function launchHref(row: string): string {
  const match = /<a class="launch" data-patient-id="[^"]+" href="([^"]+)" target="_blank"/.exec(row)
  if (!match) throw new Error(`no launch link in ${row}`)
  return new URL(match[1].replace(/&amp;/g, '&'), home).href
}

test('the home page lists the three seeded patients with name, sex, birth date, MRN and a launch link in a new tab', async () => {
  const response = await fetch(home)
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toMatch(/^text\/html/)
  const html = await response.text()
  const list = rows(html)
  expect([...list.keys()]).toEqual(['patient-1', 'patient-2', 'patient-3'])
  expect(list.get('patient-1')).toMatch(/SHAW, Amy V\.[\s\S]*MRN-100001[\s\S]*female[\s\S]*1987-02-20/)
  expect(list.get('patient-2')).toMatch(/ADAMS, Daniel X\.[\s\S]*MRN-100002[\s\S]*male[\s\S]*1952-11-04/)
  expect(list.get('patient-3')).toMatch(/MARTINEZ, Rosa[\s\S]*MRN-100003[\s\S]*female[\s\S]*2009-07-13/)
  for (const [id, row] of list) {
    expect(row).toContain(`<a class="launch" data-patient-id="${id}"`)
    expect(new URL(launchHref(row)).searchParams.get('patient')).toBe(id)
  }
  expect(html).toContain('Susan Clark')
  expect(html).not.toContain('id="no-app"')
})

test('each click on Launch mints a new launch id that the authorization server accepts, with patient, encounter and banner', async () => {
  const href = launchHref(rows(await (await fetch(home)).text()).get('patient-2')!)
  const first = await fetch(href, { redirect: 'manual' })
  const second = await fetch(href, { redirect: 'manual' })
  expect(first.status).toBe(302)
  const location = new URL(first.headers.get('location')!)
  expect(`${location.origin}${location.pathname}`).toBe(APP_LAUNCH_URL)
  expect(location.searchParams.get('iss')).toBe(ehr.iss)
  const launchId = location.searchParams.get('launch')!
  expect(launchId).toMatch(/^[\w-]{16,}$/)
  expect(new URL(second.headers.get('location')!).searchParams.get('launch')).not.toBe(launchId)

  const config = await configFor(ehr)
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: PATIENT_SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    launch: launchId,
    aud: location.searchParams.get('iss')!,
  })
  const callback = await ehr.authorize(authorizationUrl.href)
  const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce })
  expect(tokens).toMatchObject({ patient: 'patient-2', encounter: 'patient-2-encounter-1', need_patient_banner: true })
})

test('an unknown patient is not launched', async () => {
  const response = await fetch(new URL('/launch-app?patient=%3Cscript%3E', home), { redirect: 'manual' })
  expect(response.status).toBe(404)
  const html = await response.text()
  expect(html).toContain('&lt;script&gt;')
  expect(html).not.toContain('<script>')
})

test('without appLaunchUrl the page lists patients, says no app is registered and offers no launch', async () => {
  const bare = await createMockEhr()
  try {
    const html = await (await fetch(new URL('/', bare.iss))).text()
    expect([...rows(html).keys()]).toEqual(['patient-1', 'patient-2', 'patient-3'])
    expect(html).toContain('id="no-app"')
    expect(html).toContain('No SMART app is registered')
    expect(html).not.toContain('class="launch"')
    expect((await fetch(new URL('/launch-app?patient=patient-1', bare.iss), { redirect: 'manual' })).status).toBe(404)
  } finally {
    await bare.close()
  }
})

test('patient data from the FHIR store is HTML-escaped', async () => {
  const other = await createMockEhr({ appLaunchUrl: APP_LAUNCH_URL })
  try {
    const { access_token: token } = await launch(other, { context: { patient: 'patient-1' } })
    const patient = await (await fhir(other, 'Patient/patient-1', token)).json()
    patient.name = [{ use: 'official', family: '<img src=x onerror=alert(1)>', given: ['"Amy"'] }]
    patient.identifier[0].value = '<b>MRN</b>'
    const put = await fhir(other, 'Patient/patient-1', token, { method: 'PUT', body: JSON.stringify(patient) })
    expect(put.status).toBe(200)
    const html = await (await fetch(new URL('/', other.iss))).text()
    expect(html).toContain('&lt;IMG SRC=X ONERROR=ALERT(1)&gt;, &quot;Amy&quot;')
    expect(html).toContain('&lt;b&gt;MRN&lt;/b&gt;')
    expect(html).not.toMatch(/<img|<b>/i)
  } finally {
    await other.close()
  }
})

test('appLaunchUrl and appLoginUrl must be absolute http(s) URLs', async () => {
  await expect(createMockEhr({ appLaunchUrl: '/launch' })).rejects.toThrow(/appLaunchUrl/)
  await expect(createMockEhr({ appLaunchUrl: 'javascript:alert(1)' })).rejects.toThrow(/appLaunchUrl/)
  await expect(createMockEhr({ appLoginUrl: '/login' })).rejects.toThrow(/appLoginUrl/)
  await expect(createMockEhr({ appLaunchUrl: APP_LAUNCH_URL, appLoginUrl: 'javascript:alert(1)' })).rejects.toThrow(/appLoginUrl/)
})

function standaloneHref(html: string, base: string): string | null {
  const match = /<a class="launch" id="standalone-launch" href="([^"]+)" target="_blank" rel="noopener">Open the app outside the EHR \(standalone\)<\/a>/.exec(html)
  return match && new URL(match[1].replace(/&amp;/g, '&'), base).href
}

test('without appLoginUrl the page offers no standalone way in', async () => {
  expect(standaloneHref(await (await fetch(home)).text(), home)).toBeNull()
})

test('with appLoginUrl the page links to it with iss, keeping the app query, beside the patient launches', async () => {
  const both = await createMockEhr({ appLaunchUrl: APP_LAUNCH_URL, appLoginUrl: 'http://127.0.0.1:9/login?tenant=a' })
  try {
    const html = await (await fetch(new URL('/', both.iss))).text()
    const href = new URL(standaloneHref(html, both.iss)!)
    expect(`${href.origin}${href.pathname}`).toBe('http://127.0.0.1:9/login')
    expect(href.searchParams.get('tenant')).toBe('a')
    expect(href.searchParams.get('iss')).toBe(both.iss)
    expect([...rows(html).keys()]).toEqual(['patient-1', 'patient-2', 'patient-3'])
    expect(html).toContain('class="launch" data-patient-id="patient-1"')
  } finally {
    await both.close()
  }
})

test('with appLoginUrl only, the page offers the standalone way in and says patients cannot be launched', async () => {
  const loginOnly = await createMockEhr({ appLoginUrl: 'http://127.0.0.1:9/login' })
  try {
    const html = await (await fetch(new URL('/', loginOnly.iss))).text()
    expect(standaloneHref(html, loginOnly.iss)).toBe(`http://127.0.0.1:9/login?iss=${encodeURIComponent(loginOnly.iss)}`)
    expect(html).toContain('id="no-launch-url"')
    expect(html).not.toContain('id="no-app"')
    expect(html).not.toContain('data-patient-id="patient-1" href=')
  } finally {
    await loginOnly.close()
  }
})
