// Issue 11: an app process dies mid-refresh. Real app processes (helpers/app-process.ts) on one Redis, the
// mock EHR in this process; the dead process's refresh lock (lock:{<sid>}) lives on until its TTL.
//  a. SIGKILL while the EHR has not answered the refresh: another instance serves the session again once the
//     lock expires, with one refresh grant.
//  b. SIGKILL after the EHR rotated the refresh token (its answer never arrived): the new refresh token died
//     with the process and the stored one is spent, so the launch ends — one refused grant, then 401s
//     that cost the EHR nothing.
//  c. issue 8's concurrent callbacks and in-flight requests (concurrent-tabs.test.ts, 3 and 4) across two
//     real processes.
import { randomBytes } from 'node:crypto'
import { createClient, type RedisClientType } from 'redis'
import request from 'supertest'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { launchedCookie, pathOf, withCookies } from '../helpers/app'
import { useAppProcesses, type AppEnv, type AppInstance } from '../helpers/processes'

jest.setTimeout(90_000)

const HTTP_TIMEOUT_MS = 2000
// What lib/session/session-state.ts derives from httpTimeoutMs: the lock's TTL, and how long a waiter waits.
const LOCK_TTL_MS = (3 * Math.ceil(HTTP_TIMEOUT_MS / 1000) + 5) * 1000
const LOCK_WAIT_MS = 2 * HTTP_TIMEOUT_MS + 2000
/** Generous, for two shared cores: the survivor must be serving again by LOCK_TTL_MS + this after the crash. */
const MARGIN_MS = 6000

const apps = useAppProcesses()
let ehr: MockEhr
let redis: RedisClientType
let env: AppEnv
/** The instance that stays up: instance A of each test is started for it (and killed by it). */
let survivor: AppInstance

beforeAll(async () => {
  const url = process.env.REDIS_URL
  if (!url) throw new Error('REDIS_URL is not set: the crash tests need a redis-server (see __tests__/helpers/global-setup.ts)')
  ehr = await createMockEhr()
  redis = createClient({ url, socket: { reconnectStrategy: false } })
  redis.on('error', () => {})
  await redis.connect()
  env = { REDIS_URL: url, KEY_PREFIX: `test:crash:${randomBytes(6).toString('hex')}:`, ISS: ehr.iss, HTTP_TIMEOUT_MS, ENABLE_MULTI_LAUNCH: true }
  ;[survivor] = await apps.start(1, env, { names: ['B'] })
})

afterAll(async () => {
  for await (const keys of redis.scanIterator({ MATCH: `${env.KEY_PREFIX}*`, COUNT: 500 })) if (keys.length) await redis.del(keys)
  await redis.close()
  await ehr.close()
})

afterEach(() => {
  ehr.faults = {}
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await sleep(5)
  }
}

/** The Redis key of the session's refresh lock: the session id is the signed cookie's `s:<sid>.<signature>`. */
function lockKey(cookie: string): string {
  const session = cookie.split('; ').find((pair) => pair.startsWith('connect.sid='))!
  const sid = decodeURIComponent(session.split('=')[1]).slice(2).split('.')[0]
  return `${env.KEY_PREFIX}smart:lock:{${sid}}`
}

/** A FHIR read through the app (so an expired access token is refreshed on the EHR's 401). */
const readPatient = (app: AppInstance, cookie: string, patient: string) =>
  request(app.url).get('/api/patient').set('Cookie', cookie).set('X-Active-Patient', patient)

/** Sends a request to `app` that must never be answered: `app` is killed while it waits for the EHR. */
function unanswered(app: AppInstance, cookie: string, patient: string): Promise<unknown> {
  return readPatient(app, cookie, patient).then((res) => ({ answered: res.status, body: res.body }), (err: Error) => err)
}

/** Asks the survivor until it answers something else than 503 (the dead holder's lock), at most `untilMs` after `since`. */
async function askUntilNot503(cookie: string, patient: string, since: number, untilMs: number) {
  const answers: Array<{ status: number; code?: string; patient?: string; at: number }> = []
  for (;;) {
    const res = await readPatient(survivor, cookie, patient)
    answers.push({ status: res.status, code: res.body.code, patient: res.headers['x-smart-patient'], at: Date.now() - since })
    if (res.status !== 503 || Date.now() - since > untilMs) return { last: res, answers }
  }
}

