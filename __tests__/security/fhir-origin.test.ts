import fc from 'fast-check'
import { MemoryStore } from 'express-session'
import { SmartClient, SmartError, expressSessionStorage, type ReadyClient } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { propertyRuns } from '../helpers/properties'
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
