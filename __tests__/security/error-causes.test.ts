import express, { type ErrorRequestHandler } from 'express'
import session, { MemoryStore, type SessionData } from 'express-session'
import request from 'supertest'
import { SmartClient, expressSessionStorage, smartCallback, smartLaunch, type SmartClientOptions } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { secretRecordingFetch } from '../helpers/app'
import { issuerKey, launchWithOwnIdToken, signRs256, type TestIssuerKey } from '../helpers/id-token'
import { expectNoSecretIn } from '../helpers/leaks'
import { authorize, completeLaunch, devOptions, ehrLaunch, openConfig } from '../helpers/smart'

// S25: tokens never reach logs. A SmartError's cause chain is what a logger prints; third-party errors
// (openid-client, jose, store drivers, fetch libraries) carry response bodies, claims and requests.

let ehr: MockEhr
let key: TestIssuerKey
beforeAll(async () => {
  ehr = await createMockEhr()
  key = await issuerKey()
})
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
const context = { patient: 'patient-1' }
let n = 0
const nextSession = () => `cause-${++n}`

type Rewrite = (body: Record<string, unknown>, secrets: Set<string>) => Response

/** Records every secret crossing the token endpoint, then lets a test answer a grant differently. */
function answering(grant: 'authorization_code' | 'refresh_token', rewrite: Rewrite) {
  const recorder = secretRecordingFetch()
  const fetchFn: typeof fetch = async (input, init) => {
    const response = await recorder.fetch(input, init)
    if (!String(init?.body ?? '').includes(`grant_type=${grant}`) || response.status !== 200) return response
    return rewrite((await response.json()) as Record<string, unknown>, recorder.secrets)
  }
  return { secrets: recorder.secrets, fetch: fetchFn }
}

async function callbackOutcome(options: SmartClientOptions) {
  const client = new SmartClient(nextSession(), storage, openConfig(), { ...devOptions, ...options })
  const { redirectUrl } = await client.launch(ehrLaunch(ehr, context))
  const outcome = await client.callback(await authorize(ehr, redirectUrl)).catch((err: unknown) => err)
  return { client, outcome }
}

describe('S25 a token endpoint answer that fails validation leaves no token in the error', () => {
  it.each<[string, Rewrite]>([
    ['token_type mac', (body) => Response.json({ ...body, token_type: 'mac' })],
    ['expires_in an object', (body) => Response.json({ ...body, expires_in: { seconds: 3600 } })],
    ['400 invalid_grant with extra fields', (body, secrets) => Response.json({ ...body, error: 'invalid_grant', error_description: `code ${[...secrets][0]} was used` }, { status: 400 })],
    ['malformed JSON', (body) => new Response(`{"access_token":"${String(body.access_token)}","refresh_token":"${String(body.refresh_token)}", oops}`, { headers: { 'content-type': 'application/json' } })],
  ])('S25 %s: TOKEN_EXCHANGE_FAILED, nothing stored, and no token, code or verifier in inspect or pino output', async (_name, rewrite) => {
    const { secrets, fetch: fetchFn } = answering('authorization_code', rewrite)
    const { client, outcome } = await callbackOutcome({ fetch: fetchFn })
    expect(outcome).toMatchObject({ code: 'TOKEN_EXCHANGE_FAILED' })
    expect(secrets.size).toBeGreaterThanOrEqual(4)
    expectNoSecretIn(outcome, secrets)
    await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
  })

  it('S16 token_type DPoP (which openid-client accepts) is refused by our bearer check: TOKEN_EXCHANGE_FAILED, nothing stored', async () => {
    const { secrets, fetch: fetchFn } = answering('authorization_code', (body) => Response.json({ ...body, token_type: 'DPoP' }))
    const { client, outcome } = await callbackOutcome({ fetch: fetchFn })
    expect(outcome).toMatchObject({ code: 'TOKEN_EXCHANGE_FAILED' })
    expectNoSecretIn(outcome, secrets)
    await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
  })
})

describe('S25 a refused id_token leaves no token or claim in the error', () => {
  const marker = 'Practitioner/marker-7f3c9a'
  it.each<[string, (claims: Record<string, unknown>) => Record<string, unknown>, (token: string) => string]>([
    ['bad signature', (c) => c, (token) => `${token.slice(0, -6)}AAAAAA`],
    ['wrong nonce', (c) => ({ ...c, nonce: 'another-launch-nonce' }), (token) => token],
    ['wrong aud', (c) => ({ ...c, aud: 'other-app' }), (token) => token],
  ])('S25 %s: INVALID_ID_TOKEN without the id_token or its claims in inspect or pino output', async (_name, claims, spoil) => {
    const issued: string[] = []
    const { outcome } = await launchWithOwnIdToken(ehr, storage, nextSession(), {
      idToken: async (c) => spoil((issued[issued.length] = await signRs256(key, c))),
      jwks: { keys: [key.publicJwk] },
      claims: (c) => ({ ...claims(c), fhirUser: marker }),
    })
    expect(outcome).toMatchObject({ code: 'INVALID_ID_TOKEN' })
    expectNoSecretIn(outcome, [...issued, ...issued.map((t) => t.split('.')[1]), marker, 'marker-7f3c9a'])
  })
})

