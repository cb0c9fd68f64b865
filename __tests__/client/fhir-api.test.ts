import { MemoryStore } from 'express-session'
import type * as fhir4 from 'fhir/r4'
import { SmartClient, SmartError, expressSessionStorage, isNotFound, type SmartClientOptions } from '../../lib'
import { createMockEhr, type LaunchContext, type MockEhr } from '../../lib/testing'
import { completeLaunch, devOptions, openConfig } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
const config = openConfig({ scope: 'openid fhirUser launch launch/patient patient/*.cruds offline_access' })
let n = 0

/** A ReadyClient for a completed launch. */
async function launched(context: LaunchContext = { patient: 'patient-1' }, opts: SmartClientOptions = devOptions) {
  const client = new SmartClient(`fhir-api-${++n}`, storage, config, opts)
  await completeLaunch(ehr, context, client)
  return client.ready()
}

/** A fetch that records every URL and lets a test rewrite FHIR search answers (faults a real server cannot make). */
function recordingFetch(rewrite?: (bundle: fhir4.Bundle) => fhir4.Bundle) {
  const sent: string[] = []
  const fetchFn: typeof fetch = async (input, init) => {
    sent.push(String(input))
    const response = await fetch(input, init)
    if (!rewrite || !String(input).includes('/fhir/Observation')) return response
    const body = JSON.stringify(rewrite(await response.json()))
    return new Response(body, { status: response.status, headers: { 'content-type': 'application/fhir+json' } })
  }
  return { sent, fetch: fetchFn }
}

const observation = (patient: string, text: string): fhir4.Observation => ({
  resourceType: 'Observation',
  status: 'preliminary',
  code: { text },
  subject: { reference: `Patient/${patient}` },
})

const requestsSince = (count: number) => ehr.fhirLog.slice(count)

