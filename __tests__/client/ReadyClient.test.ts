import { inspect } from 'node:util'
import { MemoryStore } from 'express-session'
import { SmartClient, SmartError, expressSessionStorage, type SmartClientOptions } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { authorize, completeLaunch, devOptions, ehrLaunch, openConfig } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
let n = 0

async function launched(options: SmartClientOptions = {}, mock: MockEhr = ehr) {
  const client = new SmartClient(`rc-${++n}`, storage, openConfig(), { ...devOptions, ...options })
  await completeLaunch(mock, { patient: 'patient-1', encounter: 'encounter-1' }, client)
  return client.ready()
}

describe('ReadyClient', () => {
  it('request resolves paths (with or without a leading slash) against the FHIR base and sends the bearer token', async () => {
    const fhir = await launched()
    await expect(fhir.request('/Patient/patient-1')).resolves.toMatchObject({ id: 'patient-1' })
    await expect(fhir.request(`${ehr.iss}/Patient/patient-1`)).resolves.toMatchObject({ id: 'patient-1' })
    expect(ehr.fhirLog.at(-1)).toMatchObject({ method: 'GET', status: 200, accessToken: expect.any(String) })
  })

  it('S20 an absolute URL on another origin is FORBIDDEN_URL and nothing is sent', async () => {
    const sent: string[] = []
    const fhir = await launched({ fetch: (input, init) => (sent.push(String(input)), fetch(input, init)) })
    const before = sent.length
    await expect(fhir.request('https://elsewhere.example/fhir/Patient/patient-1')).rejects.toMatchObject({ code: 'FORBIDDEN_URL', status: 400 })
    await expect(fhir.request('//elsewhere.example/Patient')).rejects.toMatchObject({ code: 'FORBIDDEN_URL' })
    expect(sent.length).toBe(before)
  })

  it('a 404 is FHIR_REQUEST_FAILED with status 404 and the OperationOutcome', async () => {
    const fhir = await launched()
    const err = await fhir.request('Patient/does-not-exist').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SmartError)
    expect(err).toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 404, operationOutcome: { resourceType: 'OperationOutcome' } })
  })

  it.each([
    ['malformed JSON with a 200', 200, 'application/fhir+json', '{"resourceType":', { status: 502, message: 'The FHIR server sent malformed JSON for /fhir/Patient/patient-1' }],
    ['malformed JSON with a 500', 500, 'application/json', 'oops{', { status: 500, message: 'The FHIR server answered 500 to DELETE /fhir/Patient/patient-1', operationOutcome: undefined }],
    ['a redirect (not followed)', 302, 'text/html', '', { status: 502, message: 'The FHIR server answered 302 to DELETE /fhir/Patient/patient-1' }],
  ])('%s is FHIR_REQUEST_FAILED, naming the status, method and path', async (_what, status, type, body, expected) => {
    // What the mock EHR's FHIR server never sends: the answer of a FHIR server at fault.
    const faulty: typeof fetch = async (input, init) =>
      String(input).includes('/fhir/Patient/patient-1') ? new Response(body, { status, headers: { 'content-type': type, location: '/elsewhere' } }) : fetch(input, init)
    const fhir = await launched({ fetch: faulty })
    const method = status === 200 ? 'GET' : 'DELETE'
    await expect(fhir.request('Patient/patient-1', { method })).rejects.toMatchObject({ code: 'FHIR_REQUEST_FAILED', ...expected })
  })

  it('a 2xx answer that is not JSON (by its content-type, or without one) is returned as text; an empty one as undefined', async () => {
    const plain: typeof fetch = async (input, init) => {
      const url = String(input)
      if (url.endsWith('/Binary/untyped')) return new Response(new TextEncoder().encode('{"looks":"like JSON"}'))
      if (url.endsWith('/Binary/empty-json')) return new Response('', { headers: { 'content-type': 'application/fhir+json' } })
      return url.includes('/fhir/Binary/') ? new Response(url.endsWith('empty') ? '' : 'plain {text}', { headers: { 'content-type': 'text/plain' } }) : fetch(input, init)
    }
    const fhir = await launched({ fetch: plain })
    await expect(fhir.request('Binary/text')).resolves.toBe('plain {text}')
    await expect(fhir.request('Binary/empty')).resolves.toBeUndefined()
    await expect(fhir.request('Binary/untyped')).resolves.toBe('{"looks":"like JSON"}')
    await expect(fhir.request('Binary/empty-json')).resolves.toBeUndefined()
  })

  it('an EHR launch whose iss ends in a slash: requests resolve under it, without a doubled slash', async () => {
    const client = new SmartClient(`rc-${++n}`, storage, openConfig(), devOptions)
    const { launch } = ehrLaunch(ehr, { patient: 'patient-1' })
    const { redirectUrl } = await client.launch({ iss: `${ehr.iss}/`, launch })
    // The mock EHR compares aud with its base exactly; some EHRs accept the slash.
    const authorization = new URL(redirectUrl)
    expect(authorization.searchParams.get('aud')).toBe(`${ehr.iss}/`)
    authorization.searchParams.set('aud', ehr.iss)
    await client.callback(await authorize(ehr, authorization.href))
    const fhir = await client.ready()
    expect(fhir.fhirServer).toBe(`${ehr.iss}/`)
    await expect(fhir.request('Patient/patient-1')).resolves.toMatchObject({ id: 'patient-1' })
    expect(ehr.fhirLog.at(-1)).toMatchObject({ url: `${ehr.iss}/Patient/patient-1`, status: 200 })
  })

  it('a FHIR server that does not answer is FHIR_REQUEST_FAILED 502', async () => {
    const fhir = await launched({ httpTimeoutMs: 300 })
    ehr.faults.fhir = 'hang'
    try {
      await expect(fhir.request('Patient/patient-1')).rejects.toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 502 })
    } finally {
      delete ehr.faults.fhir
    }
  })

  it('on a 401 it refreshes once and retries with the new token', async () => {
    const fhir = await launched()
    await fhir.request('Patient/patient-1')
    const oldToken = ehr.fhirLog.at(-1)!.accessToken
    const grants = ehr.stats.refreshGrants
    ehr.expireAccessTokens()
    await expect(fhir.request('Patient/patient-1')).resolves.toMatchObject({ id: 'patient-1' })
    const [rejected, retried] = ehr.fhirLog.slice(-2)
    expect(rejected).toMatchObject({ status: 401, accessToken: oldToken })
    expect(retried.status).toBe(200)
    expect(retried.accessToken).not.toBe(oldToken)
    expect(ehr.stats.refreshGrants).toBe(grants + 1)
  })

  it('a 401 with autoRefresh off is reported, not retried', async () => {
    const fhir = await launched({ autoRefresh: false })
    ehr.expireAccessTokens()
    const requests = ehr.stats.fhirRequests
    await expect(fhir.request('Patient/patient-1')).rejects.toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 401 })
    expect(ehr.stats.fhirRequests).toBe(requests + 1)
  })

  it('S25 serializes and inspects without any token', async () => {
    const fhir = await launched()
    await fhir.request('Patient/patient-1')
    const token = ehr.fhirLog.at(-1)!.accessToken!
    expect(JSON.stringify(fhir)).not.toContain(token)
    expect(inspect(fhir, { depth: 10, showHidden: true })).not.toContain(token)
    expect(JSON.parse(JSON.stringify(fhir))).toMatchObject({ patient: { id: 'patient-1' }, fhirServer: ehr.iss })
  })

  it('S20 a relative fhirUser resolves against the FHIR base', async () => {
    const relative = await createMockEhr({ fhirUserRelative: true })
    try {
      const fhir = await launched({}, relative)
      expect(fhir.idTokenClaims?.fhirUser).toMatch(/^Practitioner\//)
      expect(fhir.user).toEqual({ fhirUser: `${relative.iss}/${fhir.idTokenClaims?.fhirUser}`, resourceType: 'Practitioner', id: expect.any(String) })
    } finally {
      await relative.close()
    }
  })

  it('exposes the SMART context of the token response', async () => {
    const client = new SmartClient(`rc-${++n}`, storage, openConfig(), devOptions)
    await completeLaunch(ehr, { patient: 'patient-2', intent: 'reconcile-medications', needPatientBanner: true, smartStyleUrl: `${ehr.iss}/smart-style.json`, fhirContext: [{ reference: 'Encounter/patient-2-encounter-1', role: 'launch' }] }, client)
    const fhir = await client.ready()
    expect(fhir).toMatchObject({ intent: 'reconcile-medications', needPatientBanner: true, smartStyleUrl: `${ehr.iss}/smart-style.json`, fhirContext: [{ reference: 'Encounter/patient-2-encounter-1', role: 'launch' }] })
  })
})
