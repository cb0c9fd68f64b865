import fc from 'fast-check'
import { MemoryStore } from 'express-session'
import { SmartClient, SmartError, expressSessionStorage, type ReadyClient } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { propertyParameters, propertyRuns, propertyTimeout } from '../helpers/properties'
import { completeLaunch, devOptions, openConfig } from '../helpers/smart'

let ehr: MockEhr
let fhirOrigin: string
let port: string
beforeAll(async () => {
  ehr = await createMockEhr()
  fhirOrigin = new URL(ehr.iss).origin
  port = new URL(ehr.iss).port
})
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
let n = 0

/**
 * Records the URL of every outbound request. Requests to the mock EHR are forwarded; any other host gets a
 * canned answer, so a token that escapes is seen here and never leaves the machine.
 */
function recordingFetch(rewrite?: (url: URL, body: Record<string, unknown>) => Record<string, unknown>) {
  const sent: URL[] = []
  const fetchFn: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input))
    sent.push(url)
    if (url.origin !== fhirOrigin) return Response.json({ resourceType: 'Bundle', type: 'searchset' })
    const response = await fetch(input, init)
    if (!rewrite || !url.pathname.startsWith('/fhir/') || response.status !== 200) return response
    return Response.json(rewrite(url, await response.json()), { headers: { 'content-type': 'application/fhir+json' } })
  }
  return { sent, fetch: fetchFn }
}

async function launched(fetchFn: typeof fetch): Promise<ReadyClient> {
  const client = new SmartClient(`origin-${++n}`, storage, openConfig(), { ...devOptions, fetch: fetchFn })
  await completeLaunch(ehr, { patient: 'patient-1' }, client)
  return client.ready()
}

/** What request() did with an input: refused before sending, or sent (successfully or not) to these URLs. */
async function attempt(fhir: ReadyClient, sent: URL[], input: string): Promise<{ refused: boolean; sentTo: URL[]; error: unknown }> {
  const before = sent.length
  let error: unknown = null
  try {
    await fhir.request(input)
  } catch (err) {
    error = err
  }
  const refused = (error instanceof SmartError && error.code === 'FORBIDDEN_URL') || error instanceof TypeError
  return { refused, sentTo: sent.slice(before), error }
}

// URL-ish strings: what the WHATWG URL parser strips, folds or decodes, around hosts near and far.
const prefixes = ['', ' ', '  ', '\t', '\n', '\r\n', '\u0000', '\u001f', '\u000b', '\u000c', '\u00a0', '\ufeff', '\u0085']
const schemes = ['', 'http:', 'https:', 'HTTP:', 'hTtP:', 'ftp:', 'file:', 'javascript:', 'data:', 'ws:', 'blob:']
const slashes = ['', '/', '//', '///', '\\', '\\\\', '/\\', '\\/', '\t/\t/', '/\n/']
const userinfos = () => ['', 'user@', 'user:pass@', `127.0.0.1:${port}@`, 'other-host@', '%40@', ':@']
const hosts = () => [
  '', '127.0.0.1', 'other-host', 'localhost', 'OTHER-HOST', '%6fther-host', '%31%32%37.0.0.1', '127.1', '0x7f.0.0.1', '2130706433',
  '[::1]', 'other-host.', 'xn--other-host', '127.0.0.1.', 'other-host%2f', '127.0.0.1%00',
]
const ports = () => ['', `:${port}`, ':80', ':', ':0', `:0${port}`]
const paths = [
  '', '/', 'Patient/patient-1', '/Patient/patient-1', '/fhir/Patient/patient-1', '?_id=patient-1', '#x', '/%2e%2e/oauth',
  '..\\..\\x', '@other-host/x', '/x?a=//other-host', '%2F%2Fother-host/x', '/../../other-host',
]

function urlish(): fc.Arbitrary<string> {
  const structured = fc
    .tuple(
      fc.constantFrom(...prefixes),
      fc.constantFrom(...schemes),
      fc.constantFrom(...slashes),
      fc.constantFrom(...userinfos()),
      fc.constantFrom(...hosts()),
      fc.constantFrom(...ports()),
      fc.constantFrom(...paths),
    )
    .map((parts) => parts.join(''))
  const pieces = [...prefixes, ...schemes, ...slashes, ...userinfos(), ...hosts(), ...ports(), ...paths, '.', '@', ':', '%', '%2f', '%5c']
  const shuffled = fc.array(fc.constantFrom(...pieces), { maxLength: 8 }).map((parts) => parts.join(''))
  return fc.oneof(structured, shuffled)
}

