// Issue 9 findings in the callback, refresh and session lifecycle, each with a test that failed before the fix.
import express from 'express'
import { MemoryStore } from 'express-session'
import request from 'supertest'
import { SmartClient, SmartError, expressSessionStorage, smartErrorHandler } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { recordingStorage } from '../helpers/app'
import { authorize, completeLaunch, devOptions, ehrLaunch, openConfig, testClock } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

let n = 0
const sid = () => `life-${++n}`
const context = { patient: 'patient-1' }

describe('the callback', () => {
  it('S13 ?error= with another session\'s state leaves that launch alone; with its own state it ends it', async () => {
    const storage = expressSessionStorage(new MemoryStore())
    const victim = new SmartClient(sid(), storage, openConfig(), devOptions)
    const { redirectUrl } = await victim.launch(ehrLaunch(ehr, context))
    const query = await authorize(ehr, redirectUrl)
    const other = new SmartClient(sid(), storage, openConfig(), devOptions)
    await expect(other.callback({ error: 'access_denied', state: query.state })).rejects.toMatchObject({ code: 'AUTHORIZATION_DENIED' })
    await expect(victim.callback(query)).resolves.toMatchObject({ patient: 'patient-1' })

    const own = new SmartClient(sid(), storage, openConfig(), devOptions)
    const second = await authorize(ehr, (await own.launch(ehrLaunch(ehr, context))).redirectUrl)
    await expect(own.callback({ error: 'access_denied', state: second.state })).rejects.toMatchObject({ code: 'AUTHORIZATION_DENIED' })
    await expect(own.callback(second)).rejects.toMatchObject({ code: 'INVALID_STATE' })
  })

  it('S22 a failed session-id regeneration leaves nothing stored, under either id', async () => {
    const { storage, writes } = recordingStorage(expressSessionStorage(new MemoryStore()))
    const id = sid()
    const client = new SmartClient(id, storage, openConfig(), devOptions)
    const query = await authorize(ehr, (await client.launch(ehrLaunch(ehr, context))).redirectUrl)
    writes.length = 0
    const failure = new SmartError('STORAGE_UNAVAILABLE', 'regeneration failed')
    await expect(client.callback(query, { regenerate: () => Promise.reject(failure) })).rejects.toBe(failure)
    expect(writes.map((w) => w.key).filter((key) => !key.startsWith('used:'))).toEqual([])
    await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
  })

  it('S12 two callbacks with one state at the same moment: exactly one redeems the code; the used launch (and its verifier) is gone', async () => {
    const storage = expressSessionStorage(new MemoryStore())
    const client = new SmartClient(sid(), storage, openConfig(), devOptions)
    const query = await authorize(ehr, (await client.launch(ehrLaunch(ehr, context))).redirectUrl)
    const grants = ehr.stats.codeGrants
    const outcomes = await Promise.allSettled([client.callback(query), client.callback(query), client.callback(query)])
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1)
    for (const o of outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected')) expect(o.reason).toMatchObject({ code: 'INVALID_STATE' })
    expect(ehr.stats.codeGrants - grants).toBe(1)
    expect(await storage.get(`pending:{${query.state}}`)).toBeUndefined()
  })
})

describe('refresh lead time with short tokens', () => {
  let shortEhr: MockEhr
  beforeAll(async () => (shortEhr = await createMockEhr({ accessTokenTtlSeconds: 60 })))
  afterAll(() => shortEhr.close())

  it('one-minute tokens are not refreshed on every request: the lead is at most half the lifetime', async () => {
    const clock = testClock()
    const client = new SmartClient(sid(), expressSessionStorage(new MemoryStore()), openConfig(), { ...devOptions, now: clock.now })
    await completeLaunch(shortEhr, context, client)
    const grants = shortEhr.stats.refreshGrants
    for (let s = 0; s < 25; s += 5) {
      await client.ready()
      clock.advance(5_000)
    }
    expect(shortEhr.stats.refreshGrants).toBe(grants)
    clock.advance(6_000)
    await client.ready()
    expect(shortEhr.stats.refreshGrants).toBe(grants + 1)
  })
})

