import * as client from 'openid-client'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { configFor, fhir, launch } from './flow'

let ehr: MockEhr
let token: string
beforeAll(async () => {
  ehr = await createMockEhr()
  token = (await launch(ehr, { context: { patient: 'patient-1', encounter: 'patient-1-encounter-1' } })).access_token
})
afterAll(() => ehr.close())

test('reads the launched patient, their encounter and the practitioner', async () => {
  const patient = await fhir(ehr, 'Patient/patient-1', token)
  expect(patient.status).toBe(200)
  expect(patient.headers.get('content-type')).toMatch(/^application\/fhir\+json/)
  const body = await patient.json()
  expect(body).toMatchObject({ resourceType: 'Patient', id: 'patient-1', gender: 'female', birthDate: '1987-02-20' })
  expect(body.identifier[0].value).toBe('MRN-100001')
  expect((await fhir(ehr, 'Encounter/patient-1-encounter-1', token)).status).toBe(200)
  expect((await fhir(ehr, 'Practitioner/smart-practitioner-1', token)).status).toBe(200)
})

test('answers 401 with WWW-Authenticate without a token, with a bad one, and after expireAccessTokens()', async () => {
  for (const candidate of [null, 'not-a-token']) {
    const response = await fhir(ehr, 'Patient/patient-1', candidate)
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/)
    expect(await response.json()).toMatchObject({ resourceType: 'OperationOutcome' })
  }
  const own = await createMockEhr()
  try {
    const tokens = await launch(own)
    expect((await fhir(own, 'Patient/patient-1', tokens.access_token)).status).toBe(200)
    own.expireAccessTokens()
    const expired = await fhir(own, 'Patient/patient-1', tokens.access_token)
    expect(expired.status).toBe(401)
    expect(expired.headers.get('www-authenticate')).toMatch(/invalid_token/)
    const refreshed = await client.refreshTokenGrant(await configFor(own), tokens.refresh_token!)
    expect((await fhir(own, 'Patient/patient-1', refreshed.access_token)).status).toBe(200)
    expect(own.fhirLog.map((e) => [e.accessToken, e.status])).toEqual([
      [tokens.access_token, 200], [tokens.access_token, 401], [refreshed.access_token, 200],
    ])
  } finally {
    await own.close()
  }
})

test('a token from another mock EHR is refused', async () => {
  const other = await createMockEhr()
  try {
    const foreign = (await launch(other)).access_token
    expect((await fhir(ehr, 'Patient/patient-1', foreign)).status).toBe(401)
  } finally {
    await other.close()
  }
})

test('refuses another patient and their compartment with 403', async () => {
  for (const path of ['Patient/patient-2', 'Observation/patient-2-hr-1', 'Observation?patient=patient-2', 'Condition?subject=Patient/patient-3', 'MedicationRequest?patient=patient-2']) {
    const response = await fhir(ehr, path, token)
    expect([path, response.status]).toEqual([path, 403])
    expect(await response.json()).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'forbidden' }] })
  }
  const create = await fhir(ehr, 'Observation', token, {
    method: 'POST',
    body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/patient-2' } }),
  })
  expect(create.status).toBe(403)
})

test('answers 404 for unknown resources and types, 400 for bad input', async () => {
  expect((await fhir(ehr, 'Observation/nope', token)).status).toBe(404)
  expect((await fhir(ehr, 'Spaceship/1', token)).status).toBe(404)
  const wrongType = await fhir(ehr, 'Observation', token, { method: 'POST', body: JSON.stringify({ resourceType: 'Condition' }) })
  expect(wrongType.status).toBe(400)
  const notJson = await fhir(ehr, 'Observation', token, { method: 'POST', body: '{not json' })
  expect(notJson.status).toBe(400)
  expect(await notJson.json()).toMatchObject({ resourceType: 'OperationOutcome' })
})

test('a token without a scope for the resource type is refused with 403', async () => {
  const narrow = (await launch(ehr, { scope: 'launch patient/Observation.rs' })).access_token
  expect((await fhir(ehr, 'Observation?patient=patient-1', narrow)).status).toBe(200)
  expect((await fhir(ehr, 'Condition?patient=patient-1', narrow)).status).toBe(403)
  const write = await fhir(ehr, 'Observation', narrow, { method: 'POST', body: JSON.stringify({ resourceType: 'Observation', subject: { reference: 'Patient/patient-1' } }) })
  expect(write.status).toBe(403)
})