describe('typed FHIR helpers', () => {
  it('read is typed by resource type and sends one GET', async () => {
    const fhir = await launched()
    const patient: fhir4.Patient = await fhir.read('Patient', 'patient-1')
    expect(patient).toMatchObject({ resourceType: 'Patient', id: 'patient-1', name: [{ family: 'Shaw' }] })
    expect(ehr.fhirLog.at(-1)).toMatchObject({ method: 'GET', url: `${ehr.iss}/Patient/patient-1`, status: 200 })
  })

  it('pages follow next links: 32 Observations in pages of 10, every entry once', async () => {
    const fhir = await launched()
    const before = ehr.fhirLog.length
    const pages = []
    for await (const page of fhir.pages('Observation', { patient: 'patient-1', _count: 10 })) pages.push(page)
    const ids = pages.flatMap((page) => (page.entry ?? []).map((entry) => entry.resource?.id))
    expect(pages[0].total).toBe(32)
    expect(pages.map((page) => page.entry?.length)).toEqual([10, 10, 10, 2])
    expect(ids).toHaveLength(32)
    expect(new Set(ids).size).toBe(32)
    expect(requestsSince(before).map((entry) => new URL(entry.url).searchParams.get('_offset'))).toEqual([null, '10', '20', '30'])
  })

  it('resources yields every matching resource across pages; stopping early sends no further request', async () => {
    const fhir = await launched()
    const observations: fhir4.Observation[] = []
    for await (const obs of fhir.resources('Observation', { _count: 10 })) observations.push(obs)
    expect(new Set(observations.map((obs) => obs.id)).size).toBe(32)
    expect(observations.every((obs) => obs.subject?.reference === 'Patient/patient-1')).toBe(true)

    const before = ehr.fhirLog.length
    for await (const obs of fhir.resources('Observation', { _count: 10 })) if (obs) break
    expect(ehr.fhirLog.length).toBe(before + 1)
  })

  it('search encodes params (arrays repeat the parameter) and returns the Bundle', async () => {
    const fhir = await launched()
    const bundle = await fhir.search('Observation', { code: 'http://loinc.org|8867-4', status: ['final'], _count: 50 })
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 8 })
    const sent = new URL(ehr.fhirLog.at(-1)!.url)
    expect([...sent.searchParams]).toEqual([['code', 'http://loinc.org|8867-4'], ['status', 'final'], ['_count', '50']])
  })

  it('create → read → update → read → delete round trip', async () => {
    const fhir = await launched({ patient: 'patient-3' })
    const created = await fhir.create(observation('patient-3', 'round trip'))
    expect(created).toMatchObject({ resourceType: 'Observation', id: expect.any(String), meta: { versionId: '1' } })
    expect(ehr.fhirLog.at(-1)).toMatchObject({ method: 'POST', url: `${ehr.iss}/Observation`, status: 201 })
    const id = created.id!
    expect(await fhir.read('Observation', id)).toMatchObject({ code: { text: 'round trip' }, status: 'preliminary' })
    const updated = await fhir.update({ ...created, status: 'final' })
    expect(updated).toMatchObject({ id, status: 'final', meta: { versionId: '2' } })
    expect(ehr.fhirLog.at(-1)).toMatchObject({ method: 'PUT', url: `${ehr.iss}/Observation/${id}`, status: 200 })
    expect(await fhir.read('Observation', id)).toMatchObject({ status: 'final', meta: { versionId: '2' } })
    await fhir.delete('Observation', id)
    expect(isNotFound(await fhir.read('Observation', id).catch((err: unknown) => err))).toBe(true)
  })

  it('search takes URLSearchParams (repeated names kept) or no parameters at all', async () => {
    const fhir = await launched()
    const before = ehr.fhirLog.length
    await fhir.search('Observation', new URLSearchParams([['patient', 'patient-1'], ['code', 'a'], ['code', 'b']]))
    await fhir.search('Patient')
    await fhir.search('Patient', {})
    expect(requestsSince(before).map((entry) => entry.url)).toEqual([
      `${ehr.iss}/Observation?patient=patient-1&code=a&code=b`, `${ehr.iss}/Patient`, `${ehr.iss}/Patient`,
    ])
  })

  it('resources() reads pages without entries or links as one empty page', async () => {
    const { fetch } = recordingFetch(({ entry: _entry, link: _link, ...bundle }) => bundle)
    const fhir = await launched(undefined, { ...devOptions, fetch })
    const found = []
    for await (const resource of fhir.resources('Observation', { patient: 'patient-1' })) found.push(resource)
    expect(found).toEqual([])
  })

  it('a batch answered with something else than a Bundle is FHIR_REQUEST_FAILED, naming the batch', async () => {
    const notBundle: typeof fetch = async (input, init) =>
      init?.method === 'POST' && String(input) === `${ehr.iss}` ? Response.json({ resourceType: 'OperationOutcome' }) : fetch(input, init)
    const fhir = await launched({ patient: 'patient-3' }, { ...devOptions, fetch: notBundle })
    await expect(fhir.batch([{ request: { method: 'GET', url: 'Patient/patient-3' } }])).rejects.toMatchObject({
      code: 'FHIR_REQUEST_FAILED', message: 'The FHIR server answered the batch without a Bundle resource',
    })
  })

  it('batch and transaction refuse entries that are not an array, before sending', async () => {
    const fhir = await launched()
    const before = ehr.fhirLog.length
    await expect(fhir.batch({} as never)).rejects.toThrow(new TypeError('batch: entries must be an array'))
    await expect(fhir.transaction('x' as never)).rejects.toThrow(new TypeError('transaction: entries must be an array'))
    expect(ehr.fhirLog.length).toBe(before)
  })

  it('request() sends a string body as it is, and an object as JSON; content-type defaults to FHIR JSON', async () => {
    const sent: Array<{ body: unknown; type: string | undefined }> = []
    const fetchFn: typeof fetch = (input, init) => {
      if (String(input).includes('/fhir/Observation')) sent.push({ body: init?.body, type: (init?.headers as Record<string, string>)['content-type'] })
      return fetch(input, init)
    }
    // patient-3: the Observations of patient-1 are counted by the paging tests.
    const fhir = await launched({ patient: 'patient-3' }, { ...devOptions, fetch: fetchFn })
    const text = JSON.stringify(observation('patient-3', 'as text'))
    await fhir.request('Observation', { method: 'POST', body: text, headers: { 'content-type': 'application/json' } })
    await fhir.request('Observation', { method: 'POST', body: observation('patient-3', 'as object') })
    expect(sent).toEqual([
      { body: text, type: 'application/json' },
      { body: JSON.stringify(observation('patient-3', 'as object')), type: 'application/fhir+json' },
    ])
  })

  it('update without an id and ids that would change the path are refused before sending', async () => {
    const fhir = await launched()
    const before = ehr.fhirLog.length
    await expect(fhir.update(observation('patient-1', 'no id'))).rejects.toThrow(new TypeError('Not a FHIR resource id: undefined'))
    await expect(fhir.update(null as never)).rejects.toThrow(new TypeError('Not a FHIR resource id: undefined'))
    await expect(fhir.read('Patient', '../Practitioner/smart-practitioner-1')).rejects.toThrow(new TypeError('Not a FHIR resource id: "../Practitioner/smart-practitioner-1"'))
    await expect(fhir.read('Patient', 'patient-1?_format=xml')).rejects.toThrow(new TypeError('Not a FHIR resource id: "patient-1?_format=xml"'))
    await expect(fhir.read('patient/x' as 'Patient', 'patient-1')).rejects.toThrow(new TypeError('Not a FHIR resource type: "patient/x"'))
    // Not a string, though it reads as a type: refused all the same.
    await expect(fhir.read({ toString: () => 'Patient' } as never, 'patient-1')).rejects.toThrow(new TypeError('Not a FHIR resource type: {}'))
    expect(ehr.fhirLog.length).toBe(before)
  })

  it('a batch POSTs to the FHIR base and reports a failing entry per entry', async () => {
    const fhir = await launched({ patient: 'patient-3' })
    const result = await fhir.batch([
      { request: { method: 'GET', url: 'Patient/patient-3' } },
      { request: { method: 'GET', url: 'Condition/does-not-exist' } },
      { request: { method: 'POST', url: 'Observation' }, resource: observation('patient-3', 'from a batch') },
    ])
    expect(ehr.fhirLog.at(-1)).toMatchObject({ method: 'POST', url: `${ehr.iss}/`, status: 200 })
    expect(result).toMatchObject({ resourceType: 'Bundle', type: 'batch-response' })
    const [read, missing, created] = result.entry!
    expect(read.response?.status).toMatch(/^200/)
    expect(missing.response).toMatchObject({ status: expect.stringMatching(/^404/), outcome: { resourceType: 'OperationOutcome' } })
    expect(created.response?.status).toMatch(/^201/)
    expect(created.resource).toMatchObject({ resourceType: 'Observation', code: { text: 'from a batch' } })
  })

  it('a failing transaction throws with the OperationOutcome and applies nothing', async () => {
    const fhir = await launched({ patient: 'patient-3' })
    const before = (await fhir.search('Observation', { _count: 1 })).total
    const err = await fhir
      .transaction([
        { request: { method: 'POST', url: 'Observation' }, resource: observation('patient-3', 'from a transaction') },
        { request: { method: 'DELETE', url: 'Condition/does-not-exist' } },
      ])
      .catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 404, operationOutcome: { resourceType: 'OperationOutcome' } })
    expect((await fhir.search('Observation', { _count: 1 })).total).toBe(before)
    await expect(fhir.transaction([{ request: { method: 'POST', url: 'Observation' }, resource: observation('patient-3', 'ok') }]))
      .resolves.toMatchObject({ type: 'transaction-response', entry: [{ response: { status: expect.stringMatching(/^201/) } }] })
  })
})