it('S25 a refused refresh (400 with the tokens echoed) is SESSION_EXPIRED without any token in the error', async () => {
  const { secrets, fetch: fetchFn } = answering('refresh_token', (body) => Response.json({ ...body, error: 'invalid_grant' }, { status: 400 }))
  const client = new SmartClient(nextSession(), storage, openConfig(), { ...devOptions, fetch: fetchFn })
  await completeLaunch(ehr, context, client)
  const err = await client.refresh().catch((e: unknown) => e)
  expect(err).toMatchObject({ code: 'SESSION_EXPIRED', status: 401, message: 'The EHR refused to refresh the session (invalid_grant); launch again' })
  expectNoSecretIn(err, secrets)
})

it('S25 a FHIR transport error that carries the request (as some HTTP libraries do) leaves no token in the error', async () => {
  const recorder = secretRecordingFetch()
  const fetchFn: typeof fetch = async (input, init) => {
    if (!String(input).startsWith(`${ehr.iss}/Patient`)) return recorder.fetch(input, init)
    throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', config: { url: String(input), headers: init?.headers } })
  }
  const client = new SmartClient(nextSession(), storage, openConfig(), { ...devOptions, fetch: fetchFn })
  await completeLaunch(ehr, context, client)
  const err = await (await client.ready()).request('Patient/patient-1').catch((e: unknown) => e)
  expect(err).toMatchObject({ code: 'FHIR_REQUEST_FAILED', status: 502 })
  expectNoSecretIn(err, recorder.secrets)
})

/** An express-session store whose writes of `failing` keys fail like a Redis replica: the error names the command and its arguments. */
function failingStore(failing: (sid: string, data: SessionData) => boolean) {
  const store = new MemoryStore()
  const failedIds: string[] = []
  const set = store.set.bind(store)
  store.set = (sid, data, cb) => {
    if (!failing(sid, data)) return set(sid, data, cb)
    failedIds.push(sid)
    cb?.(Object.assign(new Error('READONLY You can\'t write against a read only replica.'), { command: { name: 'SET', args: [sid, JSON.stringify(data)] } }))
  }
  return { store, failedIds }
}

it('S25 a store driver error while saving the tokens is STORAGE_UNAVAILABLE without the tokens in the error', async () => {
  const { store } = failingStore((sid) => sid.startsWith('smart:session:'))
  const recorder = secretRecordingFetch()
  const client = new SmartClient(nextSession(), expressSessionStorage(store), openConfig(), { ...devOptions, fetch: recorder.fetch })
  const err = await completeLaunch(ehr, context, client).catch((e: unknown) => e)
  expect(err).toMatchObject({ code: 'STORAGE_UNAVAILABLE', status: 503 })
  expectNoSecretIn(err, recorder.secrets)
})

it('S25 a store driver error while saving the regenerated session is STORAGE_UNAVAILABLE without the session id in the error', async () => {
  const { store, failedIds } = failingStore((sid, data) => !sid.startsWith('smart:') && (data as { smartOnFhir?: unknown }).smartOnFhir !== undefined && failing.on)
  const failing = { on: false }
  const errors: unknown[] = []
  const smart = { config: openConfig(), options: { ...devOptions, fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init) } }
  const app = express()
  app.use(session({ store, secret: 'test-secret', resave: false, saveUninitialized: false }))
  app.get('/launch', smartLaunch(smart))
  app.get('/callback', smartCallback(smart))
  app.use(((err, _req, res, _next) => (errors.push(err), res.status(err.status ?? 500).end())) as ErrorRequestHandler)
  const agent = request.agent(app)
  const launch = await agent.get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', context)).search}`).expect(302)
  const back = await ehr.authorize(launch.headers.location)
  failing.on = true
  await agent.get(`${back.pathname}${back.search}`).expect(503)
  expect(errors[0]).toMatchObject({ code: 'STORAGE_UNAVAILABLE' })
  expect(failedIds.length).toBeGreaterThan(0)
  expectNoSecretIn(errors[0], failedIds)
})
