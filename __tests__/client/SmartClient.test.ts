import { createHash } from 'node:crypto'
import type { Store } from 'express-session'
import { SmartClient, SmartError, expressSessionStorage, type SmartStorage } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { storeKinds } from '../helpers/stores'
import { authorize, completeLaunch, devOptions, ehrLaunch, openConfig, rewritingTokenResponses, smartConfigurationWithout, testClock } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const context = { patient: 'patient-1', encounter: 'encounter-1' }

/**
 * What the page gets as `?patient=` and sends back as `X-Active-Patient` for (EHR, patient), computed here rather
 * than by the library: openConfig() allows any issuer, so `<patient id>_<12 base64url characters of the issuer's SHA-256>`.
 */
const selectorOf = (iss: string, patient: string) => `${patient}_${createHash('sha256').update(iss).digest('base64url').slice(0, 12)}`

describe.each(storeKinds())('SmartClient over %s', (_name, kind) => {
  let store: Store
  let storage: SmartStorage
  let newStore: () => Promise<Store>
  let close: () => Promise<void>
  const config = openConfig()
  let sid = 0
  const nextSession = () => `session-${++sid}-${Math.random().toString(36).slice(2)}`

  beforeAll(async () => {
    ;({ store, newStore, close } = await kind.open())
    storage = expressSessionStorage(store)
  })
  afterAll(() => close())

  it('launch → callback → ready yields the launched patient, encounter and user, and reads the Patient', async () => {
    const client = new SmartClient(nextSession(), storage, config, devOptions)
    const result = await completeLaunch(ehr, context, client)
    // The redirect always names the launch (single-launch mode too); no browser cookie without the middleware.
    const selector = selectorOf(ehr.iss, 'patient-1')
    expect(result).toEqual({ redirectUrl: `http://app.test/app?patient=${selector}`, patient: 'patient-1', intent: null, activePatient: selector, browserKey: null })

    const fhir = await client.ready()
    expect(fhir.fhirServer).toBe(ehr.iss)
    expect(fhir.patient).toEqual({ id: 'patient-1', reference: 'Patient/patient-1' })
    expect(fhir.encounter).toEqual({ id: 'encounter-1', reference: 'Encounter/encounter-1' })
    expect(fhir.user).toMatchObject({ resourceType: 'Practitioner', fhirUser: expect.stringContaining(`${ehr.iss}/Practitioner/`) })
    expect(fhir.scope.split(' ')).toEqual(expect.arrayContaining(['openid', 'launch', 'patient/*.rs']))
    expect(fhir.idTokenClaims).toMatchObject({ iss: ehr.issuer, aud: 'mock-app' })
    const patient = await fhir.request<{ resourceType: string; id: string }>('Patient/patient-1')
    expect(patient).toMatchObject({ resourceType: 'Patient', id: 'patient-1' })
  })

  it('S8 S5 the authorization URL carries every SMART parameter', async () => {
    const launch = ehrLaunch(ehr, context)
    const { redirectUrl } = await new SmartClient(nextSession(), storage, config, devOptions).launch(launch)
    const params = new URL(redirectUrl).searchParams
    expect(Object.fromEntries(params)).toMatchObject({
      response_type: 'code',
      client_id: 'mock-app',
      redirect_uri: 'http://app.test/callback',
      scope: config.scope,
      aud: ehr.iss,
      launch: launch.launch,
      code_challenge_method: 'S256',
    })
    expect(params.get('state')).toMatch(/^[\w-]{43,}$/)
    expect(params.get('code_challenge')).toMatch(/^[\w-]{43}$/)
    expect(params.get('nonce')).toMatch(/^[\w-]{43,}$/)
  })

  it('S11 two launches in one session, called back in reverse order, both complete', async () => {
    const session = nextSession()
    const client = new SmartClient(session, storage, config, devOptions)
    const first = await client.launch(ehrLaunch(ehr, { patient: 'patient-1' }))
    const second = await client.launch(ehrLaunch(ehr, { patient: 'patient-2' }))
    await expect(client.callback(await authorize(ehr, second.redirectUrl))).resolves.toMatchObject({ patient: 'patient-2' })
    await expect(client.callback(await authorize(ehr, first.redirectUrl))).resolves.toMatchObject({ patient: 'patient-1' })
    // Single-launch mode: the most recently completed callback defines the context. A page must name it: one
    // still showing patient-2 (opened with its selector) is told its launch was replaced, never served patient-1.
    const at = (activePatient: string | null) => new SmartClient({ sessionId: session, activePatient }, storage, config, devOptions)
    expect((await at(selectorOf(ehr.iss, 'patient-1')).ready()).patient?.id).toBe('patient-1')
    await expect(at(selectorOf(ehr.iss, 'patient-2')).ready()).rejects.toMatchObject({ code: 'UNKNOWN_PATIENT', status: 403, message: expect.stringContaining('was replaced') })
    await expect(client.ready()).rejects.toMatchObject({ code: 'ACTIVE_PATIENT_REQUIRED', status: 400 })
  })

  it('S12 rejects an unknown state before any token call and stores nothing', async () => {
    const client = new SmartClient(nextSession(), storage, config, devOptions)
    const { redirectUrl } = await client.launch(ehrLaunch(ehr, context))
    const query = await authorize(ehr, redirectUrl)
    const grants = ehr.stats.codeGrants
    await expect(client.callback({ ...query, state: 'forged-state' })).rejects.toMatchObject({
      code: 'INVALID_STATE', status: 400, message: 'The launch cannot be completed: the state is unknown, expired or already used; launch again from the EHR',
    })
    expect(ehr.stats.codeGrants).toBe(grants)
    await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION', status: 401 })
  })

  it('S12 rejects a replayed state', async () => {
    const client = new SmartClient(nextSession(), storage, config, devOptions)
    const { redirectUrl } = await client.launch(ehrLaunch(ehr, context))
    const query = await authorize(ehr, redirectUrl)
    await client.callback(query)
    await expect(client.callback(query)).rejects.toMatchObject({ code: 'INVALID_STATE' })
  })

  it('S12 rejects the state of another session', async () => {
    const mine = new SmartClient(nextSession(), storage, config, devOptions)
    const theirs = new SmartClient(nextSession(), storage, config, devOptions)
    const { redirectUrl } = await mine.launch(ehrLaunch(ehr, context))
    await expect(theirs.callback(await authorize(ehr, redirectUrl))).rejects.toMatchObject({
      code: 'INVALID_STATE', message: 'The launch cannot be completed: the state belongs to another session (was the session cookie lost?); launch again from the EHR',
    })
    await expect(theirs.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
  })

  it.each([[600_000, true], [600_001, false]])('S6 a launch called back %i ms after it started completes: %s (10 minutes at most)', async (after, completes) => {
    const clock = testClock()
    const options = { ...devOptions, now: clock.now }
    const session = nextSession()
    const { redirectUrl } = await new SmartClient(session, storage, config, options).launch(ehrLaunch(ehr, context))
    const query = await authorize(ehr, redirectUrl)
    clock.advance(after)
    const result = new SmartClient(session, storage, config, options).callback(query)
    if (completes) await expect(result).resolves.toHaveProperty('redirectUrl')
    else await expect(result).rejects.toMatchObject({ code: 'INVALID_STATE', message: 'The launch cannot be completed: the launch expired; launch again from the EHR' })
  })

  it('S13 ?error=access_denied is AUTHORIZATION_DENIED without a code exchange', async () => {
    const client = new SmartClient(nextSession(), storage, config, devOptions)
    const { redirectUrl } = await client.launch(ehrLaunch(ehr, context))
    ehr.faults.authorize = 'deny'
    try {
      const query = await authorize(ehr, redirectUrl)
      expect(query.error).toBe('access_denied')
      await expect(client.callback(query)).rejects.toMatchObject({ code: 'AUTHORIZATION_DENIED', status: 403 })
    } finally {
      delete ehr.faults.authorize
    }
    await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
  })

  it('a launch without encounter and without offline_access works, and cannot be refreshed', async () => {
    const clock = testClock()
    const options = { ...devOptions, now: clock.now }
    const onlineConfig = openConfig({ scope: 'openid fhirUser launch patient/*.rs' })
    const client = new SmartClient(nextSession(), storage, onlineConfig, options)
    await completeLaunch(ehr, { patient: 'patient-2' }, client)
    const fhir = await client.ready()
    expect(fhir.encounter).toBeNull()
    expect(fhir.patient?.id).toBe('patient-2')
    clock.advance(2 * 3600 * 1000)
    await expect(client.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED', status: 401 })
  })

  it('S30 S32 after expiry ready() refreshes, keeps the launch context and follows rotation', async () => {
    const clock = testClock()
    const options = { ...devOptions, now: clock.now }
    const client = new SmartClient(nextSession(), storage, config, options)
    await completeLaunch(ehr, context, client)
    const grants = ehr.stats.refreshGrants
    clock.advance(3600 * 1000)
    const first = await client.ready()
    expect(ehr.stats.refreshGrants).toBe(grants + 1)
    expect(first.patient?.id).toBe('patient-1')
    expect(first.encounter?.id).toBe('encounter-1')
    expect(first.user?.resourceType).toBe('Practitioner')
    await expect(first.request('Patient/patient-1')).resolves.toMatchObject({ id: 'patient-1' })
    // A second expiry needs the rotated refresh token: the first one is already spent.
    clock.advance(3600 * 1000)
    await expect(client.ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    expect(ehr.stats.refreshGrants).toBe(grants + 2)
  })

  it('refresh() always refreshes, even with a fresh token', async () => {
    const client = new SmartClient(nextSession(), storage, config, devOptions)
    await completeLaunch(ehr, context, client)
    const grants = ehr.stats.refreshGrants
    await client.refresh()
    expect(ehr.stats.refreshGrants).toBe(grants + 1)
  })

  it('S31 concurrent refreshes in two app processes use the refresh token once', async () => {
    const clock = testClock()
    const options = { ...devOptions, now: clock.now }
    const session = nextSession()
    const otherStorage = expressSessionStorage(await newStore())
    await completeLaunch(ehr, context, new SmartClient(session, storage, config, options))
    clock.advance(3600 * 1000)
    const grants = ehr.stats.refreshGrants
    // A separate options object gives the second "process" its own runtime: no in-process single-flight shared.
    const otherOptions = { ...options }
    const readies = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        i % 2 ? new SmartClient(session, otherStorage, config, otherOptions).ready() : new SmartClient(session, storage, config, options).ready(),
      ),
    )
    expect(ehr.stats.refreshGrants).toBe(grants + 1)
    for (const fhir of readies) expect(fhir.patient?.id).toBe('patient-1')
  })

  it('S33 a refused refresh (invalid_grant) ends the SMART session without looping', async () => {
    const shortLived = await createMockEhr({ refreshTokenTtlSeconds: 1 })
    try {
      const clock = testClock()
      let refreshAttempts = 0
      const counting: typeof fetch = (input, init) => {
        if (String(init?.body ?? '').includes('grant_type=refresh_token')) refreshAttempts++
        return fetch(input, init)
      }
      const client = new SmartClient(nextSession(), storage, config, { ...devOptions, now: clock.now, fetch: counting })
      await completeLaunch(shortLived, context, client)
      await new Promise((resolve) => setTimeout(resolve, 1500))
      clock.advance(3600 * 1000)
      await expect(client.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED', status: 401 })
      expect(refreshAttempts).toBe(1)
      // Ended: the next request is told why, without trying the refresh again.
      await expect(client.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED', status: 401, message: expect.stringContaining('ended when the EHR refused to refresh it') })
      expect(refreshAttempts).toBe(1)
    } finally {
      await shortLived.close()
    }
  })

  it('S28 logout forgets the session and revokes its tokens', async () => {
    const client = new SmartClient(nextSession(), storage, config, devOptions)
    await completeLaunch(ehr, context, client)
    const revocations = ehr.stats.revocations
    await client.logout()
    expect(ehr.stats.revocations).toBeGreaterThan(revocations)
    // Nothing of the launch is left but that it was closed: the page is told so.
    await expect(client.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED', status: 401, message: expect.stringContaining('was closed') })
  })

  it('launch, callback and ready each in its own app process (separate store connections)', async () => {
    const session = nextSession()
    const [a, b, c] = [storage, expressSessionStorage(await newStore()), expressSessionStorage(await newStore())]
    await completeLaunch(ehr, context, new SmartClient(session, a, config, devOptions), new SmartClient(session, b, config, devOptions))
    const fhir = await new SmartClient(session, c, config, devOptions).ready()
    expect(fhir.patient?.id).toBe('patient-1')
  })

  it('S29 with encryptionKey no token is stored in clear', async () => {
    const session = nextSession()
    const options = { ...devOptions, encryptionKey: Buffer.alloc(32, 9).toString('base64') }
    const seen: string[] = []
    const spying: SmartStorage = {
      get: (key) => storage.get(key),
      set: (key, value, ttl) => (seen.push(JSON.stringify(value)), storage.set(key, value, ttl)),
      delete: (key) => storage.delete(key),
      setIfAbsent: (key, value, ttl) => storage.setIfAbsent!(key, value, ttl),
    }
    const client = new SmartClient(session, spying, config, options)
    await completeLaunch(ehr, context, client)
    const fhir = await client.ready()
    await fhir.request('Patient/patient-1')
    const accessToken = ehr.fhirLog.at(-1)!.accessToken!
    expect(accessToken.length).toBeGreaterThan(10)
    expect(seen.join('\n')).not.toContain(accessToken)
    expect(seen.join('\n')).toContain('sealed')
  })

  describe('multi-launch', () => {
    const multi = { ...devOptions, enableMultiLaunch: true as const }
    const client = (sessionId: string, activePatient: string | null) => new SmartClient({ sessionId, activePatient }, storage, config, multi)

    async function twoPatients(): Promise<string> {
      const session = nextSession()
      const a = await client(session, null).launch(ehrLaunch(ehr, { patient: 'patient-1' }))
      const b = await client(session, null).launch(ehrLaunch(ehr, { patient: 'patient-2' }))
      expect(await client(session, null).callback(await authorize(ehr, b.redirectUrl))).toMatchObject({ redirectUrl: `http://app.test/app?patient=${selectorOf(ehr.iss, 'patient-2')}` })
      expect(await client(session, null).callback(await authorize(ehr, a.redirectUrl))).toMatchObject({ redirectUrl: `http://app.test/app?patient=${selectorOf(ehr.iss, 'patient-1')}` })
      return session
    }

    it('the patient selector joins a redirectUrl that has its own query and a fragment: before the fragment, after the query', async () => {
      const routed = openConfig({ redirectUrl: 'http://app.test/app?view=chart#/summary' })
      const session = nextSession()
      const multiClient = new SmartClient({ sessionId: session, activePatient: null }, storage, routed, multi)
      const { redirectUrl } = await multiClient.launch(ehrLaunch(ehr, { patient: 'patient-1' }))
      expect(await multiClient.callback(await authorize(ehr, redirectUrl))).toMatchObject({
        redirectUrl: `http://app.test/app?view=chart&patient=${selectorOf(ehr.iss, 'patient-1')}#/summary`,
      })
    })

    it('ready() serves exactly the active patient, named by its selector or by its bare id', async () => {
      const session = await twoPatients()
      expect((await client(session, selectorOf(ehr.iss, 'patient-1')).ready()).patient?.id).toBe('patient-1')
      expect((await client(session, selectorOf(ehr.iss, 'patient-2')).ready()).patient?.id).toBe('patient-2')
      expect((await client(session, 'patient-1').ready()).patient?.id).toBe('patient-1')
      expect((await client(session, 'patient-2').ready()).patient?.id).toBe('patient-2')
    })

    it('S27 a patient not launched in this session is UNKNOWN_PATIENT, never another patient', async () => {
      const session = await twoPatients()
      await expect(client(session, 'patient-3').ready()).rejects.toMatchObject({ code: 'UNKNOWN_PATIENT', status: 403 })
      await expect(client(session, selectorOf(ehr.iss, 'patient-3')).ready()).rejects.toMatchObject({ code: 'UNKNOWN_PATIENT', status: 403 })
      // patient-1 of another EHR is another launch, which this session does not have.
      await expect(client(session, selectorOf('https://other-ehr.example/fhir', 'patient-1')).ready()).rejects.toMatchObject({ code: 'UNKNOWN_PATIENT', status: 403 })
    })

    it('no active patient with several launched is ACTIVE_PATIENT_REQUIRED', async () => {
      const session = await twoPatients()
      await expect(client(session, null).ready()).rejects.toMatchObject({ code: 'ACTIVE_PATIENT_REQUIRED', status: 400 })
    })

    it('no active patient with exactly one launched serves that one', async () => {
      const session = nextSession()
      await completeLaunch(ehr, { patient: 'patient-3' }, client(session, null))
      expect((await client(session, null).ready()).patient?.id).toBe('patient-3')
    })

    it('S33 a refused refresh ends only that patient\'s launch; the others keep their lifetime', async () => {
      const shortLived = await createMockEhr({ refreshTokenTtlSeconds: 1 })
      try {
        const clock = testClock()
        const ttls: number[] = []
        const recording: SmartStorage = {
          ...storage,
          get: (key) => storage.get(key),
          delete: (key) => storage.delete(key),
          setIfAbsent: (key, value, ttl) => storage.setIfAbsent!(key, value, ttl),
          set: (key, value, ttl) => (key.startsWith('session:') && ttls.push(ttl ?? 0), storage.set(key, value, ttl)),
        }
        const options = { ...multi, now: clock.now }
        const session = nextSession()
        const at = (patient: string | null) => new SmartClient({ sessionId: session, activePatient: patient }, recording, config, options)
        await completeLaunch(shortLived, { patient: 'patient-1' }, at(null))
        await new Promise((resolve) => setTimeout(resolve, 1500))
        await completeLaunch(ehr, { patient: 'patient-2' }, at(null))
        clock.advance(3600 * 1000)
        ttls.length = 0
        await expect(at('patient-1').ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED' })
        // Ended, not unknown: the page is told why (by its selector or its bare id), and no refresh is tried again.
        const refused = { code: 'SESSION_EXPIRED', status: 401, message: expect.stringContaining('ended when the EHR refused to refresh it') }
        await expect(at('patient-1').ready()).rejects.toMatchObject(refused)
        await expect(at(selectorOf(shortLived.iss, 'patient-1')).ready()).rejects.toMatchObject(refused)
        // The record still holds patient-2, stored for the rest of its absolute lifetime, not briefly.
        expect(Math.min(...ttls)).toBeGreaterThan(3600)
        await expect(at('patient-2').ready()).resolves.toMatchObject({ patient: { id: 'patient-2' } })
      } finally {
        await shortLived.close()
      }
    })

    it('logout with an active patient forgets only that patient', async () => {
      const session = await twoPatients()
      await client(session, selectorOf(ehr.iss, 'patient-1')).logout()
      const closed = { code: 'SESSION_EXPIRED', status: 401, message: expect.stringContaining('was closed') }
      await expect(client(session, selectorOf(ehr.iss, 'patient-1')).ready()).rejects.toMatchObject(closed)
      await expect(client(session, 'patient-1').ready()).rejects.toMatchObject(closed)
      // Closing it again: it is already closed, and says so.
      await expect(client(session, selectorOf(ehr.iss, 'patient-1')).logout()).rejects.toMatchObject(closed)
      expect((await client(session, 'patient-2').ready()).patient?.id).toBe('patient-2')
    })
  })

  it('errors are SmartErrors', async () => {
    const err = await new SmartClient(nextSession(), storage, config, devOptions).ready().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SmartError)
  })
})

describe('SmartClient edges', () => {
  const config = openConfig()
  let n = 0
  const nextSession = () => `edge-${++n}`

  /** A custom SmartStorage over a Map, without the optional setIfAbsent. */
  function plainStorage(): SmartStorage & { calls: string[] } {
    const map = new Map<string, unknown>()
    const calls: string[] = []
    return {
      calls,
      get: async (key) => (calls.push(`get ${key}`), map.get(key)),
      set: async (key, value) => void (calls.push(`set ${key}`), map.set(key, value)),
      delete: async (key) => void (calls.push(`delete ${key}`), map.delete(key)),
    }
  }

  it('S12 over a storage without setIfAbsent, two concurrent callbacks with one state: one completes, the other is INVALID_STATE before any token call', async () => {
    const storage = plainStorage()
    const session = nextSession()
    const client = () => new SmartClient(session, storage, config, devOptions)
    const { redirectUrl } = await client().launch(ehrLaunch(ehr, context))
    const query = await authorize(ehr, redirectUrl)
    const grants = ehr.stats.codeGrants
    const results = await Promise.allSettled([client().callback(query), client().callback(query)])
    expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected'])
    expect(results.find((result) => result.status === 'rejected')).toMatchObject({
      reason: { code: 'INVALID_STATE', message: 'The launch cannot be completed: the state was already used; launch again from the EHR' },
    })
    expect(ehr.stats.codeGrants).toBe(grants + 1)
    await expect(client().ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
  })

  it('?error= from the EHR: the code in the message keeps only [A-Za-z0-9_.-], at most 64; without a state nothing is read or deleted', async () => {
    const storage = plainStorage()
    const client = new SmartClient(nextSession(), storage, config, devOptions)
    await expect(client.callback({ error: 'access_denied<img src=x onerror=alert(1)>"\n' })).rejects.toMatchObject({
      code: 'AUTHORIZATION_DENIED', status: 403, message: 'The EHR did not authorize the app (access_deniedimgsrcxonerroralert1)',
    })
    await expect(client.callback({ error: 'x'.repeat(100), state: '' })).rejects.toMatchObject({ message: `The EHR did not authorize the app (${'x'.repeat(64)})` })
    expect(storage.calls).toEqual([])
  })

  /**
   * One browser in multi-launch mode over its own storage and clock: `at(id, activePatient)` is a request
   * carrying session id `id` (the first one is `s0`; callbacks move it).
   */
  function multiLaunchBrowser() {
    const storage = plainStorage()
    const clock = testClock()
    const options = { ...devOptions, enableMultiLaunch: true as const, now: clock.now }
    const at = (sessionId: string, activePatient: string | null = null) => new SmartClient({ sessionId, activePatient }, storage, config, options)
    return { clock, at, s0: nextSession() }
  }

  /** A storage over a Map the test can read and write, as someone with write access to the store could. */
  function openStorage(): SmartStorage & { map: Map<string, unknown> } {
    const map = new Map<string, unknown>()
    return {
      map,
      get: async (key) => structuredClone(map.get(key)),
      set: async (key, value) => void map.set(key, structuredClone(value)),
      delete: async (key) => void map.delete(key),
    }
  }

  it('S27 a stored session with any one field of the wrong type fails closed (NO_SESSION, unreadable), never a guess', async () => {
    const storage = openStorage()
    const session = nextSession()
    await completeLaunch(ehr, context, new SmartClient(session, storage, config, devOptions))
    const key = `session:{${session}}`
    const good = storage.map.get(key) as { version: string; launches: Record<string, Record<string, unknown>> }
    const [launchId, launch] = Object.entries(good.launches)[0]
    const withLaunch = (changed: Record<string, unknown>) => ({ ...good, launches: { [launchId]: changed } })
    const broken: unknown[] = [
      { ...good, version: 42 }, { ...good, launches: null }, { ...good, launches: [launch] }, withLaunch(null as never), [good],
    ]
    for (const field of ['id', 'selector', 'iss', 'tokens', 'scope', 'completedAt', 'lastUsedAt']) {
      broken.push(withLaunch({ ...launch, [field]: field === 'tokens' || field.endsWith('At') ? 'x' : 42 }))
      broken.push(withLaunch({ ...launch, [field]: undefined }))
    }
    broken.push(withLaunch({ ...launch, tokens: ['x'] }))
    // The session's own fields: its browser, its launch proofs, its ended launches, its kind.
    const selector = selectorOf(ehr.iss, 'patient-1')
    broken.push(
      { ...good, browser: 42 }, { ...good, browser: null },
      { ...good, proofs: 'x' }, { ...good, proofs: [{ hash: 42, at: 1 }] }, { ...good, proofs: [{ hash: 'h', at: 'x' }] }, { ...good, proofs: ['h'] },
      { ...good, ended: ['x'] }, { ...good, ended: { [selector]: 'closed' } }, { ...good, ended: { [selector]: { reason: 42, at: 1 } } }, { ...good, ended: { [selector]: { reason: 'closed', at: 'x' } } },
      { ...good, kind: 'aliases' }, { ...good, kind: undefined },
    )
    for (const record of broken) {
      storage.map.set(key, record)
      await expect(new SmartClient(session, storage, config, devOptions).ready()).rejects.toMatchObject({
        code: 'NO_SESSION', message: 'The stored SMART session is unreadable; launch again from the EHR',
      })
    }
    storage.map.set(key, good)
    await expect(new SmartClient(session, storage, config, devOptions).ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
  })

  it('S27 concurrent refreshes of two sessions, and of two launches of one session, each get their own patient', async () => {
    const storage = plainStorage()
    const [a, b] = [nextSession(), nextSession()]
    await completeLaunch(ehr, { patient: 'patient-1' }, new SmartClient(a, storage, config, devOptions))
    await completeLaunch(ehr, { patient: 'patient-2' }, new SmartClient(b, storage, config, devOptions))
    const grants = ehr.stats.refreshGrants
    const refreshed = await Promise.all([a, b].map((sid) => new SmartClient(sid, storage, config, devOptions).refresh()))
    expect(refreshed.map((fhir) => fhir.patient?.id)).toEqual(['patient-1', 'patient-2'])
    expect(ehr.stats.refreshGrants).toBe(grants + 2)

    const { at, s0 } = multiLaunchBrowser()
    await completeLaunch(ehr, { patient: 'patient-1' }, at(s0))
    await completeLaunch(ehr, { patient: 'patient-2' }, at(s0))
    const both = await Promise.all(['patient-1', 'patient-2'].map((patient) => at(s0, patient).refresh()))
    expect(both.map((fhir) => fhir.patient?.id)).toEqual(['patient-1', 'patient-2'])
  })

  /** A storage whose session record is deleted just before a lock is taken, once armed: a logout in another tab got the lock first. */
  function endingBeforeLock(session: string): SmartStorage & { arm: () => void } {
    const storage = openStorage()
    let armed = false
    return {
      ...storage,
      arm: () => void (armed = true),
      setIfAbsent: async (key, value) => {
        if (armed && key.startsWith('lock:')) storage.map.delete(`session:{${session}}`)
        if (storage.map.has(key)) return false
        storage.map.set(key, value)
        return true
      },
    }
  }

  it('a launch that ends while its use is being recorded (idle timeout): SESSION_EXPIRED, never served', async () => {
    const session = nextSession()
    const racing = endingBeforeLock(session)
    const clock = testClock()
    const options = { ...devOptions, now: clock.now, idleTimeoutSeconds: 600 }
    await completeLaunch(ehr, context, new SmartClient(session, racing, config, options))
    clock.advance(61_000)
    racing.arm()
    await expect(new SmartClient(session, racing, config, options).ready()).rejects.toMatchObject({
      code: 'SESSION_EXPIRED', message: 'The SMART session has expired; launch the app again from the EHR',
    })
  })

  it('a launch that ends while its refresh waits for the lock (a logout in another tab): NO_SESSION, saying so, and no refresh grant', async () => {
    const session = nextSession()
    const racing = endingBeforeLock(session)
    await completeLaunch(ehr, context, new SmartClient(session, racing, config, devOptions))
    const grants = ehr.stats.refreshGrants
    racing.arm()
    await expect(new SmartClient(session, racing, config, devOptions).refresh()).rejects.toMatchObject({
      code: 'NO_SESSION', message: 'The SMART launch ended while refreshing; launch again',
    })
    expect(ehr.stats.refreshGrants).toBe(grants)
  })

  it('S27 stored links that go round in a circle end in NO_SESSION for reads and callbacks, never a hang', async () => {
    const storage = openStorage()
    const [a, b] = [nextSession(), nextSession()]
    storage.map.set(`session:{${a}}`, { kind: 'link', to: b })
    storage.map.set(`session:{${b}}`, { kind: 'forward', to: a, at: Date.now(), held: [] })
    await expect(new SmartClient(a, storage, config, devOptions).ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
    await expect(new SmartClient(b, storage, config, devOptions).logout()).resolves.toBeUndefined()
    // A launch started under a: its callback from b cannot tell whose it is, and is refused.
    const { redirectUrl } = await new SmartClient(a, storage, config, devOptions).launch(ehrLaunch(ehr, context))
    await expect(new SmartClient(`${b}-other`, storage, config, devOptions).callback(await authorize(ehr, redirectUrl))).rejects.toMatchObject({ code: 'INVALID_STATE' })
  })

  it('S27 a stored pending launch with any one field of the wrong type fails closed at the callback, before any token call', async () => {
    const storage = openStorage()
    const session = nextSession()
    const client = new SmartClient(session, storage, config, devOptions)
    const launched = async () => {
      const { redirectUrl } = await client.launch(ehrLaunch(ehr, context))
      const query = await authorize(ehr, redirectUrl)
      const key = `pending:{${query.state}}`
      return { query, key, good: storage.map.get(key) as Record<string, unknown> }
    }
    const { query, key, good } = await launched()
    expect(good).toMatchObject({ binding: null, secrets: { codeVerifier: expect.any(String), nonce: expect.any(String) } })
    const grants = ehr.stats.codeGrants
    const wrong = (field: string) => (field === 'createdAt' ? 'x' : 42)
    const broken = [
      [good], 'x', { ...good, smart: [] }, { ...good, secrets: [] }, { ...good, secrets: null }, { ...good, binding: {} },
      ...['sessionId', 'iss', 'binding', 'secrets', 'smart', 'createdAt'].flatMap((field) => [{ ...good, [field]: wrong(field) }, { ...good, [field]: undefined }]),
    ]
    for (const record of broken) {
      storage.map.set(key, record)
      await expect(client.callback(query)).rejects.toMatchObject({ code: 'NO_SESSION', message: 'The stored SMART launch is unreadable; launch again from the EHR' })
    }
    expect(ehr.stats.codeGrants).toBe(grants)
    storage.map.set(key, good)
    await expect(client.callback(query)).resolves.toHaveProperty('redirectUrl')
    // Secrets of the right shape whose verifier is not a string, or sealed ones without an encryption key: refused
    // before the token call too (the state is spent).
    for (const [secrets, why] of [
      [{ codeVerifier: 42, nonce: null }, 'its stored PKCE verifier is unreadable'],
      [{ sealed: 'x' }, 'its stored PKCE verifier is encrypted but no encryptionKey is set'],
    ] as const) {
      const other = await launched()
      storage.map.set(other.key, { ...other.good, secrets })
      const codeGrants = ehr.stats.codeGrants
      await expect(client.callback(other.query)).rejects.toMatchObject({ code: 'INVALID_STATE', message: `The launch cannot be completed: ${why}; launch again from the EHR` })
      expect(ehr.stats.codeGrants).toBe(codeGrants)
    }
  })

  it('S27 a stored session whose browser, proofs or ended launches are not of their type is NO_SESSION at the callback, never read as the session\'s', async () => {
    const storage = plainStorage()
    const session = nextSession()
    const selector = selectorOf(ehr.iss, 'patient-1')
    for (const fields of [
      { browser: 42 }, { proofs: 'x' }, { proofs: [{ hash: 42, at: 1 }] }, { ended: ['x'] }, { ended: { [selector]: { reason: 'closed' } } },
    ]) {
      await storage.set(`session:{${session}}`, { kind: 'session', version: 'v', launches: {}, ...fields }, 60)
      const client = new SmartClient(session, storage, config, devOptions)
      await expect(completeLaunch(ehr, context, client)).rejects.toMatchObject({ code: 'NO_SESSION', message: 'The stored SMART session is unreadable; launch again from the EHR' })
    }
  })

  it('a launch bound to a browser (launch option binding) completes only with that browser\'s launch secret, not with its session id alone', async () => {
    const storage = plainStorage()
    const session = nextSession()
    const binding = 'b'.repeat(43)
    const hashed = (secret: string) => createHash('sha256').update(secret).digest('base64url')
    const at = (browser?: { keys: string[]; bindings: Set<string> }) => new SmartClient({ sessionId: session, activePatient: null, browser }, storage, config, devOptions)
    const { redirectUrl } = await at().launch(ehrLaunch(ehr, context), { binding })
    const query = await authorize(ehr, redirectUrl)
    const grants = ehr.stats.codeGrants
    await expect(at().callback(query)).rejects.toMatchObject({ code: 'INVALID_STATE', message: expect.stringContaining('this browser sent no cookie of the launch') })
    await expect(at({ keys: [], bindings: new Set([hashed('c'.repeat(43))]) }).callback(query)).rejects.toMatchObject({
      code: 'INVALID_STATE', message: 'The launch cannot be completed: the launch was started by another browser; launch again from the EHR',
    })
    expect(ehr.stats.codeGrants).toBe(grants)
    // Refused for another browser, nothing was consumed: the launching browser still completes it.
    const result = await at({ keys: [], bindings: new Set([hashed(binding)]) }).callback(query)
    expect(result).toMatchObject({ patient: 'patient-1', browserKey: expect.stringMatching(/^[\w-]{43}$/) })
    expect(ehr.stats.codeGrants).toBe(grants + 1)
  })

  it('a relaunch of the same EHR and patient keeps the launch whose authorization started later, whichever callback completes first, and revokes the other\'s tokens', async () => {
    for (const order of ['later first', 'earlier first'] as const) {
      const clock = testClock()
      const client = new SmartClient(nextSession(), plainStorage(), config, { ...devOptions, now: clock.now })
      const earlier = await client.launch(ehrLaunch(ehr, context))
      clock.advance(1000)
      const later = await client.launch(ehrLaunch(ehr, context))
      const queries = await Promise.all([earlier, later].map(({ redirectUrl }) => authorize(ehr, redirectUrl)))
      const revocations = ehr.stats.revocations
      for (const query of order === 'later first' ? queries.reverse() : queries) {
        clock.advance(1000)
        expect(await client.callback(query)).toMatchObject({ activePatient: selectorOf(ehr.iss, 'patient-1') })
      }
      const { idTokenClaims } = await client.ready()
      expect({ order, nonce: idTokenClaims?.nonce }).toEqual({ order, nonce: new URL(later.redirectUrl).searchParams.get('nonce') })
      // The earlier launch's refresh and access tokens: no launch holds them any more.
      expect({ order, revocations: ehr.stats.revocations - revocations }).toEqual({ order, revocations: 2 })
    }
  })

  it('login(null) is login(): the one known EHR; moveSession refuses an id that is not a non-empty string', async () => {
    const single = openConfig({ allowAnyIssuer: undefined, knownFhirServers: [{ issuer: ehr.iss, type: 'public' }] } as never)
    const { redirectUrl } = await new SmartClient(nextSession(), plainStorage(), single, devOptions).login(null as never)
    expect(new URL(redirectUrl).searchParams.get('aud')).toBe(ehr.iss)
    const client = new SmartClient(nextSession(), plainStorage(), config, devOptions)
    for (const bad of ['', 42, null]) {
      await expect(client.moveSession(bad as never)).rejects.toThrow(new TypeError('express-smart-on-fhir: newSessionId must be a non-empty string'))
    }
  })

  it('request() refuses a non-string path with a TypeError; a FHIR server that cannot be reached is FHIR_REQUEST_FAILED with a sanitized cause', async () => {
    const gone = await createMockEhr()
    const client = new SmartClient(nextSession(), plainStorage(), config, devOptions)
    await completeLaunch(gone, context, client)
    const fhir = await client.ready()
    await expect(fhir.request(42 as never)).rejects.toThrow(new TypeError('request: pathOrUrl must be a string, got number'))
    await expect(fhir.request('http://[::1')).rejects.toMatchObject({ code: 'FORBIDDEN_URL', status: 400, message: 'The FHIR request URL is not a valid URL' })
    await gone.close()
    const err = await fhir.request('Patient/patient-1').catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 502 })
    expect((err as Error).message).toMatch(/^The FHIR server did not answer \/.*Patient\/patient-1: /)
    expect((err as Error).cause).toMatchObject({ name: 'HttpFailure', message: 'details withheld', cause: { name: 'TypeError' } })
  })

  it('S22 S27 an id moved twice within the grace reaches only what it held itself, never what a later id held', async () => {
    const { at, s0 } = multiLaunchBrowser()
    const s1 = `${s0}-moved-once`
    const s2 = `${s0}-moved-twice`
    await completeLaunch(ehr, { patient: 'patient-1' }, at(s0))
    // patient-2 launched from s0, its callback moves the session to s1; patient-3 from s1, moved to s2.
    const second = await at(s0).launch(ehrLaunch(ehr, { patient: 'patient-2' }))
    await at(s0).callback(await authorize(ehr, second.redirectUrl), { regenerate: async () => s1 })
    const third = await at(s1).launch(ehrLaunch(ehr, { patient: 'patient-3' }))
    await at(s1).callback(await authorize(ehr, third.redirectUrl), { regenerate: async () => s2 })

    await expect(at(s0, 'patient-1').ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    await expect(at(s0, 'patient-2').ready()).rejects.toMatchObject({ code: 'UNKNOWN_PATIENT' })
    await expect(at(s0, 'patient-3').ready()).rejects.toMatchObject({ code: 'UNKNOWN_PATIENT' })
    await expect(at(s1, 'patient-2').ready()).resolves.toMatchObject({ patient: { id: 'patient-2' } })
    await expect(at(s1, 'patient-3').ready()).rejects.toMatchObject({ code: 'UNKNOWN_PATIENT' })
    await expect(at(s2, 'patient-3').ready()).resolves.toMatchObject({ patient: { id: 'patient-3' } })
  })

  it('a token response whose patient is not a FHIR id: TOKEN_EXCHANGE_FAILED, saying why, and nothing kept', async () => {
    const storage = plainStorage()
    const client = new SmartClient(nextSession(), storage, config, devOptions)
    await expect(completeLaunch(ehr, { patient: 'a/b' }, client)).rejects.toMatchObject({
      code: 'TOKEN_EXCHANGE_FAILED', status: 502, message: 'The EHR launched a patient whose id is not a FHIR id (1-64 of A-Z a-z 0-9 - .); the launch was not kept',
    })
    await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
  })

  it('a token response without expires_in: the access token is used until the FHIR server refuses it, never refreshed ahead', async () => {
    const storage = plainStorage()
    const clock = testClock()
    const noExpiry = rewritingTokenResponses(({ expires_in: _dropped, ...body }) => body, 'every grant')
    const client = new SmartClient(nextSession(), storage, config, { ...devOptions, now: clock.now, fetch: noExpiry })
    await completeLaunch(ehr, context, client)
    const grants = ehr.stats.refreshGrants
    clock.advance(6 * 3600 * 1000)
    await expect(client.ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    expect(ehr.stats.refreshGrants).toBe(grants)
  })

  it('refresh() of a launch without a refresh token is SESSION_EXPIRED, saying it cannot be refreshed', async () => {
    const online = openConfig({ scope: 'openid fhirUser launch patient/*.rs' })
    const client = new SmartClient(nextSession(), plainStorage(), online, devOptions)
    await completeLaunch(ehr, context, client)
    await expect(client.refresh()).rejects.toMatchObject({
      code: 'SESSION_EXPIRED', status: 401, message: 'The SMART session has expired and cannot be refreshed; launch again',
    })
  })

  it('a refresh answer without scope keeps the launch\'s scope', async () => {
    const noScope = rewritingTokenResponses(({ scope: _dropped, ...body }) => body, 'refresh_token')
    const client = new SmartClient(nextSession(), plainStorage(), config, { ...devOptions, fetch: noScope })
    await completeLaunch(ehr, context, client)
    const { scope } = await client.ready()
    expect(scope).toContain('launch')
    await expect(client.refresh()).resolves.toMatchObject({ scope })
  })

  it('moveSession to the id the session already has changes nothing: not even a store access', async () => {
    const storage = plainStorage()
    const session = nextSession()
    await completeLaunch(ehr, context, new SmartClient(session, storage, config, devOptions))
    storage.calls.length = 0
    await new SmartClient(session, storage, config, devOptions).moveSession(session)
    expect(storage.calls).toEqual([])
    await expect(new SmartClient(session, storage, config, devOptions).ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
  })

  it('S22 logout from an id a callback moved away ends only the launches that id held', async () => {
    const { at, s0 } = multiLaunchBrowser()
    const s1 = `${s0}-moved`
    await completeLaunch(ehr, { patient: 'patient-1' }, at(s0))
    const second = await at(s0).launch(ehrLaunch(ehr, { patient: 'patient-2' }))
    await at(s0).callback(await authorize(ehr, second.redirectUrl), { regenerate: async () => s1 })
    await at(s0).logout()
    // patient-1 was closed (the page naming it is told so); patient-2, which s0 never held, lives on.
    const closed = { code: 'SESSION_EXPIRED', status: 401, message: expect.stringContaining('was closed') }
    await expect(at(s1, 'patient-1').ready()).rejects.toMatchObject(closed)
    await expect(at(s1, selectorOf(ehr.iss, 'patient-1')).ready()).rejects.toMatchObject(closed)
    await expect(at(s1, 'patient-2').ready()).resolves.toMatchObject({ patient: { id: 'patient-2' } })
  })

  it.each([
    ['has no revocation endpoint', smartConfigurationWithout('revocation_endpoint')],
    ['fails to revoke', ((input, init) => String(init?.body ?? '').includes('token_type_hint=') ? Promise.resolve(new Response('down', { status: 503 })) : fetch(input, init)) as typeof fetch],
  ])('logout when the EHR %s still ends the launch here', async (_what, fetchFn) => {
    const client = new SmartClient(nextSession(), plainStorage(), config, { ...devOptions, fetch: fetchFn })
    await completeLaunch(ehr, context, client)
    const revocations = ehr.stats.revocations
    await expect(client.logout()).resolves.toBeUndefined()
    expect(ehr.stats.revocations).toBe(revocations)
    await expect(client.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED', message: expect.stringContaining('was closed') })
  })

  it('logout while the EHR cannot be discovered still ends the launch here, without revoking', async () => {
    const flaky = await createMockEhr()
    try {
      const clock = testClock()
      const client = new SmartClient(nextSession(), plainStorage(), config, { ...devOptions, now: clock.now, discoveryCacheSeconds: 1, fetch: (input, init) => fetch(input, init) })
      await completeLaunch(flaky, context, client)
      clock.advance(2000)
      flaky.faults.discovery = '500'
      const revocations = flaky.stats.revocations
      await expect(client.logout()).resolves.toBeUndefined()
      expect(flaky.stats.revocations).toBe(revocations)
      await expect(client.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED', message: expect.stringContaining('was closed') })
    } finally {
      await flaky.close()
    }
  })

  it('S2 allowNonHttpsLaunch admits http, never another scheme', async () => {
    const storage = plainStorage()
    const lenient = new SmartClient(nextSession(), storage, config, { ...devOptions, allowNonHttpsLaunch: true })
    for (const iss of ['ftp://ehr.example/fhir', 'file:///etc/fhir', 'ws://ehr.example/fhir']) {
      await expect(lenient.launch({ iss, launch: 'x' })).rejects.toMatchObject({ code: 'INSECURE_ISSUER', status: 400 })
    }
    expect(storage.calls).toEqual([])
  })

  it('launch() with an iss that is not an absolute URL (any issuer allowed) is MISSING_PARAMETER, before the store is touched', async () => {
    const storage = plainStorage()
    await expect(new SmartClient(nextSession(), storage, config, devOptions).launch({ iss: 'ehr.example/fhir', launch: 'x' })).rejects.toMatchObject({
      code: 'MISSING_PARAMETER', status: 400, message: 'The "iss" parameter must be an absolute URL',
    })
    expect(storage.calls).toEqual([])
  })

  it('S22 multi-launch: two tabs launch one patient at once; the later callback joins the moved session and both ids reach the one launch', async () => {
    const { clock, at, s0 } = multiLaunchBrowser()
    const first = await at(s0).launch(ehrLaunch(ehr, { patient: 'patient-1' }))
    const second = await at(s0).launch(ehrLaunch(ehr, { patient: 'patient-1' }))
    clock.advance(1000)
    const nonceOf = (launch: { redirectUrl: string }) => new URL(launch.redirectUrl).searchParams.get('nonce')
    const a = await at(s0).callback(await authorize(ehr, first.redirectUrl), { regenerate: async () => `${s0}-a` })
    await expect(at(`${s0}-a`, 'patient-1').ready()).resolves.toMatchObject({ idTokenClaims: { nonce: nonceOf(first) } })
    clock.advance(1000)
    const revocations = ehr.stats.revocations
    // The second callback still carries s0, moved to s0-a a second ago (after its launch started): it joins
    // s0-a; of the two launches of (EHR, patient-1) the one started later is kept, the other's tokens revoked.
    const b = await at(s0).callback(await authorize(ehr, second.redirectUrl), { regenerate: async () => `${s0}-b` })
    expect(b.redirectUrl).toBe(a.redirectUrl)
    for (const sid of [`${s0}-a`, `${s0}-b`]) {
      await expect(at(sid, 'patient-1').ready()).resolves.toMatchObject({ patient: { id: 'patient-1' }, idTokenClaims: { nonce: nonceOf(second) } })
      await expect(at(sid, 'patient-2').ready()).rejects.toMatchObject({ code: 'UNKNOWN_PATIENT' })
    }
    expect(ehr.stats.revocations).toBeGreaterThan(revocations)
  })

  // The documented grace of a moved session id is 10 s; a launch started in the very millisecond of the move
  // cannot be told from one started before it, and is not joined (it could be a stale tab's).
  it.each([[1, 10_000, true], [1, 10_001, false], [0, 1, false]])('S22 a launch started %i ms before another callback moved its session, called back %i ms after the move: joins it (both launches reachable): %s', async (gap, after, joins) => {
    const { clock, at, s0 } = multiLaunchBrowser()
    const first = await at(s0).launch(ehrLaunch(ehr, { patient: 'patient-1' }))
    const second = await at(s0).launch(ehrLaunch(ehr, { patient: 'patient-2' }))
    clock.advance(gap)
    await at(s0).callback(await authorize(ehr, first.redirectUrl), { regenerate: async () => `${s0}-a` })
    clock.advance(after)
    await at(s0).callback(await authorize(ehr, second.redirectUrl), { regenerate: async () => `${s0}-b` })
    await expect(at(`${s0}-b`, 'patient-2').ready()).resolves.toMatchObject({ patient: { id: 'patient-2' } })
    const first1 = at(`${s0}-b`, 'patient-1').ready()
    if (joins) await expect(first1).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    else await expect(first1).rejects.toMatchObject({ code: 'UNKNOWN_PATIENT' })
  })

  it('S22 moveSession from an id a callback moved away less than the grace ago: the new id joins the moved session', async () => {
    const storage = plainStorage()
    const s0 = nextSession()
    const s1 = `${s0}-after-callback`
    const s2 = `${s0}-after-app-regeneration`
    const client = new SmartClient(s0, storage, config, devOptions)
    const { redirectUrl } = await client.launch(ehrLaunch(ehr, context))
    await client.callback(await authorize(ehr, redirectUrl), { regenerate: async () => s1 })
    // A request still carrying s0 (sent before the browser had the new cookie) makes the app regenerate again.
    await new SmartClient(s0, storage, config, devOptions).moveSession(s2)
    await expect(new SmartClient(s2, storage, config, devOptions).ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    await expect(new SmartClient(s1, storage, config, devOptions).ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
  })
})

describe('a refresh racing a relaunch (issue 19, found by the chaos test)', () => {
  it('a refresh whose launch a relaunch of the same EHR and patient replaced while it waited for the lock serves the relaunch, never NO_SESSION', async () => {
    const { MemoryStore } = await import('express-session')
    const options = { ...devOptions, enableMultiLaunch: true }
    const store = new MemoryStore()
    const plain = expressSessionStorage(store)
    // The refreshing "process" holds its lock request until the relaunch is stored (two storages: two processes).
    let release!: () => void
    let armed = false
    const held = new Promise<void>((resolve) => (release = resolve))
    const holding: SmartStorage = {
      get: (key) => plain.get(key), set: (key, value, ttl) => plain.set(key, value, ttl), delete: (key) => plain.delete(key),
      setIfAbsent: async (key, value, ttl) => {
        if (armed && key.startsWith('lock:')) {
          armed = false
          await held
        }
        return plain.setIfAbsent!(key, value, ttl)
      },
    }
    const session = { sessionId: 'relaunched', activePatient: null }
    await completeLaunch(ehr, { patient: 'patient-2', encounter: 'patient-2-encounter-1' }, new SmartClient(session, plain, openConfig(), options))
    armed = true
    const refreshing = new SmartClient(session, holding, openConfig(), options).refresh()
    const relaunch = await completeLaunch(ehr, { patient: 'patient-2', encounter: 'patient-2-encounter-2' }, new SmartClient(session, plain, openConfig(), options))
    release()
    const fhir = await refreshing
    expect(fhir.activePatient).toBe(relaunch.activePatient)
    expect(fhir.encounter?.id).toBe('patient-2-encounter-2')
  })
})
