import express from 'express'
import { MemoryStore, type Store } from 'express-session'
import request from 'supertest'
import { SmartError, expressSessionStorage, failFastStore, smartCallback, smartLaunch, type SmartStorage } from '../../lib'
import { createMockEhr, launchAs, type MockEhr } from '../../lib/testing'
import { testApp, withCookies } from '../helpers/app'
import { openConfig, rewritingTokenResponses, testClock } from '../helpers/smart'
import { storeKinds } from '../helpers/stores'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const launchQuery = (patient = 'patient-1') => new URL(ehr.launchUrl('http://app.test/launch', { patient })).search

/** Starts a launch with the agent and lets the EHR answer: the callback query the browser would bring back. */
async function authorized(agent: request.Agent, patient = 'patient-1'): Promise<URL> {
  const launch = await agent.get(`/launch${launchQuery(patient)}`).expect(302)
  return ehr.authorize(launch.headers.location)
}

const rewriteIdToken = rewritingTokenResponses((body) => ({ ...body, id_token: `${String(body.id_token).slice(0, -4)}AAAA` }))

/** The app's own error handler after the SMART routes: what the app (and its logs) see of an error. */
function capturingErrors(app: express.Express): { seen: () => SmartError | undefined } {
  let seen: SmartError | undefined
  app.use((err: SmartError, _req: express.Request, res: express.Response, _next: express.NextFunction) => void ((seen = err), res.status(err.status ?? 500).end()))
  return { seen: () => seen }
}

