// Issue 11: every in-process structure has a bound or cleans up. Each is driven past its bound with many
// distinct issuers, sessions and patients, and measured. (Internal counters: memory is not public API.)
import { createHash } from 'node:crypto'
import { MemoryStore } from 'express-session'
import request from 'supertest'
import { SmartClient, expressSessionStorage, type SmartClientOptions } from '../../lib'
import { runtimeFor } from '../../lib/client/runtime'
import { MAX_CACHED_SESSIONS, MAX_COPY_AGE_MS, sessionCacheFor } from '../../lib/session/session-cache'
import { MAX_LAUNCHES_PER_SESSION } from '../../lib/session/launch-identity'
import { MAX_CACHED_ISSUERS, discoveryCacheSizes } from '../../lib/oauth/discovery'
import { MAX_KEY_SETS, keySetCount, verifyIdToken } from '../../lib/oauth/id-token'
import { lockMapSizes, singleFlight, withStorageLock } from '../../lib/storage/lock'
import { MAX_PENDING_PER_SESSION } from '../../lib/middleware/session'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { launchedCookie, pathOf, testApp, withCookies } from '../helpers/app'
import { completeLaunch, devOptions, openConfig, testClock } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

/** Any https host is an EHR: its discovery document points at itself. */
const anyEhr: typeof fetch = async (input) => {
  const url = new URL(String(input))
  if (!url.pathname.endsWith('/.well-known/smart-configuration')) return new Response('not here', { status: 404 })
  return Response.json({ authorization_endpoint: `${url.origin}/authorize`, token_endpoint: `${url.origin}/token`, code_challenge_methods_supported: ['S256'] })
}

it('discovery keeps at most MAX_CACHED_ISSUERS documents, evicting the oldest, and no look-up stays in flight', async () => {
  const fetched: string[] = []
  const counting: typeof fetch = (input, init) => (fetched.push(String(input)), anyEhr(input, init))
  const storage = expressSessionStorage(new MemoryStore())
  const issuers = Array.from({ length: MAX_CACHED_ISSUERS + 200 }, (_, i) => `https://ehr-${i}.example/fhir`)
  for (const [i, iss] of issuers.entries()) {
    await new SmartClient(`s-${i}`, storage, openConfig(), { fetch: counting }).launch({ iss, launch: 'x' })
  }
  expect(discoveryCacheSizes(counting)).toEqual({ documents: MAX_CACHED_ISSUERS, pending: 0 })
  fetched.length = 0
  await new SmartClient('again', storage, openConfig(), { fetch: counting }).launch({ iss: issuers[0], launch: 'x' })
  await new SmartClient('again', storage, openConfig(), { fetch: counting }).launch({ iss: issuers.at(-1)!, launch: 'x' })
  expect(fetched).toEqual([`${issuers[0]}/.well-known/smart-configuration`])
})

it('JWKS key sets: at most MAX_KEY_SETS per fetch implementation', async () => {
  const http = { fetch: anyEhr, timeoutMs: 1000 }
  expect(keySetCount(anyEhr)).toBe(0)
  for (let i = 0; i < MAX_KEY_SETS + 100; i++) {
    await verifyIdToken('not-a-jwt', { issuer: `https://ehr-${i}.example`, jwksUri: `https://ehr-${i}.example/jwks`, clientId: 'c', nonce: null, now: Date.now, http }).catch(() => undefined)
  }
  expect(keySetCount(anyEhr)).toBe(MAX_KEY_SETS)
})

it('session copies: at most MAX_CACHED_SESSIONS per configuration and store, after more sessions than that within the copies\' lifetime', async () => {
  const storage = expressSessionStorage(new MemoryStore())
  const config = openConfig()
  // The clock stands still: every copy is young enough to answer, so only the count bounds them.
  const clock = testClock()
  const options: SmartClientOptions = { ...devOptions, now: clock.now }
  await completeLaunch(ehr, { patient: 'patient-1' }, new SmartClient('template', storage, config, options))
  const record = await storage.get('session:{template}')
  for (let i = 0; i < MAX_CACHED_SESSIONS + 500; i++) await storage.set(`session:{s-${i}}`, record)
  for (let i = 0; i < MAX_CACHED_SESSIONS + 500; i++) await new SmartClient(`s-${i}`, storage, config, options).ready()
  const cache = sessionCacheFor(runtimeFor(config, options), storage)
  expect(cache.size).toBe(MAX_CACHED_SESSIONS)
  // Issue 24: copies past MAX_COPY_AGE_MS can never answer again; the next copy added drops them all.
  clock.advance(MAX_COPY_AGE_MS + 1)
  await new SmartClient('s-0', storage, config, options).ready()
  expect(cache.size).toBe(1)
}, 60_000)

it('locks and single flights leave nothing behind once settled, after thousands of distinct keys', async () => {
  // 6,000 calls queued at once: on a loaded machine the default 3 s bound on a store call is too short for the last of them.
  const storage = expressSessionStorage(new MemoryStore(), { timeoutMs: 50_000 })
  const scope = {}
  await Promise.all(Array.from({ length: 3000 }, (_, i) => [
    withStorageLock(storage, `lock:{k-${i % 1000}}`, { ttlSeconds: 5, waitMs: 20_000 }, async () => i),
    singleFlight(scope, `k-${i}`, async () => i),
  ]).flat())
  expect(lockMapSizes(storage)).toEqual({ mutexes: 0, flights: 0 })
  expect(lockMapSizes(scope)).toEqual({ mutexes: 0, flights: 0 })
}, 60_000)

