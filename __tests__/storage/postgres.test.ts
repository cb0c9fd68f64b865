// PostgreSQL (connect-pg-simple) as a shared store, with every cross-process guarantee Redis gives (issue 22):
//  a. claims (setIfAbsent): rows of the session table, an expired one replaced by exactly one claimant, and
//     pruned with the sessions;
//  b. two real app processes (helpers/app-process.ts with DATABASE_URL): a herd of 100 requests gives one
//     refresh grant, a callback replayed at both is redeemed once, and a process killed mid-refresh leaves a
//     lock that stops blocking after its TTL;
//  c. a database that goes down (a cluster of this file's own, stopped and started again): failFastStore
//     answers 503 at once, and the sessions are served again when it returns.
import type { Store } from 'express-session'
import connectPgSimple from 'connect-pg-simple'
import session from 'express-session'
import type { Pool } from 'pg'
import request from 'supertest'
import { expressSessionStorage, failFastStore, type SmartStorage } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { launchedCookie, pathOf, testApp, withCookies } from '../helpers/app'
import { findPostgresBinDir, startPostgres, startServer, stopPostgres, stopServer, type RunningPostgres } from '../helpers/postgres-server'
import { useAppProcesses, type AppEnv, type AppInstance } from '../helpers/processes'
import { pgPool, postgresKind, type OpenedStore } from '../helpers/stores'

jest.setTimeout(90_000)

const inCi = process.env.CI === 'true'
const postgresExpected = Boolean(process.env.DATABASE_URL) || inCi
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const HTTP_TIMEOUT_MS = 2000
// What lib/session/session-state.ts derives from httpTimeoutMs: the lock's TTL, and how long a waiter waits.
const LOCK_TTL_MS = (3 * Math.ceil(HTTP_TIMEOUT_MS / 1000) + 5) * 1000
const LOCK_WAIT_MS = 2 * HTTP_TIMEOUT_MS + 2000
/** Generous, for two shared cores: the survivor must be serving again by LOCK_TTL_MS + this after the crash. */
const MARGIN_MS = 6000

/** The rows of `table` (sid → seconds to live by the database's clock). */
async function rows(pool: Pool, table: string): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ sid: string; ttl: number }>(`SELECT sid, extract(epoch FROM expire - localtimestamp)::float AS ttl FROM "${table}"`)
  return new Map(rows.map(({ sid, ttl }) => [sid, ttl]))
}

if (postgresExpected) describe('claims over PostgreSQL', () => {
  let opened: OpenedStore
  let storage: SmartStorage
  let pool: Pool
  beforeAll(async () => {
    opened = await postgresKind.open()
    storage = expressSessionStorage(opened.store, { requireAtomicStore: true })
    pool = pgPool(process.env.DATABASE_URL!)
  })
  afterAll(async () => {
    await opened.close()
    await pool.end()
  })

  it('a claim is a row of the session table that expires after its TTL, by the database clock', async () => {
    await expect(storage.setIfAbsent!('lock:{row}', 'owner', 30)).resolves.toBe(true)
    const ttl = (await rows(pool, opened.table!)).get('smart:lock:{row}')
    expect(ttl).toBeGreaterThan(28)
    expect(ttl).toBeLessThanOrEqual(30)
    await expect(storage.get('lock:{row}')).resolves.toBe('owner')
  })

  it('an expired claim is replaced by exactly one of many claimants in two processes', async () => {
    const other = expressSessionStorage(await opened.newStore())
    await expect(storage.setIfAbsent!('lock:{expired}', 'dead holder', 1)).resolves.toBe(true)
    await sleep(1200)
    const attempts = Array.from({ length: 20 }, (_, i) => (i % 2 ? other : storage).setIfAbsent!('lock:{expired}', `owner-${i}`, 30))
    const won = (await Promise.all(attempts)).flatMap((ok, i) => (ok ? [`owner-${i}`] : []))
    expect(won).toHaveLength(1)
    await expect(other.get('lock:{expired}')).resolves.toBe(won[0])
  })

  it('expired claims and values are pruned with the sessions (connect-pg-simple pruneSessions)', async () => {
    await storage.setIfAbsent!('lock:{pruned}', 'owner', 1)
    await storage.set('value:pruned', 'v', 1)
    await storage.setIfAbsent!('lock:{kept}', 'owner', 60)
    expect([...(await rows(pool, opened.table!)).keys()]).toEqual(expect.arrayContaining(['smart:lock:{pruned}', 'smart:value:pruned']))
    // connect-pg-simple compares whole seconds, rounded up.
    await sleep(2100)
    await new Promise<void>((resolve, reject) => (opened.store as InstanceType<ReturnType<typeof connectPgSimple>>).pruneSessions((err) => (err ? reject(err) : resolve())))
    const left = await rows(pool, opened.table!)
    expect(left.has('smart:lock:{pruned}') || left.has('smart:value:pruned')).toBe(false)
    expect(left.has('smart:lock:{kept}')).toBe(true)
  })
})