describe('nothing is left behind', () => {
  it('S28 after the last launch ends, the store holds no launch and no token: only that it was closed', async () => {
    const inner = expressSessionStorage(new MemoryStore())
    const id = sid()
    const client = new SmartClient(id, inner, openConfig(), devOptions)
    await completeLaunch(ehr, context, client)
    expect(await inner.get(`session:{${id}}`)).toMatchObject({ kind: 'session' })
    await client.logout()
    const left = await inner.get(`session:{${id}}`)
    expect(left).toMatchObject({ kind: 'session', launches: {} })
    expect(Object.values((left as { ended: object }).ended)).toEqual([expect.objectContaining({ reason: 'closed' })])
    await expect(client.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED', message: expect.stringContaining('was closed') })
    expect(JSON.stringify(left)).not.toMatch(/token/i)
  })

  it('S33 after the last launch\'s refresh is refused, the store holds no launch and no token: only that it was refused', async () => {
    const clock = testClock()
    const inner = expressSessionStorage(new MemoryStore())
    const id = sid()
    const client = new SmartClient(id, inner, openConfig(), { ...devOptions, now: clock.now })
    await completeLaunch(ehr, context, client)
    const refusing: typeof fetch = async (input, init) =>
      String(init?.body ?? '').includes('grant_type=refresh_token')
        ? Response.json({ error: 'invalid_grant' }, { status: 400 })
        : fetch(input, init)
    const refused = new SmartClient(id, inner, openConfig(), { ...devOptions, now: clock.now, fetch: refusing })
    clock.advance(3600 * 1000)
    await expect(refused.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED' })
    const left = await inner.get(`session:{${id}}`) as { launches: object; ended: Record<string, { reason: string }> }
    expect(left.launches).toEqual({})
    expect(Object.values(left.ended)).toEqual([expect.objectContaining({ reason: 'refused' })])
    expect(JSON.stringify(left)).not.toMatch(/token/i)
    // The page still naming it is told why it ended.
    await expect(refused.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED', message: expect.stringContaining('refused to refresh') })
  })
})

describe('smartErrorHandler', () => {
  it.each([502, 503, 500])('a %i answer carries the generic text only, never the message or a cause', async (status) => {
    const app = express()
    app.get('/', (_req, _res, next) => {
      const code = status === 503 ? 'STORAGE_UNAVAILABLE' : status === 500 ? 'MISCONFIGURED' : 'TOKEN_EXCHANGE_FAILED'
      next(new SmartError(code, 'secret-detail in the message', { cause: new Error('secret-detail in the cause') }))
    })
    app.use(smartErrorHandler())
    const res = await request(app).get('/')
    expect(res.status).toBe(status)
    expect(res.text).not.toContain('secret-detail')
    expect(res.body.message).toBe({ 502: 'The EHR did not answer as expected; try again', 503: 'The session store is unavailable; try again', 500: 'Internal error' }[status])
  })

  it('passes on what is not a SmartError, and a SmartError after the answer has started, to the next handler', async () => {
    const app = express()
    app.get('/other', (_req, _res, next) => next(new RangeError('not ours')))
    app.get('/late', (_req, res, next) => {
      res.status(200).write('partial')
      next(new SmartError('NO_SESSION', 'too late'))
    })
    app.use(smartErrorHandler())
    const seen: string[] = []
    app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      seen.push(err.message)
      if (res.headersSent) res.end()
      else res.status(418).json({ handledBy: 'app' })
    })
    const other = await request(app).get('/other')
    expect({ status: other.status, body: other.body }).toEqual({ status: 418, body: { handledBy: 'app' } })
    const late = await request(app).get('/late')
    expect({ status: late.status, text: late.text }).toEqual({ status: 200, text: 'partial' })
    expect(seen).toEqual(['not ours', 'too late'])
  })
})