describe('a process killed mid-refresh', () => {
  it('a. before the EHR answered: the survivor serves the session again once the lock expires, with one refresh grant', () => apps.explain(async () => {
    const [a] = await apps.start(1, env, { names: ['A'] })
    const cookie = await launchedCookie(a.url, ehr, { patient: 'patient-2' })
    expect((await readPatient(a, cookie, 'patient-2').expect(200)).body.id).toBe('patient-2')
    ehr.expireAccessTokens()
    ehr.faults.token = 'hang'
    const inFlight = unanswered(a, cookie, 'patient-2')
    await waitFor('A holds the session\'s refresh lock', async () => (await redis.exists(lockKey(cookie))) === 1, 10_000)
    await a.kill('SIGKILL')
    const crashedAt = Date.now()
    // A died holding the lock, before its own token request timed out: the browser got no answer at all.
    expect(await inFlight).toMatchObject({ message: expect.stringMatching(/socket hang up|ECONNRESET/) })
    expect(await redis.exists(lockKey(cookie))).toBe(1)
    delete ehr.faults.token
    const grants = ehr.stats.refreshGrants
    const sent = (await survivor.report()).refreshGrants.sent

    const { last, answers } = await askUntilNot503(cookie, 'patient-2', crashedAt, LOCK_TTL_MS + MARGIN_MS)
    const servedAfter = answers.at(-1)!.at
    expect(last.status).toBe(200)
    expect(last.body).toMatchObject({ resourceType: 'Patient', id: 'patient-2' })
    expect(servedAfter).toBeLessThan(LOCK_TTL_MS + MARGIN_MS)
    // Until then only 503s (the waiter gives up after LOCK_WAIT_MS): never a 500, never another patient.
    for (const waited of answers.slice(0, -1)) expect(waited).toMatchObject({ status: 503, code: 'STORAGE_UNAVAILABLE' })
    expect(answers.length).toBeLessThanOrEqual(Math.ceil(LOCK_TTL_MS / LOCK_WAIT_MS) + 1)
    for (const answer of answers) expect(answer.patient).toBe('patient-2')
    expect((await readPatient(survivor, cookie, 'patient-2').expect(200)).body.id).toBe('patient-2')
    expect(ehr.stats.refreshGrants - grants).toBe(1)
    expect((await survivor.report()).refreshGrants.sent - sent).toBe(1)
  }))

  it('b. after the EHR rotated the refresh token: the launch ends with 401 after one refused grant, and stays ended without asking the EHR', () => apps.explain(async () => {
    const [a] = await apps.start(1, env, { names: ['A'] })
    const cookie = await launchedCookie(a.url, ehr, { patient: 'patient-3' })
    expect((await readPatient(a, cookie, 'patient-3').expect(200)).body.id).toBe('patient-3')
    ehr.expireAccessTokens()
    const granted = ehr.stats.refreshGrants
    ehr.faults.token = 'drop'
    const inFlight = unanswered(a, cookie, 'patient-3')
    await waitFor('the EHR granted A\'s refresh', () => ehr.stats.refreshGrants === granted + 1, 10_000)
    expect(await redis.exists(lockKey(cookie))).toBe(1)
    await a.kill('SIGKILL')
    const crashedAt = Date.now()
    expect(await inFlight).toMatchObject({ message: expect.stringMatching(/socket hang up|ECONNRESET/) })
    delete ehr.faults.token
    const before = await survivor.report()

    const { last, answers } = await askUntilNot503(cookie, 'patient-3', crashedAt, LOCK_TTL_MS + MARGIN_MS)
    expect(last.status).toBe(401)
    expect(last.body.code).toBe('SESSION_EXPIRED')
    expect(answers.at(-1)!.at).toBeLessThan(LOCK_TTL_MS + MARGIN_MS)
    for (const waited of answers.slice(0, -1)) expect(waited).toMatchObject({ status: 503, code: 'STORAGE_UNAVAILABLE' })
    for (const answer of answers) expect(answer.patient).toBe('patient-3')
    const refused = await survivor.report()
    expect(refused.refreshGrants.sent - before.refreshGrants.sent).toBe(1)
    expect(refused.refreshGrants.refused - before.refreshGrants.refused).toBe(1)
    expect(ehr.stats.refreshGrants).toBe(granted + 1)

    // The launch is gone: later requests are refused by every instance, saying why, without a FHIR request or a grant.
    const [fresh] = await apps.start(1, env, { names: ['C'] })
    const fhirRequests = ehr.stats.fhirRequests
    for (const app of [survivor, fresh, survivor]) {
      const res = await readPatient(app, cookie, 'patient-3')
      expect(res.status).toBe(401)
      expect(res.body).toMatchObject({ code: 'SESSION_EXPIRED', message: expect.stringContaining('refused to refresh') })
    }
    expect(ehr.stats.fhirRequests).toBe(fhirRequests)
    expect((await survivor.report()).refreshGrants).toEqual(refused.refreshGrants)
    expect((await fresh.report()).refreshGrants.sent).toBe(0)
  }))
})