if (postgresExpected) describe('two app processes on one PostgreSQL', () => {
  const apps = useAppProcesses()
  let ehr: MockEhr
  let opened: OpenedStore
  let pool: Pool
  let env: AppEnv
  let a: AppInstance
  let b: AppInstance

  beforeAll(async () => {
    ehr = await createMockEhr()
    opened = await postgresKind.open()
    pool = pgPool(process.env.DATABASE_URL!)
    env = { DATABASE_URL: process.env.DATABASE_URL!, PG_TABLE: opened.table!, ISS: ehr.iss, HTTP_TIMEOUT_MS, ENABLE_MULTI_LAUNCH: true }
    ;[a, b] = await apps.start(2, env, { names: ['A', 'B'] })
  })
  afterAll(async () => {
    await apps.stopAll()
    await pool.end()
    await opened.close()
    await ehr.close()
  })
  afterEach(() => {
    ehr.faults = {}
  })

  const readPatient = (app: AppInstance, cookie: string, patient: string) =>
    request(app.url).get('/api/patient').set('Cookie', cookie).set('X-Active-Patient', patient)

  /** The session's refresh lock row: the session id is the signed cookie's `s:<sid>.<signature>`. */
  function lockSid(cookie: string): string {
    const pair = cookie.split('; ').find((p) => p.startsWith('connect.sid='))!
    return `smart:lock:{${decodeURIComponent(pair.split('=')[1]).slice(2).split('.')[0]}}`
  }

  async function lockHeld(cookie: string): Promise<boolean> {
    const { rowCount } = await pool.query(`SELECT 1 FROM "${opened.table}" WHERE sid = $1 AND expire > localtimestamp`, [lockSid(cookie)])
    return rowCount === 1
  }

  // Rounds, because a race is a matter of chance: with per-process locks (the claim switched off) both
  // processes refreshed in one herd of two or three, and both redeemed the callback in one replay of two to five.
  it.each([1, 2, 3])('round %i: a herd of 100 requests of one session over both, its access token revoked: one refresh grant, 100 answers 200', () => apps.explain(async () => {
    const cookie = await launchedCookie(a.url, ehr, { patient: 'patient-1' })
    for (const app of [a, b]) expect((await readPatient(app, cookie, 'patient-1').expect(200)).body.id).toBe('patient-1')
    ehr.expireAccessTokens()
    const grants = ehr.stats.refreshGrants
    const before = await Promise.all([a.report(), b.report()])

    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => readPatient(i % 2 ? b : a, cookie, 'patient-1')))
    expect(answers.map((res) => res.status)).toEqual(Array(100).fill(200))
    expect(answers.every((res) => res.body.id === 'patient-1')).toBe(true)
    expect(ehr.stats.refreshGrants - grants).toBe(1)
    const after = await Promise.all([a.report(), b.report()])
    expect(after.reduce((sum, r, i) => sum + r.refreshGrants.sent - before[i].refreshGrants.sent, 0)).toBe(1)
    expect(await lockHeld(cookie)).toBe(false)
  }))

  it.each([1, 2, 3, 4, 5])('round %i: a callback replayed at both at once is redeemed once: the other is refused as INVALID_STATE', (round) => apps.explain(async () => {
    const query = new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-2' })).search
    const started = await request(round % 2 ? a.url : b.url).get(`/launch${query}`).expect(302)
    const cookie = withCookies(undefined, started)
    const callback = pathOf(await ehr.authorize(started.headers.location))
    const codeGrants = ehr.stats.codeGrants
    const answers = await Promise.all([a, b].map((app) => request(app.url).get(callback).set('Cookie', cookie)))
    expect(answers.map((res) => res.status).sort()).toEqual([302, 400])
    expect(answers.find((res) => res.status === 400)!.body.code).toBe('INVALID_STATE')
    expect(ehr.stats.codeGrants - codeGrants).toBe(1)
  }))

  it('a process killed mid-refresh: its lock stops blocking after its TTL, and the survivor refreshes once', () => apps.explain(async () => {
    const [doomed] = await apps.start(1, env, { names: ['doomed'] })
    const cookie = await launchedCookie(doomed.url, ehr, { patient: 'patient-3' })
    expect((await readPatient(doomed, cookie, 'patient-3').expect(200)).body.id).toBe('patient-3')
    ehr.expireAccessTokens()
    ehr.faults.token = 'hang'
    const inFlight = readPatient(doomed, cookie, 'patient-3').then((res) => res.status, (err: Error) => err)
    const deadline = Date.now() + 10_000
    while (!(await lockHeld(cookie))) {
      if (Date.now() > deadline) throw new Error('the doomed process never took the refresh lock')
      await sleep(5)
    }
    await doomed.kill('SIGKILL')
    const crashedAt = Date.now()
    expect(await inFlight).toMatchObject({ message: expect.stringMatching(/socket hang up|ECONNRESET/) })
    expect(await lockHeld(cookie)).toBe(true)
    delete ehr.faults.token
    const grants = ehr.stats.refreshGrants

    const answers: Array<{ status: number; code?: string; at: number }> = []
    for (;;) {
      const res = await readPatient(b, cookie, 'patient-3')
      answers.push({ status: res.status, code: res.body.code, at: Date.now() - crashedAt })
      if (res.status !== 503 || Date.now() - crashedAt > LOCK_TTL_MS + MARGIN_MS) break
    }
    expect(answers.at(-1)).toMatchObject({ status: 200 })
    expect(answers.at(-1)!.at).toBeLessThan(LOCK_TTL_MS + MARGIN_MS)
    // Until then the waiters give up after LOCK_WAIT_MS each: only 503s, never a 500 or a second refresh.
    for (const waited of answers.slice(0, -1)) expect(waited).toMatchObject({ status: 503, code: 'STORAGE_UNAVAILABLE' })
    expect(answers.length).toBeLessThanOrEqual(Math.ceil(LOCK_TTL_MS / LOCK_WAIT_MS) + 1)
    expect(ehr.stats.refreshGrants - grants).toBe(1)
    expect((await readPatient(a, cookie, 'patient-3').expect(200)).body.id).toBe('patient-3')
  }))
})