describe('errors', () => {
  it('a missing resource is FHIR_REQUEST_FAILED 404 with the OperationOutcome, and isNotFound', async () => {
    const fhir = await launched()
    const err = await fhir.read('Patient', 'does-not-exist').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SmartError)
    expect(err).toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 404, operationOutcome: { resourceType: 'OperationOutcome', issue: [{ code: 'not-found' }] } })
    expect(isNotFound(err)).toBe(true)
  })

  it('other failures carry their status and outcome and are not "not found"', async () => {
    const fhir = await launched()
    const forbidden = await fhir.read('Patient', 'patient-2').catch((e: unknown) => e)
    expect(forbidden).toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 403, operationOutcome: { issue: [{ code: 'forbidden' }] } })
    expect(isNotFound(forbidden)).toBe(false)
    const invalid = await fhir.request('Observation', { method: 'POST', body: { resourceType: 'Patient' } }).catch((e: unknown) => e)
    expect(invalid).toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 400, operationOutcome: { issue: [{ code: 'invalid' }] } })
    expect(isNotFound(invalid)).toBe(false)
    expect(isNotFound(new Error('404'))).toBe(false)
  })

  it('a 2xx answer that is not the requested resource is FHIR_REQUEST_FAILED, not a mistyped value', async () => {
    const fhir = await launched()
    ehr.faults.fhir = 'malformed'
    try {
      await expect(fhir.read('Patient', 'patient-1')).rejects.toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 502 })
    } finally {
      delete ehr.faults.fhir
    }
  })
})