describe('S20 the access token only goes to the FHIR server origin', () => {
  it('S20 property: any URL-ish input is refused before sending, or sent only to the FHIR origin', async () => {
    const recorder = recordingFetch()
    const fhir = await launched(recorder.fetch)
    await fc.assert(
      fc.asyncProperty(urlish(), async (input) => {
        const { refused, sentTo } = await attempt(fhir, recorder.sent, input)
        if (refused) expect(sentTo).toEqual([])
        for (const url of sentTo) expect(url.origin).toBe(fhirOrigin)
      }),
      { seed: 42, numRuns: propertyRuns() },
    )
  }, 120_000)

  it.each([
    ['backslashes', '\\\\other-host/x'],
    ['leading space', ' http://other-host/x'],
    ['leading tab', '\thttps://other-host/x'],
    ['leading NUL', '\u0000//other-host/x'],
  ])('S20 regression: a path that the URL parser turns into another host (%s) is FORBIDDEN_URL, nothing sent', async (_name, input) => {
    const recorder = recordingFetch()
    const fhir = await launched(recorder.fetch)
    const { error, sentTo } = await attempt(fhir, recorder.sent, input)
    expect(error).toMatchObject({ code: 'FORBIDDEN_URL', status: 400 })
    expect(sentTo).toEqual([])
  })

  it('S20 a URL on the FHIR origin with userinfo is FORBIDDEN_URL, nothing sent', async () => {
    const recorder = recordingFetch()
    const fhir = await launched(recorder.fetch)
    const { error, sentTo } = await attempt(fhir, recorder.sent, `http://user:pass@127.0.0.1:${port}/fhir/Patient/patient-1`)
    expect(error).toMatchObject({ code: 'FORBIDDEN_URL', message: 'Refusing a FHIR request URL with credentials in it' })
    expect(sentTo).toEqual([])
  })

  it('S20 paths with or without a leading slash, and absolute URLs on the FHIR base, still reach the FHIR base', async () => {
    const recorder = recordingFetch()
    const fhir = await launched(recorder.fetch)
    for (const input of ['Patient/patient-1', '/Patient/patient-1', ' /Patient/patient-1', `${ehr.iss}/Patient/patient-1`]) {
      await expect(fhir.request(input)).resolves.toMatchObject({ id: 'patient-1' })
      expect(recorder.sent.at(-1)?.href).toBe(`${ehr.iss}/Patient/patient-1`)
    }
  })

  it.each([
    ['backslashes', '\\\\other-host/fhir/Observation?page=2'],
    ['leading space', ' http://other-host/fhir/Observation?page=2'],
  ])('S20 regression: a next link that the URL parser turns into another host (%s) is FORBIDDEN_URL, nothing sent', async (_name, next) => {
    const recorder = recordingFetch((url, body) => (url.pathname.endsWith('/Observation') ? { ...body, link: [{ relation: 'next', url: next }] } : body))
    const fhir = await launched(recorder.fetch)
    const pages = fhir.pages('Observation', { _count: 10 })
    await expect(pages.next()).resolves.toMatchObject({ done: false })
    const before = recorder.sent.length
    await expect(pages.next()).rejects.toMatchObject({ code: 'FORBIDDEN_URL' })
    expect(recorder.sent.slice(before)).toEqual([])
  })
})

// An EHR on a default-port https origin, served by the test's fetch: the mock EHR listens on 127.0.0.1 with a
// high port, where a check by string prefix, by hostname alone or by host without scheme looks right.
const EHR_ORIGIN = 'https://ehr.example.org'
const EHR_BASE = `${EHR_ORIGIN}/fhir/r4`
const ACCESS_TOKEN = 'default-port-access-token'

interface Call {
  url: URL
  authorization: string | null
}