const binDir = findPostgresBinDir()
if (binDir || inCi) describe('a PostgreSQL that goes down and comes back', () => {
  let pg: RunningPostgres
  let ehr: MockEhr
  let pool: Pool
  let store: Store & { close(): void }
  const table = 'outage_sessions'

  beforeAll(async () => {
    if (!binDir) throw new Error('CI=true: initdb and pg_ctl are needed (apt-get install -y postgresql)')
    pg = await startPostgres(binDir)
    ehr = await createMockEhr()
    pool = pgPool(pg.url)
    store = new (connectPgSimple(session))({ pool, tableName: table, createTableIfMissing: true })
  })
  afterAll(async () => {
    // Its prune timer first: it would fire, long after, on an ended pool.
    await store?.close()
    await pool?.end()
    await ehr?.close()
    if (pg) await stopPostgres(pg)
  })

  it('failFastStore answers 503 STORAGE_UNAVAILABLE at once while it is down, and the session is served again when it is back', async () => {
    // Bounds far above what a refused connection takes, even on a loaded machine: "at once" is told from
    // "at the bound" by the time and by the message (a timeout says "did not answer").
    const app = testApp({ store: failFastStore(store, { timeoutMs: 20_000 }), jsonErrors: true })
    const storage = expressSessionStorage(store, { timeoutMs: 20_000 })
    const cookie = await launchedCookie(app, ehr, { patient: 'patient-1' })
    await request(app).get('/api/context').set('Cookie', cookie).expect(200)

    await stopServer(pg)
    for (const call of [
      () => request(app).get('/api/context').set('Cookie', cookie),
      () => request(app).get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-2' })).search}`),
    ]) {
      const started = Date.now()
      const res = await call()
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 503, code: 'STORAGE_UNAVAILABLE' })
      expect(res.body.message).not.toMatch(/did not answer/)
      expect(Date.now() - started).toBeLessThan(10_000)
    }
    await expect(storage.setIfAbsent!('lock:{down}', 'owner', 30)).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', message: 'The session store failed an atomic write' })

    await startServer(pg)
    const res = await request(app).get('/api/context').set('Cookie', cookie)
    expect(res.status).toBe(200)
    expect(res.body.patient.id).toBe('patient-1')
    await expect(storage.setIfAbsent!('lock:{down}', 'owner', 30)).resolves.toBe(true)
  })
})
