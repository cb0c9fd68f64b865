// Issue 20 (SECURITY S36): the app inside the EHR's own page. A launch in a cross-site frame with a session
// cookie the browser will not send there is refused before anything is stored or sent; with
// SameSite=None; Secure; Partitioned it works, the library's own cookies following the same rules; only the
// configured EHR origins may frame the app. (The real-browser side, with third-party cookies blocked, is
// __tests__/example-app/framed.test.ts.)
import express from 'express'
import { MemoryStore } from 'express-session'
import request from 'supertest'
import { expressSessionStorage, frameAncestorsOf, smartFrameAncestors } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { pathOf, recordingStorage, testApp, withCookies } from '../helpers/app'
import { openConfig } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const FRAMED = { 'Sec-Fetch-Dest': 'iframe', 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate' }
const launchPath = () => `/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`
const loginPath = () => `/login?iss=${encodeURIComponent(ehr.iss)}`

describe('S36 a launch in a cross-site frame needs a session cookie the browser sends there', () => {
  it.each([
    ['SameSite=Lax', { httpOnly: true, sameSite: 'lax' as const, secure: false }],
    ['SameSite=None without Secure', { httpOnly: true, sameSite: 'none' as const, secure: false }],
    ['no SameSite', { httpOnly: true }],
  ])('S36 %s: a framed launch and login are 500 MISCONFIGURED naming SameSite=None, Secure and Partitioned; nothing stored or sent', async (_label, cookie) => {
    const store = new MemoryStore()
    const { storage, writes } = recordingStorage(expressSessionStorage(store))
    const app = testApp({ store, storage, cookie, jsonErrors: true })
    const discoveries = ehr.stats.discoveryFetches
    for (const path of [launchPath(), loginPath()]) {
      const res = await request(app).get(path).set(FRAMED)
      expect(res.status).toBe(500)
      expect(res.body.code).toBe('MISCONFIGURED')
      expect(res.headers['set-cookie']).toBeUndefined()
    }
    expect(writes).toEqual([])
    expect(ehr.stats.discoveryFetches).toBe(discoveries)
    // The message (what an error handler that shows it — the example app's page — says):
    let message = ''
    const seen = express()
    seen.use(testApp({ store, cookie }))
    seen.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => void ((message = err.message), res.status(500).end()))
    await request(seen).get(launchPath()).set(FRAMED).expect(500)
    for (const word of ['SameSite=None', 'Secure', 'Partitioned', 'cross-site frame']) expect(message).toContain(word)
  })

  it('S36 the refusal reaches the app\'s logger with its message (an error handler shows a generic text for a 500)', async () => {
    const logged: Array<{ fields: Record<string, unknown>; message: string }> = []
    const ignore = () => undefined
    const logger = { debug: ignore, info: ignore, warn: ignore, error: (fields: Record<string, unknown>, message: string) => void logged.push({ fields, message }) }
    const app = testApp({ store: new MemoryStore(), jsonErrors: true, options: { logger } })
    const res = await request(app).get(launchPath()).set(FRAMED).expect(500)
    expect(res.body).toEqual({ code: 'MISCONFIGURED', message: 'Internal error' })
    expect(logged).toEqual([{ fields: { event: 'smart.launch', outcome: 'refused', code: 'MISCONFIGURED' }, message: expect.stringContaining('SameSite=None; Secure (and Partitioned') }])
  })

  it('S36 the same launch top-level (or framed by its own site) still works with a Lax cookie', async () => {
    const app = testApp({ store: new MemoryStore() })
    await request(app).get(launchPath()).expect(302)
    await request(app).get(launchPath()).set({ ...FRAMED, 'Sec-Fetch-Site': 'same-site' }).expect(302)
    await request(app).get(launchPath()).set({ ...FRAMED, 'Sec-Fetch-Dest': 'document' }).expect(302)
  })

  it('S36 with SameSite=None; Secure; Partitioned (over https) the framed launch completes, and the library\'s cookies follow the same rules', async () => {
    const app = testApp({
      store: new MemoryStore(), trustProxy: true, options: { enableMultiLaunch: true },
      cookie: { httpOnly: true, sameSite: 'none', secure: true, partitioned: true },
    })
    const https = { ...FRAMED, 'X-Forwarded-Proto': 'https' }
    const started = await request(app).get(launchPath()).set(https).expect(302)
    const cookies = ([] as string[]).concat(started.headers['set-cookie'])
    const launchCookie = cookies.find((cookie) => cookie.startsWith('__Host-smart-launch-'))!
    for (const attribute of ['Path=/', 'HttpOnly', 'SameSite=None', 'Secure', 'Partitioned']) expect(launchCookie).toContain(attribute)
    const session = cookies.find((cookie) => cookie.startsWith('connect.sid='))!
    for (const attribute of ['SameSite=None', 'Secure', 'Partitioned']) expect(session).toContain(attribute)
    const back = await request(app).get(pathOf(await ehr.authorize(started.headers.location))).set(https).set('Cookie', withCookies(undefined, started)).expect(302)
    const browserCookie = ([] as string[]).concat(back.headers['set-cookie']).find((cookie) => cookie.startsWith('__Host-smart-browser='))!
    for (const attribute of ['Path=/', 'HttpOnly', 'SameSite=None', 'Secure', 'Partitioned']) expect(browserCookie).toContain(attribute)
    const selector = new URL(back.headers.location, 'https://app.test').searchParams.get('patient')!
    const context = await request(app).get('/api/context').set(https).set('Cookie', withCookies(withCookies(undefined, started), back)).set('X-Active-Patient', selector).expect(200)
    expect(context.body.patient.id).toBe('patient-1')
  })

  it('S34 over https only the __Host- cookies count: an unprefixed launch cookie (plantable from a subdomain) completes nothing', async () => {
    const app = testApp({ store: new MemoryStore(), trustProxy: true, cookie: { httpOnly: true, sameSite: 'lax', secure: true } })
    const started = await request(app).get(launchPath()).set('X-Forwarded-Proto', 'https').expect(302)
    const unprefixed = withCookies(undefined, started).replace('__Host-smart-launch-', 'smart-launch-')
    const back = await request(app).get(pathOf(await ehr.authorize(started.headers.location))).set('X-Forwarded-Proto', 'https').set('Cookie', unprefixed)
    expect(back.status).toBe(400)
  })

  it('a callback without any cookie says that a missing cookie is the usual cause, and consumes nothing', async () => {
    const app = testApp({ store: new MemoryStore(), jsonErrors: true })
    const started = await request(app).get(launchPath()).expect(302)
    const callback = pathOf(await ehr.authorize(started.headers.location))
    const bare = await request(app).get(callback).expect(400)
    expect(bare.body).toEqual({ code: 'INVALID_STATE', message: expect.stringMatching(/sent no cookie of the launch \(cookies blocked, a cross-site frame without SameSite=None/) })
    await request(app).get(callback).set('Cookie', withCookies(undefined, started)).expect(302)
  })
})

describe('S36 only the configured EHRs may frame the app', () => {
  const config = openConfig({
    allowAnyIssuer: undefined,
    knownFhirServers: [
      { issuer: 'https://ehr.example.org/fhir', type: 'public', frameAncestors: ['https://ehr.example.org', 'https://portal.example.org:8443'] },
      { issuer: 'https://other.example/fhir', type: 'public' },
    ],
  } as never)

  it('smartFrameAncestors() sends frame-ancestors \'self\' and the EHRs\' origins; frameAncestorsOf() gives the sources for helmet', async () => {
    expect(frameAncestorsOf(config)).toEqual(["'self'", 'https://ehr.example.org', 'https://portal.example.org:8443'])
    const app = express()
    app.use(smartFrameAncestors({ config }))
    app.get('/', (_req, res) => void res.send('page'))
    const res = await request(app).get('/').expect(200)
    expect(res.headers['content-security-policy']).toBe("frame-ancestors 'self' https://ehr.example.org https://portal.example.org:8443")
  })

  it('with no frameAncestors configured (or allowAnyIssuer) only the app itself may frame it', () => {
    expect(frameAncestorsOf(openConfig())).toEqual(["'self'"])
  })

  it.each([
    ['a path', 'https://ehr.example.org/fhir'],
    ['a wildcard', 'https://*.example.org'],
    ['another scheme', 'javascript:alert(1)'],
    ['a CSP keyword', "'unsafe-inline'"],
    ['not a string', 42],
    ['a trailing slash', 'https://ehr.example.org/'],
  ])('frameAncestors with %s is a TypeError naming the field', (_label, origin) => {
    expect(() => frameAncestorsOf(openConfig({ allowAnyIssuer: undefined, knownFhirServers: [{ issuer: 'https://ehr.example.org/fhir', type: 'public', frameAncestors: [origin] }] } as never)))
      .toThrow(/config\.knownFhirServers\[0\]\.frameAncestors\[0\] must be an origin/)
  })
})