describe.each(storeKinds())('every status of API.md over HTTP, over %s', (_name, kind) => {
  let store: Store
  let close: () => Promise<void>
  beforeAll(async () => ({ store, close } = await kind.open()))
  afterAll(() => close())

  /** The status, the code and — for a refusal (4xx) — the message the page gets; a 5xx says only "try again". */
  const expectError = (res: request.Response, status: number, code: string, message = 'The EHR did not answer as expected; try again') => {
    expect({ status: res.status, code: res.body.code, message: res.body.message }).toEqual({ status, code, message })
  }

  it('400 MISSING_PARAMETER: launch without launch, callback without state', async () => {
    const app = testApp({ store, jsonErrors: true })
    expectError(await request(app).get(`/launch?iss=${encodeURIComponent(ehr.iss)}`), 400, 'MISSING_PARAMETER', 'The "launch" parameter is required')
    expectError(await request(app).get('/launch?launch=abc'), 400, 'MISSING_PARAMETER', 'The "iss" parameter is required')
    expectError(await request(app).get('/callback?code=abc'), 400, 'MISSING_PARAMETER', 'The "state" parameter is required')
  })

  it('403 UNKNOWN_ISSUER', async () => {
    const app = testApp({ store, jsonErrors: true, config: { allowAnyIssuer: undefined, knownFhirServers: [{ issuer: 'https://trusted.example/fhir', type: 'public' }] } as never })
    expectError(await request(app).get(`/launch${launchQuery()}`), 403, 'UNKNOWN_ISSUER', 'This EHR (iss) is not one the app is configured to trust')
  })

  it('400 INSECURE_ISSUER', async () => {
    const app = testApp({ store, jsonErrors: true, options: { allowNonHttpsLaunch: false } })
    expectError(await request(app).get(`/launch${launchQuery()}`), 400, 'INSECURE_ISSUER', 'The EHR (iss) must use https; allowNonHttpsLaunch permits http for local development')
  })

  it('502 DISCOVERY_FAILED', async () => {
    const app = testApp({ store, jsonErrors: true })
    ehr.faults.discovery = '500'
    try {
      expectError(await request(app).get(`/launch${launchQuery()}`), 502, 'DISCOVERY_FAILED')
    } finally {
      delete ehr.faults.discovery
    }
  })

  it('502 TOKEN_EXCHANGE_FAILED', async () => {
    const agent = request.agent(testApp({ store, jsonErrors: true }))
    const back = await authorized(agent)
    ehr.faults.token = '500'
    try {
      expectError(await agent.get(`${back.pathname}${back.search}`), 502, 'TOKEN_EXCHANGE_FAILED')
    } finally {
      delete ehr.faults.token
    }
    expectError(await agent.get('/api/context'), 401, 'NO_SESSION', 'No SMART launch has completed in this session; launch the app from the EHR')
  })

  it('400 INVALID_STATE', async () => {
    const agent = request.agent(testApp({ store, jsonErrors: true }))
    const back = await authorized(agent)
    back.searchParams.set('state', 'forged')
    expectError(await agent.get(`${back.pathname}${back.search}`), 400, 'INVALID_STATE', 'The launch cannot be completed: the state is unknown, expired or already used; launch again from the EHR')
  })

  it('403 AUTHORIZATION_DENIED', async () => {
    const agent = request.agent(testApp({ store, jsonErrors: true }))
    ehr.faults.authorize = 'deny'
    try {
      const back = await authorized(agent)
      expectError(await agent.get(`${back.pathname}${back.search}`), 403, 'AUTHORIZATION_DENIED', 'The EHR did not authorize the app (access_denied)')
    } finally {
      delete ehr.faults.authorize
    }
  })

  it('401 INVALID_ID_TOKEN', async () => {
    const agent = request.agent(testApp({ store, jsonErrors: true, options: { fetch: rewriteIdToken } }))
    const back = await authorized(agent)
    expectError(await agent.get(`${back.pathname}${back.search}`), 401, 'INVALID_ID_TOKEN', 'The id_token was rejected: jws signature verification failed')
  })

  it('401 NO_SESSION', async () => {
    expectError(await request(testApp({ store, jsonErrors: true })).get('/api/context'), 401, 'NO_SESSION', 'No SMART launch has completed in this session; launch the app from the EHR')
  })

  it('401 SESSION_EXPIRED', async () => {
    const clock = testClock()
    const agent = request.agent(testApp({ store, jsonErrors: true, config: { scope: 'openid fhirUser launch patient/*.rs' }, options: { now: clock.now } }))
    await launchAs(agent, ehr, { patient: 'patient-1' })
    clock.advance(2 * 3600 * 1000)
    expectError(await agent.get('/api/context'), 401, 'SESSION_EXPIRED', 'The SMART session has expired; launch the app again from the EHR')
  })

  it('403 UNKNOWN_PATIENT and 400 ACTIVE_PATIENT_REQUIRED', async () => {
    const agent = request.agent(testApp({ store, jsonErrors: true, options: { enableMultiLaunch: true } }))
    await launchAs(agent, ehr, { patient: 'patient-1' })
    await launchAs(agent, ehr, { patient: 'patient-2' })
    expectError(await agent.get('/api/context').set('X-Active-Patient', 'patient-3'), 403, 'UNKNOWN_PATIENT', 'The active patient was not launched in this session')
    expectError(await agent.get('/api/context').set('X-Active-Patient', '../patient-1'), 403, 'UNKNOWN_PATIENT', 'The X-Active-Patient header does not name a patient launched in this session')
    expectError(await agent.get('/api/context'), 400, 'ACTIVE_PATIENT_REQUIRED', 'Several patients are launched in this session; name the active one (X-Active-Patient)')
  })

  it('400 ISSUER_MISMATCH', async () => {
    const agent = request.agent(testApp({ store, jsonErrors: true }))
    const back = await authorized(agent)
    back.searchParams.set('iss', 'https://attacker.example')
    expectError(await agent.get(`${back.pathname}${back.search}`), 400, 'ISSUER_MISMATCH', 'The authorization response comes from another issuer than the one this launch used (RFC 9207)')
  })

  it('FHIR_REQUEST_FAILED with the FHIR status, 502 when unreachable, and 400 FORBIDDEN_URL', async () => {
    const agent = request.agent(testApp({ store, jsonErrors: true, options: { httpTimeoutMs: 300 } }))
    await launchAs(agent, ehr, { patient: 'patient-1' })
    expectError(await agent.get('/api/fhir?path=Patient/does-not-exist'), 404, 'FHIR_REQUEST_FAILED', 'The FHIR server answered 404 to GET /fhir/Patient/does-not-exist')
    expectError(await agent.get('/api/fhir?path=Patient/patient-2'), 403, 'FHIR_REQUEST_FAILED', 'The FHIR server answered 403 to GET /fhir/Patient/patient-2')
    expectError(await agent.get(`/api/fhir?path=${encodeURIComponent('https://elsewhere.example/fhir/Patient')}`), 400, 'FORBIDDEN_URL', 'Refusing to send the access token to https://elsewhere.example: not the FHIR server\'s origin')
    ehr.faults.fhir = 'hang'
    try {
      expectError(await agent.get('/api/fhir?path=Patient/patient-1'), 502, 'FHIR_REQUEST_FAILED')
    } finally {
      delete ehr.faults.fhir
    }
  })

  it('without an error handler Express answers the status', async () => {
    const res = await request(testApp({ store })).get('/api/context')
    expect(res.status).toBe(401)
  })
})

