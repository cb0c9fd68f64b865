// Issue 19: the browser is the unit of trust, not the session id (SECURITY S34, S35, S37). A launch, a join
// and a selector belong to the browser that started them: cookies lost, reordered or planted by a same-site
// page give the right patient or a refusal. Over every store kind.
import type { Express } from 'express'
import type { Store } from 'express-session'
import request from 'supertest'
import { expressSessionStorage } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { pathOf, recordingStorage, testApp, withCookies } from '../helpers/app'
import { testClock } from '../helpers/smart'
import { storeKinds } from '../helpers/stores'

let ehrA: MockEhr
let ehrB: MockEhr
beforeAll(async () => ([ehrA, ehrB] = await Promise.all([createMockEhr(), createMockEhr()])))
afterAll(() => Promise.all([ehrA.close(), ehrB.close()]))

/** One browser: a cookie jar its tabs share, kept as a `Cookie` header. */
class Browser {
  cookie = ''
  constructor(readonly app: Express) {}

  /** Starts a launch (the EHR's launch URL → the app's /launch → the EHR): the callback path it brings back. */
  async start(ehr: MockEhr, context: { patient: string; encounter?: string }, path = '/launch'): Promise<string> {
    const query = path === '/launch' ? new URL(ehr.launchUrl('http://app.test/launch', context)).search : `?iss=${encodeURIComponent(ehr.iss)}`
    const res = await this.send(request(this.app).get(`${path}${query}`)).expect(302)
    this.take(res)
    return pathOf(await ehr.authorize(res.headers.location))
  }

  /** The callback's answer; its cookies are kept unless `lost` (the answer never reached the browser). */
  async callBack(path: string, opts: { lost?: boolean } = {}) {
    const res = await this.send(request(this.app).get(path))
    if (!opts.lost) this.take(res)
    return res
  }

  /** A whole launch: the page's selector. */
  async launch(ehr: MockEhr, context: { patient: string; encounter?: string }): Promise<string> {
    const res = await this.callBack(await this.start(ehr, context))
    expect(res.status).toBe(302)
    return new URL(res.headers.location, 'http://app.test').searchParams.get('patient')!
  }

  async api(selector: string | null) {
    const req = this.send(request(this.app).get('/api/context'))
    return selector === null ? req : req.set('X-Active-Patient', selector)
  }

  send<T extends request.Test>(req: T): T {
    return this.cookie ? req.set('Cookie', this.cookie) : req
  }

  take(res: { headers: Record<string, unknown> }): void {
    this.cookie = withCookies(this.cookie, res)
  }

  /** The value of one cookie, or undefined. */
  get(name: string): string | undefined {
    return this.cookie.split('; ').find((pair) => pair.startsWith(`${name}=`))?.slice(name.length + 1)
  }

  /** A same-site page plants a cookie (cookies ignore ports; without `__Host-`, subdomains too). */
  plant(name: string, value: string): void {
    this.cookie = withCookies(this.cookie, { headers: { 'set-cookie': [`${name}=${value}; Path=/`] } })
  }
}

/** What a request was answered with: the patient and EHR, or the status and code. */
async function served(res: request.Response | Promise<request.Response>): Promise<string> {
  const answer = await res
  return answer.status === 200 ? `${answer.headers['x-smart-iss'] === ehrA.iss ? 'A' : answer.headers['x-smart-iss'] === ehrB.iss ? 'B' : '?'}:${answer.body.patient?.id}` : `${answer.status} ${answer.body.code ?? ''}`.trim()
}