/** Starts a launch in a tab of the browser holding `cookie` (none: a new browser); the callback it will bring back. */
async function startLaunch(app: AppInstance, cookie: string | undefined, patient: string): Promise<{ cookie: string; callback: string }> {
  const query = new URL(ehr.launchUrl('http://app.test/launch', { patient })).search
  const req = request(app.url).get(`/launch${query}`)
  const res = await (cookie ? req.set('Cookie', cookie) : req).expect(302)
  return { cookie: withCookies(cookie, res), callback: pathOf(await ehr.authorize(res.headers.location)) }
}

/** The patient a request with `selector` is served for (checked against the answer's headers), or the status. */
async function patientServed(app: AppInstance, cookie: string, selector: string): Promise<string | number> {
  const res = await request(app.url).get('/api/context').set('Cookie', cookie).set('X-Active-Patient', selector)
  if (res.status !== 200) return res.status
  expect(res.headers['x-active-patient']).toBe(selector)
  expect(res.headers['x-smart-patient']).toBe(res.body.patient.id)
  return res.body.patient.id
}

describe('c. concurrent tabs across two processes (concurrent-tabs.test.ts 3 and 4)', () => {
  let a: AppInstance
  beforeAll(async () => ([a] = await apps.start(1, env, { names: ['A'] })))

  it.each([1, 2, 3])('round %i: two callbacks of one browser on A and B at once both keep their launch, whichever Set-Cookie the browser keeps', (_round) => apps.explain(async () => {
    const tabA = await startLaunch(a, undefined, 'patient-1')
    const tabB = await startLaunch(a, tabA.cookie, 'patient-2')
    const [backA, backB] = await Promise.all([
      request(a.url).get(tabA.callback).set('Cookie', tabB.cookie),
      request(survivor.url).get(tabB.callback).set('Cookie', tabB.cookie),
    ])
    expect([backA.status, backB.status]).toEqual([302, 302])
    for (const kept of [withCookies(withCookies(tabB.cookie, backB), backA), withCookies(withCookies(tabB.cookie, backA), backB)]) {
      for (const app of [a, survivor]) {
        expect(await patientServed(app, kept, 'patient-1')).toBe('patient-1')
        expect(await patientServed(app, kept, 'patient-2')).toBe('patient-2')
      }
    }
  }))

  it('a burst with the pre-callback cookie over A and B, while B runs another tab\'s callback, is answered 200 for its own patient', () => apps.explain(async () => {
    const tabA = await startLaunch(a, undefined, 'patient-1')
    const cookie = withCookies(tabA.cookie, await request(a.url).get(tabA.callback).set('Cookie', tabA.cookie).expect(302))
    const tabB = await startLaunch(a, cookie, 'patient-2')
    const burst = Array.from({ length: 10 }, (_, i) => patientServed(i % 2 ? survivor : a, tabB.cookie, 'patient-1'))
    const [callback, ...answers] = await Promise.all([request(survivor.url).get(tabB.callback).set('Cookie', tabB.cookie), ...burst])
    expect(callback.status).toBe(302)
    expect(answers).toEqual(Array(10).fill('patient-1'))
    // The callback's answer lost: the old id with the browser's cookie reaches both launches, on both processes;
    // without the browser's cookie (a planted copy of the id) nothing.
    expect(await patientServed(a, tabB.cookie, 'patient-1')).toBe('patient-1')
    expect(await patientServed(survivor, tabB.cookie, 'patient-2')).toBe('patient-2')
    const planted = tabB.cookie.split('; ').filter((pair) => !pair.startsWith('smart-browser=')).join('; ')
    expect(await patientServed(survivor, planted, 'patient-1')).toBe(401)
    const fresh = withCookies(tabB.cookie, callback)
    expect(await patientServed(survivor, fresh, 'patient-1')).toBe('patient-1')
    expect(await patientServed(a, fresh, 'patient-2')).toBe('patient-2')
  }))
})