describe('503 STORAGE_UNAVAILABLE', () => {
  function brokenStore(mode: 'hang' | 'error', onlyKeysStartingWith = ''): Store {
    const store = new MemoryStore()
    const get = store.get.bind(store)
    store.get = (sid, cb) => {
      if (!sid.startsWith(onlyKeysStartingWith)) return get(sid, cb)
      if (mode === 'error') cb(new Error('ECONNREFUSED'))
    }
    return store
  }

  it.each(['hang', 'error'] as const)("express-session's own look-up of an existing session (%s), through failFastStore", async (mode) => {
    const inner = new MemoryStore()
    const agent = request.agent(testApp({ store: failFastStore(inner, { timeoutMs: 300 }), jsonErrors: true }))
    await launchAs(agent, ehr, { patient: 'patient-1' })
    await agent.get('/api/context').expect(200)
    // Break only the reads of session ids (not SMART keys): the failure is express-session's own look-up.
    const get = inner.get.bind(inner)
    inner.get = (sid, cb) => {
      if (sid.startsWith('smart:')) return get(sid, cb)
      if (mode === 'error') cb(new Error('ECONNREFUSED'))
    }
    const res = await agent.get('/api/context')
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 503, code: 'STORAGE_UNAVAILABLE' })
  })

  it('regression: a store that express-session reports disconnected (it then sets nothing on the request) is 503, not MISCONFIGURED', async () => {
    const store = new MemoryStore()
    const agent = request.agent(testApp({ store, jsonErrors: true }))
    await launchAs(agent, ehr, { patient: 'patient-1' })
    store.emit('disconnect')
    for (const path of ['/api/context', `/launch${launchQuery()}`, `/callback?code=c&state=${'s'.repeat(43)}`]) {
      const res = await agent.get(path)
      expect({ path, status: res.status, code: res.body.code, message: res.body.message }).toEqual({
        path, status: 503, code: 'STORAGE_UNAVAILABLE', message: 'The session store is unavailable; try again',
      })
    }
    store.emit('connect')
    await agent.get('/api/context').expect(200)
    // What the app's own error handler sees.
    const app = testApp({ store })
    const { seen } = capturingErrors(app)
    const other = request.agent(app)
    await launchAs(other, ehr, { patient: 'patient-1' })
    store.emit('disconnect')
    await other.get('/api/context').expect(503)
    store.emit('connect')
    expect(seen()).toMatchObject({ code: 'STORAGE_UNAVAILABLE', message: 'The session store is disconnected' })
  })

  it('the SMART state look-up', async () => {
    const app = testApp({ store: failFastStore(brokenStore('error', 'smart:')), jsonErrors: true })
    const res = await request(app).get('/api/context')
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 503, code: 'STORAGE_UNAVAILABLE' })
  })

  it('a callback whose session cannot be saved: the error the app sees says so (the 503 body stays generic)', async () => {
    const store = new MemoryStore()
    const app = testApp({ store })
    const { seen } = capturingErrors(app)
    const agent = request.agent(app)
    const back = await authorized(agent)
    const set = store.set.bind(store)
    // Only express-session's own records (not SMART keys) fail to be written.
    store.set = (sid, data, cb) => (sid.startsWith('smart:') ? set(sid, data, cb) : cb?.(new Error('READONLY')))
    await agent.get(`${back.pathname}${back.search}`).expect(503)
    expect(seen()).toMatchObject({ code: 'STORAGE_UNAVAILABLE', message: 'The session store failed to save the session', cause: { message: 'details withheld' } })
  })

  it('a save failure failFastStore already reported keeps its message (it says which call hung)', async () => {
    const inner = new MemoryStore()
    const app = testApp({ store: failFastStore(inner, { timeoutMs: 200 }) })
    const { seen } = capturingErrors(app)
    const agent = request.agent(app)
    const back = await authorized(agent)
    const set = inner.set.bind(inner)
    // express-session's own records hang from now on; SMART keys are written.
    inner.set = (sid, data, cb) => (sid.startsWith('smart:') ? set(sid, data, cb) : undefined)
    await agent.get(`${back.pathname}${back.search}`).expect(503)
    expect(seen()).toMatchObject({ code: 'STORAGE_UNAVAILABLE', message: 'The session store did not answer a session write within 200 ms' })
  })

  it('S22 the session id a callback left lives on for 10 minutes only; failing to shorten it does not fail the callback', async () => {
    const store = new MemoryStore()
    const agent = request.agent(testApp({ store, jsonErrors: true }))
    const sidOf = (res: request.Response) => /connect\.sid=s%3A([^.;]+)\./.exec(String(res.headers['set-cookie']))![1]
    const stored = (sid: string) => new Promise<{ expiresIn: number; originalMaxAge: unknown }>((resolve) => store.get(sid, (_err, data) =>
      resolve({ expiresIn: Date.parse(String(data?.cookie.expires)) - Date.now(), originalMaxAge: data?.cookie.originalMaxAge })))
    const TEN_MINUTES = 600_000
    const launch = await agent.get(`/launch${launchQuery()}`).expect(302)
    const first = sidOf(launch)
    // A session that has not completed a callback lives as long as a pending launch.
    expect((await stored(first)).expiresIn).toBeGreaterThan(TEN_MINUTES - 10_000)
    expect((await stored(first)).expiresIn).toBeLessThanOrEqual(TEN_MINUTES)
    const back = await ehr.authorize(launch.headers.location)
    const called = await agent.get(`${back.pathname}${back.search}`).expect(302)
    const launched = sidOf(called)
    expect(launched).not.toBe(first)
    expect(await stored(first)).toEqual({ expiresIn: expect.any(Number), originalMaxAge: TEN_MINUTES })
    expect((await stored(first)).expiresIn).toBeLessThanOrEqual(TEN_MINUTES)
    // A launched session has the app's cookie: a browser-session cookie, which the store keeps without expiry…
    expect((await stored(launched)).expiresIn).toBeNaN()
    const again = await agent.get(`/launch${launchQuery('patient-2')}`).expect(302)
    expect((await stored(launched)).expiresIn).toBeNaN()
    const backAgain = await ehr.authorize(again.headers.location)
    const selector = new URL((await agent.get(`${backAgain.pathname}${backAgain.search}`).expect(302)).headers.location, 'http://app.test').searchParams.get('patient')!
    // …until a callback retires it: 10 minutes (expiry and original max age, which express-session's touch restores).
    const retired = await stored(launched)
    expect(retired.expiresIn).toBeGreaterThan(TEN_MINUTES - 10_000)
    expect(retired.expiresIn).toBeLessThanOrEqual(TEN_MINUTES)
    expect(retired.originalMaxAge).toBe(TEN_MINUTES)
    expect((await agent.get('/api/context').set('X-Active-Patient', selector)).body.patient).toMatchObject({ id: 'patient-2' })

    // Another launch, whose old id cannot be written again: the callback completes all the same.
    const third = await agent.get(`/launch${launchQuery('patient-3')}`).expect(302)
    // Every session id the store holds now (the one to be retired among them) can no longer be written.
    const set = store.set.bind(store)
    const existing = await new Promise<string[]>((resolve) => store.all!((_err, all) => resolve(Object.keys(all ?? {}))))
    store.set = (sid, data, cb) => (existing.includes(sid) && !sid.startsWith('smart:') ? cb?.(new Error('READONLY')) : set(sid, data, cb))
    const back3 = await ehr.authorize(third.headers.location)
    const res = await agent.get(`${back3.pathname}${back3.search}`)
    store.set = set
    expect(res.status).toBe(302)
    const page = new URL(res.headers.location, 'http://app.test').searchParams.get('patient')!
    expect((await agent.get('/api/context').set('X-Active-Patient', page)).body.patient).toMatchObject({ id: 'patient-3' })
    // Single-launch mode: the replaced launch's page gets no answer for patient-3, nor does a request naming none.
    expect((await agent.get('/api/context').set('X-Active-Patient', selector)).status).toBe(403)
    expect((await agent.get('/api/context')).body.code).toBe('ACTIVE_PATIENT_REQUIRED')
  })

  it('S22 a callback that fails after regenerating the session id leaves the browser its session: no new cookie, earlier launches kept', async () => {
    const store = new MemoryStore()
    const inner = expressSessionStorage(store)
    let failSessionWrites = false
    // A SMART storage whose session records cannot be written once armed: the callback fails after regenerate().
    const storage: SmartStorage = {
      ...inner,
      set: (key, value, ttl) => (failSessionWrites && key.startsWith('session:') ? Promise.reject(new SmartError('STORAGE_UNAVAILABLE', 'down')) : inner.set(key, value, ttl)),
    }
    // saveUninitialized: true, so a session left in place of the browser's would be saved and sent as a new cookie.
    const agent = request.agent(testApp({ store, storage, jsonErrors: true, saveUninitialized: true, options: { enableMultiLaunch: true } }))
    await launchAs(agent, ehr, { patient: 'patient-1' })
    const back = await authorized(agent, 'patient-2')
    failSessionWrites = true
    const res = await agent.get(`${back.pathname}${back.search}`)
    failSessionWrites = false
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 503, code: 'STORAGE_UNAVAILABLE' })
    // No new session cookie (the spent launch's own cookie is cleared).
    expect(([] as string[]).concat(res.headers['set-cookie'] ?? []).filter((cookie) => !/^smart-launch-[^=]+=;.*Max-Age=0/.test(cookie))).toEqual([])
    const context = await agent.get('/api/context').set('X-Active-Patient', 'patient-1').expect(200)
    expect(context.body.patient).toMatchObject({ id: 'patient-1' })
    await agent.get('/api/context').set('X-Active-Patient', 'patient-2').expect(403)
  })

  it('a launch whose pending state cannot be written', async () => {
    const store = new MemoryStore()
    store.set = (_sid, _data, cb) => cb?.(new Error('READONLY'))
    const res = await request(testApp({ store, jsonErrors: true })).get(`/launch${launchQuery()}`)
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 503, code: 'STORAGE_UNAVAILABLE' })
  })
})