describe.each(storeKinds())('browser binding over %s', (_name, kind) => {
  let store: Store
  let close: () => Promise<void>
  beforeAll(async () => ({ store, close } = await kind.open()))
  afterAll(() => close())

  const multi = () => testApp({ store, jsonErrors: true, options: { enableMultiLaunch: true } })

  describe('S34 a launch belongs to the browser that started it', () => {
    it('S34 a callback without the launch cookie (another browser, even with the session id) is refused and consumes nothing; the launching browser then completes', async () => {
      const app = multi()
      const victim = new Browser(app)
      const callback = await victim.start(ehrA, { patient: 'patient-1' })
      const attacker = new Browser(app)
      attacker.plant('connect.sid', victim.get('connect.sid')!)
      const stolen = await attacker.callBack(callback)
      expect(stolen.status).toBe(400)
      expect(stolen.body).toEqual({ code: 'INVALID_STATE', message: expect.stringContaining('this browser sent no cookie of the launch') })
      const grants = ehrA.stats.codeGrants
      expect((await victim.callBack(callback)).status).toBe(302)
      expect(ehrA.stats.codeGrants).toBe(grants + 1)
      expect(await served(victim.api(null))).toBe('A:patient-1')
      expect(await served(attacker.api(null))).toBe('401 NO_SESSION')
    })

    it('S34 a launch cookie of another launch does not complete this one', async () => {
      const app = multi()
      const victim = new Browser(app)
      const callback = await victim.start(ehrA, { patient: 'patient-1' })
      const attacker = new Browser(app)
      await attacker.start(ehrA, { patient: 'patient-2' })
      attacker.plant('connect.sid', victim.get('connect.sid')!)
      const res = await attacker.callBack(callback)
      expect(res.body).toEqual({ code: 'INVALID_STATE', message: expect.stringContaining('the launch was started by another browser') })
    })

    it('S34 a planted empty session id: the victim\'s launch is the victim\'s alone; the attacker holding the id reaches nothing, at any time, and its own callback joins nothing', async () => {
      const clock = testClock()
      const app = testApp({ store, jsonErrors: true, options: { enableMultiLaunch: true, now: clock.now } })
      const attacker = new Browser(app)
      const attackersCallback = await attacker.start(ehrB, { patient: 'patient-2' })
      clock.advance(1000)
      const planted = attacker.get('connect.sid')!
      const victim = new Browser(app)
      victim.plant('connect.sid', planted)
      // The logout oracle: what the attacker sees before and after the victim's callback is the same.
      const before = (await attacker.send(request(app).post('/logout')).set('Sec-Fetch-Site', 'same-origin')).status
      const selector = await victim.launch(ehrA, { patient: 'patient-1' })
      expect(victim.get('connect.sid')).not.toBe(planted)
      expect((await attacker.send(request(app).post('/logout')).set('Sec-Fetch-Site', 'same-origin')).status).toBe(before)
      clock.advance(60)
      expect(await served(attacker.api(selector))).toMatch(/^40[13] /)
      // 0.06 s after the victim's callback moved the planted id, the attacker completes a launch of its own
      // with it: a session of its own, nothing of the victim's (it joined the victim's session within the grace).
      expect((await attacker.callBack(attackersCallback)).status).toBe(302)
      for (const advance of [0, 9_000, 3_600_000]) {
        clock.advance(advance)
        expect(await served(attacker.api(selector))).toMatch(/^40[13] /)
      }
      expect(await served(attacker.api(selector))).toMatch(/^40[13] /)
      expect(await served(attacker.api(null))).toBe('B:patient-2')
      expect(await served(victim.api(selector))).toBe('A:patient-1')
      expect(await served(victim.api(null))).toBe('A:patient-1')
    })

    it('S34 a planted session id holding the attacker\'s launch: the victim\'s callback starts a session of its own, never holding the attacker\'s patient', async () => {
      for (const options of [{ enableMultiLaunch: true }, {}]) {
        const app = testApp({ store, jsonErrors: true, options })
        const attacker = new Browser(app)
        const attackers = await attacker.launch(ehrB, { patient: 'patient-2' })
        const victim = new Browser(app)
        victim.plant('connect.sid', attacker.get('connect.sid')!)
        const selector = await victim.launch(ehrA, { patient: 'patient-1' })
        expect(await served(victim.api(selector))).toBe('A:patient-1')
        expect(await served(victim.api(null))).toBe('A:patient-1')
        expect(await served(victim.api(attackers))).toMatch(/^40[13] /)
        // The attacker keeps its own session and reaches nothing of the victim's, also with its own later callback.
        expect(await served(attacker.api(attackers))).toBe('B:patient-2')
        expect(await served(attacker.api(selector))).toMatch(/^40[13] /)
        await attacker.launch(ehrB, { patient: 'patient-3' })
        expect(await served(attacker.api(selector))).toMatch(/^40[13] /)
        expect(await served(victim.api(selector))).toBe('A:patient-1')
      }
    })

    it('S34 a planted browser cookie proves nothing: the server never takes a browser secret from a request', async () => {
      const app = multi()
      const victim = new Browser(app)
      victim.plant('smart-browser', 'a'.repeat(43))
      await victim.launch(ehrA, { patient: 'patient-1' })
      expect(victim.get('smart-browser')).not.toBe('a'.repeat(43))
    })
  })

  describe('S35 a selector never comes to select another EHR\'s launch', () => {
    it('S35 after the browser lost its session (a new server session), the old tab\'s selector is refused, never answered with the other EHR\'s same patient id', async () => {
      const app = multi()
      const browser = new Browser(app)
      const tabA = await browser.launch(ehrA, { patient: 'patient-1' })
      browser.cookie = ''
      const tabB = await browser.launch(ehrB, { patient: 'patient-1' })
      expect(tabA).not.toBe(tabB)
      expect(await served(browser.api(tabB))).toBe('B:patient-1')
      expect(await served(browser.api(tabA))).toBe('403 UNKNOWN_PATIENT')
    })

    it('S35 a selector is the same for the same EHR and patient in any session, and differs between EHRs', async () => {
      const app = multi()
      const one = new Browser(app)
      const two = new Browser(app)
      expect(await one.launch(ehrA, { patient: 'patient-1' })).toBe(await two.launch(ehrA, { patient: 'patient-1' }))
      expect(await one.launch(ehrB, { patient: 'patient-1' })).not.toBe(await two.launch(ehrA, { patient: 'patient-1' }))
    })

    it('S35 an app of exactly one EHR gives the bare patient id (it can name no other EHR\'s patient)', async () => {
      const app = testApp({ store, jsonErrors: true, config: { allowAnyIssuer: undefined, knownFhirServers: [{ issuer: ehrA.iss, type: 'public' }] } as never, options: { enableMultiLaunch: true } })
      const browser = new Browser(app)
      expect(await browser.launch(ehrA, { patient: 'patient-2' })).toBe('patient-2')
    })

    it('S35 with more launches than a session keeps, the evicted one is refused as ended, never another EHR\'s', async () => {
      const more = await Promise.all(Array.from({ length: 6 }, () => createMockEhr()))
      try {
        const app = multi()
        const browser = new Browser(app)
        const first = await browser.launch(ehrA, { patient: 'patient-1' })
        // 23 other (EHR, patient) identities: the first launch is the least recently used of 24, beyond the 20 kept.
        for (const ehr of [ehrB, ...more]) for (const patient of ['patient-1', 'patient-2', 'patient-3']) await browser.launch(ehr, { patient })
        for (const patient of ['patient-2', 'patient-3']) await browser.launch(ehrA, { patient })
        const evicted = await browser.api(first)
        expect(evicted.body).toEqual({ code: 'SESSION_EXPIRED', message: expect.stringContaining('to make room for newer launches') })
        expect(await served(browser.api(await browser.launch(ehrB, { patient: 'patient-1' })))).toBe('B:patient-1')
        expect(await served(browser.api(first))).toBe('401 SESSION_EXPIRED')
      } finally {
        await Promise.all(more.map((ehr) => ehr.close()))
      }
    })
  })

  describe('single-launch mode is safe by default', () => {
    it('the redirect gives the page its selector; after another patient\'s launch replaced it, the first tab and a header-less request are refused', async () => {
      const app = testApp({ store, jsonErrors: true })
      const browser = new Browser(app)
      const first = await browser.launch(ehrA, { patient: 'patient-1' })
      expect(first).toMatch(/^patient-1_/)
      expect(await served(browser.api(null))).toBe('A:patient-1')
      // A cross-site page navigates the browser to /launch with a launch of its own: it replaces the patient...
      const second = await browser.launch(ehrA, { patient: 'patient-2' })
      expect(await served(browser.api(second))).toBe('A:patient-2')
      // ...but never silently under the existing tab, nor for a page that names no launch.
      const old = await browser.api(first)
      expect(old.status).toBe(403)
      expect(old.body.message).toContain('was replaced by a later launch')
      expect(await served(browser.api(null))).toBe('400 ACTIVE_PATIENT_REQUIRED')
    })
  })

  describe('nothing lost to lost or reordered answers', () => {
    it('a callback whose answer never arrived neither logs out the other tabs nor makes the next launch fail', async () => {
      const app = multi()
      const browser = new Browser(app)
      const tab1 = await browser.launch(ehrA, { patient: 'patient-1' })
      const lost = await browser.callBack(await browser.start(ehrA, { patient: 'patient-2' }), { lost: true })
      expect(lost.status).toBe(302)
      expect(await served(browser.api(tab1))).toBe('A:patient-1')
      const tab3 = await browser.launch(ehrB, { patient: 'patient-3' })
      expect(await served(browser.api(tab1))).toBe('A:patient-1')
      expect(await served(browser.api(tab3))).toBe('B:patient-3')
      // The lost tab's launch is there too: its selector is the same function of EHR and patient.
      expect(await served(browser.api(new URL(lost.headers.location, 'http://app.test').searchParams.get('patient')))).toBe('A:patient-2')
    })

    it('a browser ten callbacks behind (its answers lost, or an old Set-Cookie applied last) still reaches, logs out and extends its session', async () => {
      const app = multi()
      const browser = new Browser(app)
      const first = await browser.launch(ehrA, { patient: 'patient-1' })
      const behind = browser.cookie
      const selectors = [first]
      for (let round = 0; round < 10; round++) selectors.push(await browser.launch(round % 2 ? ehrA : ehrB, { patient: `patient-${1 + (round % 3)}` }))
      browser.cookie = behind
      for (const selector of new Set(selectors)) expect((await browser.api(selector)).status).toBe(200)
      const next = await browser.launch(ehrB, { patient: 'patient-3' })
      expect(await served(browser.api(next))).toBe('B:patient-3')
      expect(await served(browser.api(first))).toBe('A:patient-1')
      browser.cookie = behind
      await browser.send(request(app).post('/logout')).set('Sec-Fetch-Site', 'same-origin').expect(204)
      for (const selector of new Set([...selectors, next])) expect((await browser.api(selector)).status).toBe(401)
    })

    it('launches abandoned at the EHR leave a bounded number of launch cookies; later launches still complete', async () => {
      const app = multi()
      const browser = new Browser(app)
      for (let round = 0; round < 8; round++) {
        for (let abandoned = 0; abandoned < 10; abandoned++) await browser.start(ehrA, { patient: 'patient-2' })
        await browser.launch(ehrA, { patient: 'patient-1' })
        expect(browser.cookie.split('; ').filter((pair) => pair.startsWith('smart-launch-')).length).toBeLessThanOrEqual(10)
      }
    })

    it('two tabs relaunch one patient for two encounters: the launch started later wins, whichever callback completes first', async () => {
      const app = multi()
      const browser = new Browser(app)
      const older = await browser.start(ehrA, { patient: 'patient-1', encounter: 'patient-1-encounter-1' })
      const newer = await browser.start(ehrA, { patient: 'patient-1', encounter: 'patient-1-encounter-2' })
      const [answerNewer, answerOlder] = [await browser.callBack(newer), await browser.callBack(older)]
      expect([answerNewer.status, answerOlder.status]).toEqual([302, 302])
      const context = await browser.api('patient-1')
      expect(context.body.encounter.id).toBe('patient-1-encounter-2')
    })
  })

  describe('S37 bounded before authentication', () => {
    it('S37 a session made by /launch lives only as long as its pending launch; a completed callback gives the usual lifetime', async () => {
      const app = multi()
      const res = await request(app).get(`/launch${new URL(ehrA.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`).expect(302)
      const session = ([] as string[]).concat(res.headers['set-cookie']).find((cookie) => cookie.startsWith('connect.sid='))!
      const expires = Date.parse(/Expires=([^;]+)/.exec(session)![1])
      expect(expires - Date.now()).toBeGreaterThan(590_000)
      expect(expires - Date.now()).toBeLessThanOrEqual(600_000)
      const back = await request(app).get(pathOf(await ehrA.authorize(res.headers.location))).set('Cookie', withCookies(undefined, res)).expect(302)
      const after = ([] as string[]).concat(back.headers['set-cookie']).find((cookie) => cookie.startsWith('connect.sid='))!
      expect(after).not.toMatch(/Expires/)
    })

    it('S37 a flood of cookie-less launches leaves only state that expires with its pending launch', async () => {
      // What express-session writes (its sessions, with their expiry) and what the library writes (with its TTL).
      const sessions: Array<{ expires: number }> = []
      const recorded = new Proxy(store, {
        get(target, name, receiver) {
          if (name === 'set') {
            return (sid: string, data: { cookie: { expires?: Date | string } }, done: (err?: unknown) => void) => {
              if (!sid.startsWith('smart:')) sessions.push({ expires: Date.parse(String(data.cookie.expires)) })
              return target.set(sid, data as never, done)
            }
          }
          const value = Reflect.get(target, name, receiver)
          return typeof value === 'function' ? value.bind(target) : value
        },
      })
      const { storage, writes } = recordingStorage(expressSessionStorage(store))
      const app = testApp({ store: recorded, storage, options: { enableMultiLaunch: true } })
      const query = new URL(ehrA.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search
      await Promise.all(Array.from({ length: 40 }, () => request(app).get(`/launch${query}`).expect(302)))
      expect(writes.length).toBe(40)
      for (const write of writes) expect(write.ttl).toBeLessThanOrEqual(600)
      expect(sessions).toHaveLength(40)
      for (const session of sessions) expect(session.expires - Date.now()).toBeLessThanOrEqual(600_000)
    })

    it('S37 a session keeps at most 10 pending launches: the oldest is forgotten (its callback refused) and its cookie cleared', async () => {
      const app = multi()
      const browser = new Browser(app)
      const callbacks: string[] = []
      for (let i = 0; i < 11; i++) callbacks.push(await browser.start(ehrA, { patient: 'patient-1' }))
      expect(browser.cookie.split('; ').filter((pair) => pair.startsWith('smart-launch-'))).toHaveLength(10)
      const oldest = await browser.callBack(callbacks[0])
      expect(oldest.body.code).toBe('INVALID_STATE')
      expect((await browser.callBack(callbacks[10])).status).toBe(302)
    })
  })

  describe('clear endings', () => {
    it('a closed launch answers 401 SESSION_EXPIRED saying it was closed, not "not launched in this session"', async () => {
      const app = multi()
      const browser = new Browser(app)
      const selector = await browser.launch(ehrA, { patient: 'patient-1' })
      await browser.send(request(app).post('/logout')).set('X-Active-Patient', selector).expect(204)
      const closed = await browser.api(selector)
      expect(closed.status).toBe(401)
      expect(closed.body).toEqual({ code: 'SESSION_EXPIRED', message: expect.stringContaining('was closed') })
    })

    it('an idle-ended launch says so', async () => {
      const clock = testClock()
      const app = testApp({ store, jsonErrors: true, options: { enableMultiLaunch: true, now: clock.now, idleTimeoutSeconds: 300, autoRefresh: false } })
      const browser = new Browser(app)
      const selector = await browser.launch(ehrA, { patient: 'patient-1' })
      clock.advance(301_000)
      expect((await browser.api(selector)).body).toEqual({ code: 'SESSION_EXPIRED', message: expect.stringContaining('idle') })
    })

    it('S29 with encryptionKey, a pending launch keeps the PKCE verifier and nonce sealed', async () => {
      const { storage, writes } = recordingStorage(expressSessionStorage(store))
      const app = testApp({ store, storage, jsonErrors: true, options: { enableMultiLaunch: true, encryptionKey: Buffer.alloc(32, 7).toString('base64') } })
      const browser = new Browser(app)
      const callback = await browser.start(ehrA, { patient: 'patient-1' })
      const pending = writes.find((write) => write.key.startsWith('pending:'))!.value as Record<string, unknown>
      expect(pending.secrets).toEqual({ sealed: expect.stringMatching(/^v2\./) })
      expect(JSON.stringify(pending)).not.toMatch(/codeVerifier|nonce/)
      expect((await browser.callBack(callback)).status).toBe(302)
    })
  })

  describe('logout and CSRF', () => {
    it('a logout of every launch from another site (a form POST) is refused; the app\'s own page, or one naming the launch, is not', async () => {
      const app = multi()
      const browser = new Browser(app)
      const selector = await browser.launch(ehrA, { patient: 'patient-1' })
      for (const site of ['same-site', 'cross-site']) {
        const res = await browser.send(request(app).post('/logout')).set('Sec-Fetch-Site', site)
        expect(res.status).toBe(403)
        expect(res.body.code).toBe('CROSS_SITE_REQUEST')
      }
      expect(await served(browser.api(selector))).toBe('A:patient-1')
      await browser.send(request(app).post('/logout')).set('Sec-Fetch-Site', 'same-origin').expect(204)
      expect((await browser.api(selector)).status).toBe(401)
    })
  })
})
