import * as client from 'openid-client'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { PATIENT_SCOPE, REDIRECT_URI, configFor, fhir, launch, standaloneRequest } from './flow'

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

describe('the app in the EHR frame (issue 20)', () => {
  const SANDBOX = 'allow-scripts allow-same-origin allow-forms allow-popups'
  const FRAMED = { 'Sec-Fetch-Dest': 'iframe', 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate' }

  function frameOf(html: string): { src: string; sandbox: string } {
    const match = /<iframe class="app-frame" id="app-frame" title="SMART app" src="([^"]+)" sandbox="([^"]*)"><\/iframe>/.exec(html)
    if (!match) throw new Error(`no app frame in ${html}`)
    return { src: match[1].replace(/&amp;/g, '&'), sandbox: match[2] }
  }

  test('beside each Launch, "Launch in the EHR frame" opens the EHR\'s frame page of that patient in a new tab', async () => {
    for (const [id, row] of rows(await (await fetch(home)).text())) {
      expect(row).toContain(`<a class="launch-in-frame" data-patient-id="${id}" href="/app-frame?patient=${id}" target="_blank" rel="noopener">Launch in the EHR frame</a>`)
    }
  })

  test('the frame page shows the EHR\'s banner and the app in a sandboxed frame (no top navigation) that launches anew on each load', async () => {
    const response = await fetch(new URL('/app-frame?patient=patient-2', home))
    expect(response.status).toBe(200)
    const csp = response.headers.get('content-security-policy')!
    // It frames the EHR's own pages (the launch route, the picker) and the app; only the EHR's own pages may frame it.
    expect(csp).toContain("frame-src 'self' http://127.0.0.1:9")
    expect(csp).toContain("frame-ancestors 'self'")
    const html = await response.text()
    expect(html).toMatch(/<div class="chart-banner" id="chart-banner" data-patient-id="patient-2">[\s\S]*ADAMS, Daniel X\.[\s\S]*MRN-100002/)
    const frame = frameOf(html)
    expect(frame).toEqual({ src: '/launch-app?patient=patient-2', sandbox: SANDBOX })
    expect(frame.sandbox).not.toMatch(/top-navigation/)
    const launches = await Promise.all([1, 2].map(async () => new URL((await fetch(new URL(frame.src, home), { redirect: 'manual' })).headers.get('location')!)))
    for (const location of launches) {
      expect(`${location.origin}${location.pathname}`).toBe(APP_LAUNCH_URL)
      expect(location.searchParams.get('iss')).toBe(ehr.iss)
    }
    expect(launches[0].searchParams.get('launch')).not.toBe(launches[1].searchParams.get('launch'))
  })

  test('with appLoginUrl, "Open the app in the EHR frame (standalone)" frames the app\'s login with iss; the frame may show both app origins', async () => {
    const both = await createMockEhr({ appLaunchUrl: APP_LAUNCH_URL, appLoginUrl: 'https://localhost:9443/login?tenant=a' })
    try {
      const bothHome = new URL('/', both.iss).href
      expect(await (await fetch(bothHome)).text()).toContain('<a class="launch-in-frame" id="standalone-in-frame" href="/app-frame" target="_blank" rel="noopener">Open the app in the EHR frame (standalone)</a>')
      const response = await fetch(new URL('/app-frame', bothHome))
      expect(response.status).toBe(200)
      expect(response.headers.get('content-security-policy')).toContain("frame-src 'self' http://127.0.0.1:9 https://localhost:9443")
      const frame = frameOf(await response.text())
      expect(frame.sandbox).toBe(SANDBOX)
      const src = new URL(frame.src)
      expect(`${src.origin}${src.pathname}`).toBe('https://localhost:9443/login')
      expect(Object.fromEntries(src.searchParams)).toEqual({ tenant: 'a', iss: both.iss })
    } finally {
      await both.close()
    }
  })

  test('the frame page of an unknown patient, or of an app without that URL, is a 404 that frames nothing', async () => {
    const unknown = await fetch(new URL('/app-frame?patient=%3Cscript%3E', home))
    expect(unknown.status).toBe(404)
    const html = await unknown.text()
    expect(html).toContain('&lt;script&gt;')
    expect(html).not.toMatch(/<script|<iframe/)
    // This EHR has a launch URL only: no standalone frame, and no link to one.
    expect((await fetch(new URL('/app-frame', home))).status).toBe(404)
    expect(await (await fetch(home)).text()).not.toContain('standalone-in-frame')
    const loginOnly = await createMockEhr({ appLoginUrl: 'http://127.0.0.1:9/login' })
    try {
      const response = await fetch(new URL('/app-frame?patient=patient-1', loginOnly.iss))
      expect(response.status).toBe(404)
      expect(await response.text()).not.toContain('<iframe')
    } finally {
      await loginOnly.close()
    }
  })

  test('an authorization request the app sent inside the EHR\'s frame is repeated from the EHR\'s own origin (its Lax cookies are set there); others go straight on', async () => {
    const { url } = await standaloneRequest(ehr, await configFor(ehr))
    const framed = await fetch(url, { headers: FRAMED, redirect: 'manual' })
    expect(framed.status).toBe(200)
    expect(framed.headers.get('set-cookie')).toBeNull()
    const again = /<meta http-equiv="refresh" content="0;url=([^"]+)">/.exec(await framed.text())
    expect(new URL(again![1].replace(/&amp;/g, '&'), url).href).toBe(url.href)
    // Repeated from the EHR's page (same origin), or top-level: the authorization server answers.
    for (const headers of [{ ...FRAMED, 'Sec-Fetch-Site': 'same-origin' }, { ...FRAMED, 'Sec-Fetch-Dest': 'document' }, {}]) {
      const answered = await fetch(url, { headers, redirect: 'manual' })
      expect(answered.status).toBe(303)
      expect(new URL(answered.headers.get('location')!, url).pathname).toMatch(/^\/interaction\//)
    }
  })
})