test('searches page through Bundle next links', async () => {
  const ids = new Set<string>()
  let url: string | undefined = `${ehr.iss}/Observation?patient=patient-1&_count=10`
  let pages = 0
  let total = 0
  while (url) {
    expect(url.startsWith(`${ehr.iss}/Observation?`)).toBe(true)
    const bundle = await (await fhir(ehr, url, token)).json()
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'searchset' })
    total = bundle.total
    for (const entry of bundle.entry) ids.add(entry.resource.id)
    url = bundle.link.find((l: { relation: string }) => l.relation === 'next')?.url
    pages++
  }
  expect(total).toBeGreaterThan(25)
  expect(pages).toBe(Math.ceil(total / 10))
  expect(pages).toBeGreaterThanOrEqual(3)
  expect(ids.size).toBe(total)

  const heartRates = await (await fhir(ehr, 'Observation?subject=Patient/patient-1&code=http://loinc.org|8867-4', token)).json()
  expect(heartRates.total).toBe(8)
  const vitals = await (await fhir(ehr, 'Observation?patient=patient-1&category=vital-signs&_count=5', token)).json()
  expect(vitals.entry).toHaveLength(5)
  for (const type of ['Condition', 'MedicationRequest', 'Encounter']) {
    const bundle = await (await fhir(ehr, `${type}?patient=patient-1`, token)).json()
    expect([type, bundle.total > 0]).toEqual([type, true])
  }
})

test('creates, updates, reads and deletes; writes stay in their instance', async () => {
  const created = await fhir(ehr, 'Observation', token, {
    method: 'POST',
    body: JSON.stringify({ resourceType: 'Observation', status: 'preliminary', code: { text: 'Pain score' }, subject: { reference: 'Patient/patient-1' }, valueInteger: 3 }),
  })
  expect(created.status).toBe(201)
  const resource = await created.json()
  expect(resource.id).toEqual(expect.any(String))
  expect(created.headers.get('location')).toBe(`${ehr.iss}/Observation/${resource.id}/_history/1`)

  const updated = await fhir(ehr, `Observation/${resource.id}`, token, { method: 'PUT', body: JSON.stringify({ ...resource, status: 'final' }) })
  expect(updated.status).toBe(200)
  expect((await updated.json()).meta.versionId).toBe('2')
  expect(await (await fhir(ehr, `Observation/${resource.id}`, token)).json()).toMatchObject({ status: 'final', valueInteger: 3 })

  const mismatch = await fhir(ehr, `Observation/${resource.id}`, token, { method: 'PUT', body: JSON.stringify({ ...resource, id: 'other' }) })
  expect(mismatch.status).toBe(400)

  const other = await createMockEhr()
  try {
    const otherToken = (await launch(other)).access_token
    expect((await fhir(other, `Observation/${resource.id}`, otherToken)).status).toBe(404)
  } finally {
    await other.close()
  }

  expect((await fhir(ehr, `Observation/${resource.id}`, token, { method: 'DELETE' })).status).toBe(200)
  expect((await fhir(ehr, `Observation/${resource.id}`, token)).status).toBe(404)
})

test('a batch reports each entry; a failing entry does not stop the others', async () => {
  const response = await fhir(ehr, '', token, {
    method: 'POST',
    body: JSON.stringify({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: 'Patient/patient-1' } },
        { request: { method: 'GET', url: 'Observation/does-not-exist' } },
        { request: { method: 'POST', url: 'Condition' }, resource: { resourceType: 'Condition', code: { text: 'Headache' }, subject: { reference: 'Patient/patient-1' } } },
        { request: { method: 'GET', url: 'Condition?patient=patient-1' } },
      ],
    }),
  })
  expect(response.status).toBe(200)
  const bundle = await response.json()
  expect(bundle.type).toBe('batch-response')
  expect(bundle.entry.map((e: { response: { status: string } }) => e.response.status)).toEqual(['200 OK', '404 Not Found', '201 Created', '200 OK'])
  expect(bundle.entry[0].resource.id).toBe('patient-1')
  expect(bundle.entry[1].response.outcome).toMatchObject({ resourceType: 'OperationOutcome' })
  expect(bundle.entry[2].response.location).toMatch(new RegExp(`^${ehr.iss}/Condition/`))
  expect(bundle.entry[3].resource.entry.map((e: { resource: { code: { text: string } } }) => e.resource.code.text)).toContain('Headache')
})