/** Discovery, token and FHIR answers for ehr.example.org; a canned answer for any other host. Records every call. */
function defaultPortEhr(): { calls: Call[]; fetch: typeof fetch } {
  const calls: Call[] = []
  const fetchFn: typeof fetch = async (input, init) => {
    const request = input instanceof Request ? input : null
    const url = new URL(request ? request.url : String(input))
    calls.push({ url, authorization: new Headers(request ? request.headers : init?.headers).get('authorization') })
    if (url.origin !== EHR_ORIGIN) return Response.json({ resourceType: 'Bundle', type: 'searchset' })
    if (url.pathname === '/fhir/r4/.well-known/smart-configuration') {
      return Response.json({ authorization_endpoint: `${EHR_ORIGIN}/oauth/authorize`, token_endpoint: `${EHR_ORIGIN}/oauth/token`, code_challenge_methods_supported: ['S256'] })
    }
    if (url.pathname === '/oauth/token' && init?.method === 'POST') {
      return Response.json({ access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 3600, scope: 'launch patient/*.rs', patient: 'patient-1' })
    }
    const id = /^\/fhir\/r4\/Patient\/([^/]+)$/.exec(url.pathname)?.[1]
    return Response.json(id ? { resourceType: 'Patient', id } : { resourceType: 'Bundle', type: 'searchset' }, { headers: { 'content-type': 'application/fhir+json' } })
  }
  return { calls, fetch: fetchFn }
}

/** A ReadyClient launched (https, no opt-ins) from the EHR at EHR_BASE, and the calls its fetch has seen. */
async function launchedOnDefaultPort(): Promise<{ fhir: ReadyClient; calls: Call[] }> {
  const ehrAtDefaultPort = defaultPortEhr()
  const client = new SmartClient(`origin-443-${++n}`, storage, openConfig(), { fetch: ehrAtDefaultPort.fetch })
  const { redirectUrl } = await client.launch({ iss: EHR_BASE, launch: 'launch-1' })
  await client.callback({ code: 'code-1', state: new URL(redirectUrl).searchParams.get('state')! })
  const fhir = await client.ready()
  expect(fhir.fhirServer).toBe(EHR_BASE)
  return { fhir, calls: ehrAtDefaultPort.calls }
}

/** Every call that carried the bearer token went to https://ehr.example.org (port 443), and no other call carried any credential. */
function expectTokenOnlyAtTheEhr(calls: Call[]): void {
  const leaks = calls.filter(({ url, authorization }) => authorization !== null && url.origin !== EHR_ORIGIN)
  expect(leaks.map(({ url }) => url.href)).toEqual([])
  for (const { url, authorization } of calls) {
    if (authorization?.includes(ACCESS_TOKEN)) expect([url.protocol, url.hostname, url.port]).toEqual(['https:', 'ehr.example.org', ''])
  }
}

