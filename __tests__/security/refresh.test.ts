import { MemoryStore } from 'express-session'
import { SmartClient, expressSessionStorage, type SmartClientOptions, type SmartStorage } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { completeLaunch, devOptions, openConfig, testClock } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr({ accessTokenTtlSeconds: 600 })))
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
const context = { patient: 'patient-1', encounter: 'patient-1-encounter-1' }
let n = 0
const nextSession = () => `refresh-${++n}`

/** Records the token requests and answers, and lets a test rewrite the answer to one grant type. */
function tokenTraffic(rewrite?: { grant: 'authorization_code' | 'refresh_token'; body: (body: Record<string, unknown>) => Record<string, unknown> }) {
  const requests: URLSearchParams[] = []
  const answers: Array<Record<string, unknown>> = []
  const fetchFn: typeof fetch = async (input, init) => {
    const response = await fetch(input, init)
    const form = new URLSearchParams(String(init?.body ?? ''))
    if (!form.has('grant_type') || response.status !== 200) return response
    requests.push(form)
    let body = (await response.json()) as Record<string, unknown>
    if (rewrite?.grant === form.get('grant_type')) body = rewrite.body(body)
    answers.push(body)
    return Response.json(body)
  }
  return { requests, answers, fetch: fetchFn }
}

const newClient = (sessionId: string, options: SmartClientOptions, scope?: string) =>
  new SmartClient(sessionId, storage, openConfig(scope ? { scope } : {}), { ...devOptions, ...options })

describe('refresh', () => {
  it('S32 with an EHR that does not rotate refresh tokens, the old refresh token is kept and a second refresh works with it', async () => {
    const fixed = await createMockEhr({ rotateRefreshTokens: false })
    try {
      const traffic = tokenTraffic()
      const session = nextSession()
      await completeLaunch(fixed, context, newClient(session, { fetch: traffic.fetch }))
      const issued = traffic.answers[0].refresh_token
      expect(issued).toEqual(expect.any(String))
      await expect(newClient(session, { fetch: traffic.fetch }).refresh()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
      expect(traffic.answers[1]).not.toHaveProperty('refresh_token')
      const second = await newClient(session, { fetch: traffic.fetch }).refresh()
      expect(second).toMatchObject({ patient: { id: 'patient-1' }, encounter: { id: 'patient-1-encounter-1' } })
      expect(traffic.requests.slice(1).map((form) => form.get('refresh_token'))).toEqual([issued, issued])
      expect(fixed.stats.refreshGrants).toBe(2)
      await expect(second.request('Patient/patient-1')).resolves.toMatchObject({ id: 'patient-1' })
    } finally {
      await fixed.close()
    }
  })

  it('a refresh the EHR fails to answer (5xx, timeout) keeps the launch: the error is 502, and a later refresh works', async () => {
    const flaky = await createMockEhr({ accessTokenTtlSeconds: 600 })
    try {
      const session = nextSession()
      const options = { fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init), httpTimeoutMs: 400 }
      await completeLaunch(flaky, context, newClient(session, options))
      for (const fault of ['500', 'hang'] as const) {
        flaky.faults.token = fault
        await expect(newClient(session, options).refresh()).rejects.toMatchObject({ code: 'TOKEN_EXCHANGE_FAILED', status: 502 })
        delete flaky.faults.token
        await expect(newClient(session, options).ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
      }
      await expect(newClient(session, options).refresh()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    } finally {
      await flaky.close()
    }
  })

  it('S17 a scope changed by a refresh is stored and exposed', async () => {
    const traffic = tokenTraffic({ grant: 'refresh_token', body: (body) => ({ ...body, scope: 'openid launch patient/Patient.rs' }) })
    const session = nextSession()
    await completeLaunch(ehr, context, newClient(session, { fetch: traffic.fetch }))
    expect((await newClient(session, {}).ready()).scope).toContain('offline_access')
    expect((await newClient(session, { fetch: traffic.fetch }).refresh()).scope).toBe('openid launch patient/Patient.rs')
    expect((await newClient(session, {}).ready()).scope).toBe('openid launch patient/Patient.rs')
  })

  it('S30 a refresh token is used near expiry even when the granted scope has no offline_access', async () => {
    const clock = testClock()
    const traffic = tokenTraffic({ grant: 'authorization_code', body: (body) => ({ ...body, scope: 'openid fhirUser launch patient/*.rs' }) })
    const session = nextSession()
    const options = { fetch: traffic.fetch, now: clock.now }
    await completeLaunch(ehr, context, newClient(session, options))
    expect(traffic.answers[0].refresh_token).toEqual(expect.any(String))
    expect((await newClient(session, options).ready()).scope).not.toContain('offline_access')
    const grants = ehr.stats.refreshGrants
    clock.advance(590 * 1000)
    await expect(newClient(session, options).ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    expect(ehr.stats.refreshGrants).toBe(grants + 1)
  })

  it('S30 online_access (no offline_access requested) also refreshes near expiry', async () => {
    const clock = testClock()
    const session = nextSession()
    const options = { now: clock.now, fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init) }
    const scope = 'openid fhirUser launch launch/patient patient/*.rs online_access'
    await completeLaunch(ehr, context, newClient(session, options, scope))
    const grants = ehr.stats.refreshGrants
    clock.advance(590 * 1000)
    await newClient(session, options, scope).ready()
    expect(ehr.stats.refreshGrants).toBe(grants + 1)
  })

  it("waits for another process's refresh of the session, polling the lock with backoff, then gives up with STORAGE_UNAVAILABLE (503)", async () => {
    const shared = new MemoryStore()
    // Two storages over one store: two processes, each with its own in-process locks.
    const first = expressSessionStorage(shared)
    const second = expressSessionStorage(shared)
    let attempts = 0
    const counting: SmartStorage = {
      get: (key) => second.get(key),
      set: (key, value, ttl) => second.set(key, value, ttl),
      delete: (key) => second.delete(key),
      setIfAbsent: (key, value, ttl) => (attempts++, second.setIfAbsent!(key, value, ttl)),
    }
    const hanging = await createMockEhr()
    try {
      const session = nextSession()
      let refreshSent = false
      const watching: typeof fetch = (input, init) => ((refreshSent ||= String(init?.body ?? '').includes('grant_type=refresh_token')), fetch(input, init))
      const holder = new SmartClient(session, first, openConfig(), { ...devOptions, httpTimeoutMs: 3000, fetch: watching })
      await completeLaunch(hanging, context, holder)
      hanging.faults.token = 'hang'
      const holding = holder.refresh().catch((e: unknown) => e)
      while (!refreshSent) await new Promise((resolve) => setTimeout(resolve, 10))

      // This process waits at most 2 x httpTimeoutMs + 2 s for the lock the other one holds.
      const started = Date.now()
      const waiter = new SmartClient(session, counting, openConfig(), { ...devOptions, httpTimeoutMs: 100 })
      const err = await waiter.refresh().catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'STORAGE_UNAVAILABLE', status: 503, message: 'Timed out waiting for another process to finish refreshing this session' })
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000)
      // Polled with a growing pause (10 ms doubling up to 200 ms, about 15 attempts in 2.2 s), never a busy loop.
      expect(attempts).toBeGreaterThanOrEqual(5)
      expect(attempts).toBeLessThanOrEqual(40)
      expect(hanging.stats.refreshGrants).toBe(0)
      await holding
    } finally {
      delete hanging.faults.token
      await hanging.close()
    }
  })
})