test('a failing transaction changes nothing', async () => {
  const before = (await (await fhir(ehr, 'Condition?patient=patient-1', token)).json()).total
  const response = await fhir(ehr, '', token, {
    method: 'POST',
    body: JSON.stringify({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { request: { method: 'POST', url: 'Condition' }, resource: { resourceType: 'Condition', subject: { reference: 'Patient/patient-1' } } },
        { request: { method: 'DELETE', url: 'Condition/does-not-exist' } },
      ],
    }),
  })
  expect(response.status).toBe(404)
  expect((await (await fhir(ehr, 'Condition?patient=patient-1', token)).json()).total).toBe(before)
})

describe('faults', () => {
  afterEach(() => {
    ehr.faults = {}
  })

  test('discovery: 500, malformed and hang', async () => {
    const url = `${ehr.iss}/.well-known/smart-configuration`
    ehr.faults.discovery = '500'
    expect((await fetch(url)).status).toBe(500)
    ehr.faults.discovery = 'malformed'
    const malformed = await fetch(url)
    expect(malformed.status).toBe(200)
    await expect(malformed.json()).rejects.toThrow()
    ehr.faults.discovery = 'hang'
    await expect(fetch(url, { signal: AbortSignal.timeout(200) })).rejects.toThrow(/abort|timeout/i)
    ehr.faults = {}
    expect((await fetch(url)).status).toBe(200)
  })

  test('token: 500 and hang; the code flow then fails', async () => {
    const config = await configFor(ehr)
    ehr.faults.token = '500'
    await expect(launch(ehr)).rejects.toThrow()
    ehr.faults.token = 'hang'
    const hung = fetch(`${ehr.issuer}/token`, { method: 'POST', signal: AbortSignal.timeout(200) })
    await expect(hung).rejects.toThrow(/abort|timeout/i)
    expect(config.serverMetadata().token_endpoint).toBe(`${ehr.issuer}/token`)
  })

  test('token: drop grants the refresh (the refresh token rotates) but never answers', async () => {
    const refreshToken = (await launch(ehr)).refresh_token!
    const refresh = (signal?: AbortSignal) => fetch(`${ehr.issuer}/token`, {
      method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'mock-app' }), signal,
    })
    const grants = ehr.stats.refreshGrants
    ehr.faults.token = 'drop'
    await expect(refresh(AbortSignal.timeout(500))).rejects.toThrow(/abort|timeout/i)
    expect(ehr.stats.refreshGrants).toBe(grants + 1)
    ehr.faults = {}
    const spent = await refresh()
    expect(spent.status).toBe(400)
    expect(await spent.json()).toMatchObject({ error: 'invalid_grant' })
  })

  test('jwks: 500', async () => {
    ehr.faults.jwks = '500'
    expect((await fetch(`${ehr.issuer}/jwks`)).status).toBe(500)
    ehr.faults = {}
    expect((await (await fetch(`${ehr.issuer}/jwks`)).json()).keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256' })
  })

  test('fhir: 500 and malformed are logged with the token the request carried', async () => {
    const requests = ehr.stats.fhirRequests
    ehr.faults.fhir = '500'
    expect((await fhir(ehr, 'Patient/patient-1', token)).status).toBe(500)
    ehr.faults.fhir = 'malformed'
    const malformed = await fhir(ehr, 'Patient/patient-1', token)
    await expect(malformed.json()).rejects.toThrow()
    expect(ehr.stats.fhirRequests).toBe(requests + 2)
    await new Promise((resolve) => setImmediate(resolve))
    expect(ehr.fhirLog.slice(-2)).toEqual([
      { method: 'GET', url: `${ehr.iss}/Patient/patient-1`, accessToken: token, status: 500 },
      { method: 'GET', url: `${ehr.iss}/Patient/patient-1`, accessToken: token, status: 200 },
    ])
  })

  test('close() ends hung requests', async () => {
    const own = await createMockEhr()
    own.faults.fhir = 'hang'
    const hung = fetch(`${own.iss}/Patient/patient-1`).catch((error: unknown) => error)
    await new Promise((resolve) => setTimeout(resolve, 50))
    await own.close()
    // fetch rejects with a TypeError of the host realm, not Jest's, so compare by name.
    expect(await hung).toMatchObject({ name: 'TypeError', message: 'fetch failed' })
  })
})