describe('S20 the access token only goes to the origin of a default-port https FHIR base', () => {
  it.each([
    ['a host that begins with the FHIR host', `https://ehr.example.org.evil.example/fhir/r4/Patient/1`, 'https://ehr.example.org.evil.example'],
    ['the FHIR host on another port', `https://ehr.example.org:8443/fhir/r4/Patient/1`, 'https://ehr.example.org:8443'],
    ['the FHIR host over http', `http://ehr.example.org/fhir/r4/Patient/1`, 'http://ehr.example.org'],
    ['the FHIR host as userinfo of another host', `https://ehr.example.org@evil.example/fhir/r4/Patient/1`, 'https://evil.example'],
    ['another host with the FHIR base in its path', `https://evil.example/https://ehr.example.org/fhir/r4`, 'https://evil.example'],
    ['the FHIR host with a trailing dot', `https://ehr.example.org./fhir/r4/Patient/1`, 'https://ehr.example.org.'],
    ['the FHIR host over wss (default port 443 too)', `wss://ehr.example.org/fhir/r4/Patient/1`, 'wss://ehr.example.org'],
  ])('S20 %s is FORBIDDEN_URL, naming the origin refused, and nothing is sent', async (_what, input, origin) => {
    const { fhir, calls } = await launchedOnDefaultPort()
    const before = calls.length
    await expect(fhir.request(input)).rejects.toMatchObject({
      code: 'FORBIDDEN_URL',
      status: 400,
      message: `Refusing to send the access token to ${origin}: not the FHIR server's origin`,
    })
    expect(calls.slice(before)).toEqual([])
    expectTokenOnlyAtTheEhr(calls)
  })

  it.each([
    ['a relative path', 'Patient/1'],
    ['an absolute URL on the FHIR base', `${EHR_BASE}/Patient/1`],
    ['the explicit default port :443', 'https://ehr.example.org:443/fhir/r4/Patient/1'],
    ['the default port spelt :0443', 'https://ehr.example.org:0443/fhir/r4/Patient/1'],
    ['the FHIR host in capitals', 'HTTPS://EHR.EXAMPLE.ORG/fhir/r4/Patient/1'],
  ])('S20 %s is the same origin: sent once, with the token, to the FHIR base', async (_what, input) => {
    const { fhir, calls } = await launchedOnDefaultPort()
    const before = calls.length
    await expect(fhir.request(input)).resolves.toEqual({ resourceType: 'Patient', id: '1' })
    expect(calls.slice(before).map(({ url, authorization }) => [url.href, authorization])).toEqual([[`${EHR_BASE}/Patient/1`, `Bearer ${ACCESS_TOKEN}`]])
    expectTokenOnlyAtTheEhr(calls)
  })

  it('S20 property: generated schemes, hosts, ports, userinfo and paths get the token iff they are on https://ehr.example.org', async () => {
    const { fhir, calls } = await launchedOnDefaultPort()
    // The oracle is written from the parts, not from the URL parser the code uses: [spelling, what it denotes].
    const scheme = fc.constantFrom<[string, string]>(['https', 'https'], ['HTTPS', 'https'], ['Https', 'https'], ['http', 'http'], ['wss', 'wss'], ['ftp', 'ftp'])
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/)
    const host = fc.oneof(
      fc.constantFrom<[string, string]>(
        ['ehr.example.org', 'ehr.example.org'], ['EHR.Example.ORG', 'ehr.example.org'], ['%65hr.example.org', 'ehr.example.org'],
        ['\uff45hr.example.org', 'ehr.example.org'], ['ehr.example.org.', 'ehr.example.org.'], ['example.org', 'example.org'],
        ['ehr.example.or', 'ehr.example.or'], ['evil.example', 'evil.example'], ['127.0.0.1', '127.0.0.1'],
      ),
      label.map((l): [string, string] => [`ehr.example.org.${l}`, `ehr.example.org.${l}`]),
      label.map((l): [string, string] => [`ehr.example.org-${l}.example`, `ehr.example.org-${l}.example`]),
      label.map((l): [string, string] => [`${l}.ehr.example.org`, `${l}.ehr.example.org`]),
      fc.domain().map((d): [string, string] => [d, d]),
    )
    const port = fc.oneof(
      fc.constantFrom<[string, number | 'default']>(['', 'default'], [':', 'default'], [':443', 443], [':0443', 443], [':8443', 8443], [':80', 80], [':444', 444]),
      fc.integer({ min: 1, max: 65535 }).map((p): [string, number] => [`:${p}`, p]),
    )
    const userinfo = fc.constantFrom('', '', '', 'user@', 'user:pass@', 'ehr.example.org@', 'ehr.example.org:443@')
    const path = fc.constantFrom('/fhir/r4/Patient/1', '/fhir/r4/Observation?patient=1', '/fhir/r4', '/', '/other/Patient/1', '/fhir/r4/Patient/1#x')
    const absolute = fc.tuple(scheme, userinfo, host, port, path).map(([[s, sch], u, [h, hn], [p, pn], rest]) => {
      const effectivePort = pn === 'default' ? 443 : pn
      const onEhr = sch === 'https' && hn === 'ehr.example.org' && effectivePort === 443
      return { input: `${s}://${u}${h}${p}${rest}`, sent: onEhr && u === '' }
    })
    const relative = fc.constantFrom('Patient/1', '/Patient/1', 'Observation?patient=1', '?_id=1', '').map((input) => ({ input, sent: true }))
    let sentCases = 0
    let refusedCases = 0
    await fc.assert(
      fc.asyncProperty(fc.oneof({ arbitrary: absolute, weight: 4 }, { arbitrary: relative, weight: 1 }), async ({ input, sent }) => {
        const before = calls.length
        const error = await fhir.request(input).then(() => null, (err: unknown) => err)
        const made = calls.slice(before)
        if (sent) {
          sentCases++
          expect(error).toBeNull()
          expect(made).toHaveLength(1)
          expect(made[0].url.origin).toBe(EHR_ORIGIN)
          expect(made[0].authorization).toBe(`Bearer ${ACCESS_TOKEN}`)
        } else {
          refusedCases++
          expect(error).toBeInstanceOf(SmartError)
          expect(error).toMatchObject({ code: 'FORBIDDEN_URL' })
          expect(made).toEqual([])
        }
      }),
      propertyParameters(),
    )
    expectTokenOnlyAtTheEhr(calls)
    expect(sentCases).toBeGreaterThan(0)
    expect(refusedCases).toBeGreaterThan(0)
  }, propertyTimeout(5))
})