describe('misconfiguration', () => {
  it('without express-session the first request fails with a SmartError saying to mount it', async () => {
    const res = await request(testApp({ store: new MemoryStore(), withoutSession: true, jsonErrors: true })).get('/api/context')
    expect(res.status).toBe(500)
    expect(res.body.code).toBe('MISCONFIGURED')
  })

  it('the message names express-session', async () => {
    const app = express()
    let message = ''
    app.use(testApp({ store: new MemoryStore(), withoutSession: true }))
    app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      message = err.message
      res.status(500).end()
    })
    await request(app).get('/api/context').expect(500)
    expect(message).toMatch(/express-session/)
  })

  it('a session middleware whose store has no generate() (not express-session) cannot complete a callback: MISCONFIGURED, saying so', async () => {
    const app = express()
    const store = new MemoryStore()
    // A stand-in that looks like express-session to the request but is not: its store was never wrapped.
    app.use((req, _res, next) => {
      Object.assign(req, { sessionID: 'fixed-id', session: { save: (cb: () => void) => cb() }, sessionStore: store })
      next()
    })
    const smart = { config: openConfig({ callbackUrl: 'http://app.test/callback' }), options: { allowNonHttpsLaunch: true } }
    app.get('/launch', smartLaunch(smart))
    app.get('/callback', smartCallback(smart))
    const { seen } = capturingErrors(app)
    const launch = await request(app).get(`/launch${launchQuery()}`).expect(302)
    const back = await ehr.authorize(launch.headers.location)
    // The browser's launch cookie comes back with it: the state and browser are verified before the session id is regenerated.
    await request(app).get(`${back.pathname}${back.search}`).set('Cookie', withCookies(undefined, launch)).expect(500)
    expect(seen()).toMatchObject({ code: 'MISCONFIGURED', message: 'smartCallback() needs express-session (its store has no generate())' })
  })

  it('invalid options throw a TypeError naming the field at factory time', () => {
    expect(() => smartLaunch({ config: { clientId: 'a' } as never })).toThrow(/config\.scope/)
    expect(() => smartLaunch({ config: { clientId: 'a' } as never, storag: {} } as never)).toThrow(
      new TypeError('express-smart-on-fhir: smartLaunch(opts).storag is not a known setting (config, options, storage)'),
    )
    for (const opts of [undefined, null, 'config']) {
      expect(() => smartCallback(opts as never)).toThrow(new TypeError('express-smart-on-fhir: smartCallback(opts) needs { config, options?, storage? }'))
    }
    const config = openConfig()
    const storage = expressSessionStorage(new MemoryStore())
    const { get, set, delete: del } = storage
    for (const broken of [null, {}, { set, delete: del }, { get, delete: del }, { get, set }]) {
      expect(() => smartLaunch({ config, storage: broken as never })).toThrow(
        new TypeError('express-smart-on-fhir: smartLaunch(opts).storage must implement SmartStorage (get, set, delete)'),
      )
    }
    expect(() => smartLaunch({ config, storage })).not.toThrow()
    expect(() => smartLaunch({ config, storage: undefined })).not.toThrow()
  })
})