describe('refresh on 401', () => {
  it('after the token expires mid-use, a read succeeds and the retry carries the new token', async () => {
    const fhir = await launched()
    await fhir.read('Patient', 'patient-1')
    const oldToken = ehr.fhirLog.at(-1)!.accessToken
    ehr.expireAccessTokens()
    await expect(fhir.read('Patient', 'patient-1')).resolves.toMatchObject({ id: 'patient-1' })
    const [rejected, retried] = ehr.fhirLog.slice(-2)
    expect(rejected).toMatchObject({ status: 401, accessToken: oldToken, url: `${ehr.iss}/Patient/patient-1` })
    expect(retried).toMatchObject({ status: 200, url: `${ehr.iss}/Patient/patient-1` })
    expect(retried.accessToken).not.toBe(oldToken)
  })

  it('paging goes on across an expiry: the next page is retried once with the new token', async () => {
    const fhir = await launched()
    const grants = ehr.stats.refreshGrants
    let count = 0
    for await (const page of fhir.pages('Observation', { _count: 10 })) {
      count += page.entry?.length ?? 0
      if (count === 10) ehr.expireAccessTokens()
    }
    expect(count).toBe(32)
    expect(ehr.stats.refreshGrants).toBe(grants + 1)
    expect(ehr.fhirLog.filter((entry) => entry.status === 401)).not.toHaveLength(0)
  })
})

describe('the token stays on the FHIR server origin', () => {
  it('an absolute URL on another origin is FORBIDDEN_URL and nothing is sent', async () => {
    const { sent, fetch } = recordingFetch()
    const fhir = await launched(undefined, { ...devOptions, fetch })
    const before = sent.length
    await expect(fhir.request('https://elsewhere.example/fhir/Patient/patient-1')).rejects.toMatchObject({ code: 'FORBIDDEN_URL', status: 400 })
    await expect(fhir.request('https://elsewhere.example/fhir/Patient/patient-1', { cache: { ttlSeconds: 60 } })).rejects.toMatchObject({ code: 'FORBIDDEN_URL' })
    expect(sent.length).toBe(before)
  })

  it('a next link to another origin is FORBIDDEN_URL after the first page, and nothing is sent there', async () => {
    const evil = 'https://evil.example/fhir/Observation?_count=10&_offset=10'
    const { sent, fetch } = recordingFetch((bundle) => ({ ...bundle, link: [{ relation: 'next', url: evil }] }))
    const fhir = await launched(undefined, { ...devOptions, fetch })
    const pages: fhir4.Bundle[] = []
    const err = await (async () => {
      for await (const page of fhir.pages('Observation', { _count: 10 })) pages.push(page)
    })().catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'FORBIDDEN_URL' })
    expect(pages).toHaveLength(1)
    expect(sent.filter((url) => url.startsWith('https://evil.example'))).toEqual([])
  })

  it('a 2xx answer that is not the resource asked for is FHIR_REQUEST_FAILED, naming what was asked', async () => {
    const { fetch } = recordingFetch(() => ({ resourceType: 'OperationOutcome' }) as never)
    const fhir = await launched(undefined, { ...devOptions, fetch })
    await expect(fhir.search('Observation', { _count: 10 })).rejects.toMatchObject({
      code: 'FHIR_REQUEST_FAILED', message: 'The FHIR server answered GET Observation?_count=10 without a Bundle resource',
    })
  })

  it('a next link that leads back to a page already read ends paging with FHIR_REQUEST_FAILED', async () => {
    let loop = ''
    const { fetch } = recordingFetch((bundle) => ({ ...bundle, link: [{ relation: 'next', url: loop }] }))
    const fhir = await launched(undefined, { ...devOptions, fetch })
    loop = `${fhir.fhirServer}/Observation?_count=10&_offset=10`
    let pages = 0
    const err = await (async () => {
      for await (const _page of fhir.pages('Observation', { _count: 10 })) pages++
    })().catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'FHIR_REQUEST_FAILED', message: 'The FHIR server\'s next link leads back to a page already read' })
    expect(pages).toBe(2)
  })
})