/** The session id of a browser's cookies (a Cookie header): what `connect.sid` holds, unsigned. */
const sessionIdOf = (cookie: string) => decodeURIComponent(/(?:^|; )connect\.sid=([^;]*)/.exec(cookie)![1]).slice(2).split('.')[0]

it(`a browser session holds at most ${MAX_LAUNCHES_PER_SESSION} launches; the least recently used is evicted and refused as ended to make room`, async () => {
  const store = new MemoryStore()
  const storage = expressSessionStorage(store)
  const app = testApp({ store, storage, jsonErrors: true, options: { enableMultiLaunch: true } })
  let cookie: string | undefined
  for (let i = 1; i <= MAX_LAUNCHES_PER_SESSION + 5; i++) cookie = await launchedCookie(app, ehr, { patient: `p-${i}` }, cookie)
  const ask = (patient: string) => request(app).get('/api/context').set('Cookie', cookie!).set('X-Active-Patient', patient)
  // Its bare id and its selector (any issuer allowed: `<patient id>_<EHR tag>`) are both told it ended; no other patient is served.
  const evicted = await ask('p-1')
  expect(evicted.status).toBe(401)
  expect(evicted.body).toEqual({ code: 'SESSION_EXPIRED', message: expect.stringContaining(`was closed to make room for newer launches (at most ${MAX_LAUNCHES_PER_SESSION}`) })
  const selector = `p-1_${createHash('sha256').update(ehr.iss).digest('base64url').slice(0, 12)}`
  expect(await ask(selector)).toMatchObject({ status: 401, body: { code: 'SESSION_EXPIRED' } })
  const newest = await ask(`p-${MAX_LAUNCHES_PER_SESSION + 5}`)
  expect(newest.status).toBe(200)
  expect(newest.body.patient.id).toBe(`p-${MAX_LAUNCHES_PER_SESSION + 5}`)
  const stored = (await storage.get(`session:{${sessionIdOf(cookie!)}}`)) as { launches: Record<string, unknown> }
  expect(Object.keys(stored.launches)).toHaveLength(MAX_LAUNCHES_PER_SESSION)
}, 60_000)

it(`a browser session keeps at most ${MAX_PENDING_PER_SESSION} launches in progress: the oldest is forgotten (its callback is INVALID_STATE, its cookie cleared); until a callback completes, the session cookie lives as long as a pending launch`, async () => {
  const store = new MemoryStore()
  const app = testApp({ store, jsonErrors: true })
  let cookie: string | undefined
  const started: Array<{ location: string; res: request.Response }> = []
  for (let i = 1; i <= MAX_PENDING_PER_SESSION + 1; i++) {
    const launch = new URL(ehr.launchUrl('http://app.test/launch', { patient: `p-${i}` })).search
    const before = Date.now()
    const res = await (cookie ? request(app).get(`/launch${launch}`).set('Cookie', cookie) : request(app).get(`/launch${launch}`))
    const after = Date.now()
    expect(res.status).toBe(302)
    // Not launched yet: the session (and its cookie) lives only as long as a pending launch, 10 minutes
    // from the response (Expires has whole seconds, hence the second below `before`).
    if (i === 1) {
      const expires = new Date(/connect\.sid=[^;]+; Path=\/; Expires=([^;]+);/.exec(String(res.headers['set-cookie']))![1]).getTime()
      expect(expires).toBeGreaterThanOrEqual(before - 1000 + 600_000)
      expect(expires).toBeLessThanOrEqual(after + 600_000)
    }
    cookie = withCookies(cookie, res)
    started.push({ location: res.headers.location as string, res })
  }
  expect(sessionIdOf(cookie!)).toBe(sessionIdOf(withCookies(undefined, started[0].res)))
  // The eleventh launch cleared the first one's cookie; the browser keeps the ten others.
  expect(cookie!.split('; ').filter((pair) => pair.startsWith('smart-launch-'))).toHaveLength(MAX_PENDING_PER_SESSION)
  const grants = ehr.stats.codeGrants
  const oldest = await ehr.authorize(started[0].location)
  const refused = await request(app).get(pathOf(oldest)).set('Cookie', `${cookie}; ${withCookies(undefined, started[0].res).split('; ').find((pair) => pair.startsWith('smart-launch-'))}`)
  expect(refused.status).toBe(400)
  expect(refused.body).toMatchObject({ code: 'INVALID_STATE', message: expect.stringContaining('unknown, expired or already used') })
  expect(ehr.stats.codeGrants).toBe(grants)
  const newest = await ehr.authorize(started.at(-1)!.location)
  const completed = await request(app).get(pathOf(newest)).set('Cookie', cookie!)
  expect(completed.status).toBe(302)
  expect(ehr.stats.codeGrants).toBe(grants + 1)
}, 60_000)