describe('context shortcuts', () => {
  it('patient.read(), encounter.read() and user.read() return the launch context resources', async () => {
    const fhir = await launched({ patient: 'patient-1', encounter: 'patient-1-encounter-1' })
    await expect(fhir.patient!.read()).resolves.toMatchObject({ resourceType: 'Patient', id: 'patient-1' })
    await expect(fhir.encounter!.read()).resolves.toMatchObject({ resourceType: 'Encounter', id: 'patient-1-encounter-1', subject: { reference: 'Patient/patient-1' } })
    await expect(fhir.user!.read()).resolves.toMatchObject({ resourceType: 'Practitioner', id: 'smart-practitioner-1' })
    expect(ehr.fhirLog.at(-1)).toMatchObject({ url: `${ehr.iss}/Practitioner/smart-practitioner-1`, status: 200 })
  })

  it('context reads take the cache option: a second read within its TTL sends nothing', async () => {
    const fhir = await launched({ patient: 'patient-1' })
    await fhir.user!.read({ cache: { ttlSeconds: 60 } })
    await fhir.patient!.read({ cache: { ttlSeconds: 60 } })
    const before = ehr.fhirLog.length
    await expect(fhir.user!.read({ cache: { ttlSeconds: 60 } })).resolves.toMatchObject({ resourceType: 'Practitioner' })
    await expect(fhir.patient!.read({ cache: { ttlSeconds: 60 } })).resolves.toMatchObject({ resourceType: 'Patient' })
    expect(ehr.fhirLog.length).toBe(before)
  })

  it('the context fields serialize as before: data only, no read(), no token', async () => {
    const fhir = await launched({ patient: 'patient-1', encounter: 'patient-1-encounter-1' })
    await fhir.read('Patient', 'patient-1')
    const token = ehr.fhirLog.at(-1)!.accessToken!
    expect(Object.keys(fhir.patient!)).toEqual(['id', 'reference'])
    expect(Object.keys(fhir.user!)).toEqual(['fhirUser', 'resourceType', 'id'])
    const json = JSON.parse(JSON.stringify(fhir))
    expect(json.patient).toStrictEqual({ id: 'patient-1', reference: 'Patient/patient-1' })
    expect(json.encounter).toStrictEqual({ id: 'patient-1-encounter-1', reference: 'Encounter/patient-1-encounter-1' })
    expect(json.user).toStrictEqual({ fhirUser: `${ehr.iss}/Practitioner/smart-practitioner-1`, resourceType: 'Practitioner', id: 'smart-practitioner-1' })
    expect(JSON.stringify(fhir.toJSON())).toBe(JSON.stringify(fhir))
    expect(JSON.stringify(fhir)).not.toContain(token)
  })
})
