// The chaos driver (issue: randomized multi-process race test): simulated browsers, each one cookie jar shared by
// its tabs, against app processes that share one Redis (processes.ts), with two mock EHRs whose patient ids are
// the same. Every step is drawn from a seeded PRNG: a new tab's launch (either EHR, one of three patients), a
// relaunch of a tab's patient, bursts of tabs launching at once, API calls and FHIR reads from a random tab to a
// random process, closing a patient or all of them, and — injected faults — a callback answer lost (its
// Set-Cookie never applied, the tab never learns its `?patient=`), a callback answer held and applied later
// (after another tab's), a lost /launch answer, every access token revoked at the EHR, and an attacker who plants
// its own session cookie in a browser before it launches and then asks for that browser's patient.
//
// A wrong-patient answer is any 2xx to a tab that is not for the EHR and patient that tab launched (headers
// X-Smart-Iss, X-Smart-Patient, X-Active-Patient and the body), or a callback handing out a selector that
// names another patient or that another (EHR, patient) got before. `leaked`: any 2xx to the attacker that is
// not for its own launch. Also counted: 500s, requests left unanswered, refusals by status, code and what the
// tab had reason to expect, and `servedAfterLogout` (a 2xx for a launch the browser closed with nothing else
// under way and did not launch again). Each finding comes with the browser's last steps and the session ids
// its requests carried. The seed fixes the choices, not the interleaving (two processes, real sockets).
//
//   const report = await runChaos({ seed: 1, durationMs: 8000, apps, ehrs: [ehrA, ehrB] })
//   expect(report.counts.wrong).toBe(0)
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import type { MockEhr } from '../../lib/testing'
import type { ProcessReport } from './app-process'

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export class Rng {
  readonly #next: () => number
  constructor(readonly seed: number) {
    this.#next = mulberry32(seed)
  }
  int(n: number): number {
    return Math.floor(this.#next() * n)
  }
  chance(p: number): boolean {
    return this.#next() < p
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]
  }
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items]
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[out[i], out[j]] = [out[j], out[i]]
    }
    return out
  }
  /** A key drawn with the given weights (0: never). */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = (Object.entries(weights) as Array<[K, number]>).filter(([, w]) => w > 0)
    let roll = this.#next() * entries.reduce((sum, [, w]) => sum + w, 0)
    for (const [key, w] of entries) if ((roll -= w) < 0) return key
    return entries[entries.length - 1][0]
  }
  /** An independent stream for `label` (a browser, the attacker): its choices do not shift when another's do. */
  fork(label: number): Rng {
    return new Rng((Math.imul(this.seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(label + 1, 0xc2b2ae35)) >>> 0)
  }
}

/**
 * A browser's cookies for 127.0.0.1 (cookies ignore the port, so both app processes see the same ones). Only what
 * the app sets: host-only cookies of Path=/; `Max-Age<=0` or a past `Expires` deletes. Sent oldest first, a
 * replaced cookie keeping its place (RFC 6265 §5.3 step 11, §5.4); beyond 180 cookies the oldest go until 150
 * are left, as Chrome does per domain.
 */
export class CookieJar {
  static readonly MAX = 180
  static readonly PURGE_TO = 150
  readonly #cookies = new Map<string, string>()

  apply(setCookies: readonly string[]): void {
    for (const line of setCookies) {
      const [pair, ...attributes] = line.split(';')
      const at = pair.indexOf('=')
      if (at <= 0) continue
      const name = pair.slice(0, at).trim()
      const value = pair.slice(at + 1).trim()
      const attr = new Map(attributes.map((a) => {
        const eq = a.indexOf('=')
        return eq < 0 ? [a.trim().toLowerCase(), ''] : [a.slice(0, eq).trim().toLowerCase(), a.slice(eq + 1).trim()]
      }))
      const path = attr.get('path')
      if (path !== undefined && path !== '/') throw new Error(`CookieJar: ${name} has Path=${path}; only Path=/ is modelled`)
      const maxAge = attr.get('max-age')
      const expires = attr.get('expires')
      const expired = maxAge !== undefined ? Number(maxAge) <= 0 : expires !== undefined && Date.parse(expires) <= Date.now()
      if (expired) this.#cookies.delete(name)
      else this.#cookies.set(name, value)
    }
    if (this.#cookies.size > CookieJar.MAX) {
      for (const name of [...this.#cookies.keys()].slice(0, this.#cookies.size - CookieJar.PURGE_TO)) this.#cookies.delete(name)
    }
  }

  get size(): number {
    return this.#cookies.size
  }

  /** The user clears the site's cookies. */
  clear(): void {
    this.#cookies.clear()
  }

  get(name: string): string | undefined {
    return this.#cookies.get(name)
  }

  /** What a same-site attacker can do: write a cookie of its choosing into this browser. */
  plant(name: string, value: string): void {
    this.#cookies.set(name, value)
  }

  header(): string | undefined {
    return this.#cookies.size === 0 ? undefined : [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  }
}

export interface Answer {
  status: number
  headers: IncomingHttpHeaders
  setCookies: string[]
  body: string
  /** For the trace: the session id the request carried, and the one its answer sets (6 characters each). */
  sids?: string
}

/** The first characters of the session id in a `connect.sid` value (`s:<id>.<signature>`), for traces. */
function shortSid(value: string | undefined): string {
  if (value === undefined) return '-'
  const decoded = decodeURIComponent(value)
  return (decoded.startsWith('s:') ? decoded.slice(2) : decoded).slice(0, 6)
}

function setSidOf(setCookies: readonly string[]): string | undefined {
  const line = setCookies.find((cookie) => cookie.startsWith('connect.sid='))
  return line === undefined ? undefined : line.slice('connect.sid='.length).split(';')[0]
}

const REQUEST_TIMEOUT_MS = 20_000
const agent = new Agent({ keepAlive: true, maxSockets: 64 })

/** One request, no redirect followed, nothing applied to any jar. Rejects on a network error or after 20 s. */
export function send(url: string, method: string, headers: Record<string, string | undefined>): Promise<Answer> {
  const clean = Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== undefined))
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: clean, agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, setCookies: res.headers['set-cookie'] ?? [], body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)))
    req.on('error', reject)
    req.end()
  })
}

export interface ChaosApp {
  name: string
  url: string
}

export interface ChaosEhr {
  name: string
  ehr: MockEhr
}

export interface ChaosOptions {
  seed: number
  /** New steps start until then; the steps in flight, the held answers and a last call per tab follow. */
  durationMs: number
  apps: readonly ChaosApp[]
  ehrs: readonly ChaosEhr[]
  /** Browsers at the start (default 4); the attacker's victims add more, up to `maxBrowsers` (default 8). */
  browsers?: number
  maxBrowsers?: number
  /** The patients tabs launch (default patient-1..3: the same ids at both EHRs). */
  patients?: readonly string[]
  /** One attack about every this many ms (default 1500); 0: no attacker. */
  attackEveryMs?: number
  /** All access tokens of one EHR revoked about every this many ms (default 2000); 0: never. */
  revokeEveryMs?: number
  /** Steps of a browser shown with each incident (default 40). */
  traceLines?: number
  /** Describes what the store holds for a session id (its full `connect.sid` value), added to each note. */
  inspect?: (connectSid: string) => Promise<string>
}

export interface ChaosCounts {
  launchesStarted: number
  /** Callbacks answered 302 (whether or not the browser got that answer). */
  launchesCompleted: number
  /** /launch or callback answered something else than 302, by step, `<status> <code>` and message. */
  launchRefusals: Record<string, number>
  relaunches: number
  bursts: number
  /** API calls and FHIR reads from tabs, with their selector. */
  calls: number
  ok: number
  /** Non-2xx answers to calls, by `<status> <code>`. */
  refusals: Record<string, number>
  /**
   * The same by what the tab had reason to expect — `closed tab` (it, or a logout sent since its launch started,
   * closed it), an open tab in a browser the attacker planted its cookie in, an open tab whose browser's session
   * cookie was set back since (an answer applied after a later one), or just `open tab` (nothing explains it) —
   * and by message.
   */
  refusalDetail: Record<string, number>
  wrong: number
  logouts: number
  logoutsAll: number
  /** 2xx for a selector after this browser closed it (quietly: nothing else in flight, no relaunch since). */
  servedAfterLogout: number
  faults: {
    callbacksDropped: number; callbacksHeld: number; heldAppliedAfterAnother: number; launchAnswersDropped: number; tokensRevoked: number; parallelSteps: number
    /** Not a fault injected: users who cleared their cookies after launches kept failing. */
    cookiesCleared: number
  }
  attacks: number
  /** Attacks whose victim completed its launch with the planted session cookie (the ones that test something). */
  attacksLaunched: number
  attackerCalls: number
  attackerRefusals: Record<string, number>
  leaked: number
  /** 500s anywhere (a bug; 502/503 are counted as refusals). */
  serverErrors: number
  /** Requests that got no answer (a reset, a timeout). */
  networkErrors: number
}

export interface ChaosReport {
  seed: number
  elapsedMs: number
  counts: ChaosCounts
  /** Each wrong, leaked, 500 or network error, with the last steps of the browser it happened in. */
  incidents: string[]
  /** The first few refusals of a tab whose launch should be live (nothing wrong in itself: what it cost), with their steps. */
  notes: string[]
}

const newCounts = (): ChaosCounts => ({
  launchesStarted: 0, launchesCompleted: 0, launchRefusals: {}, relaunches: 0, bursts: 0, calls: 0, ok: 0, refusals: {}, refusalDetail: {}, wrong: 0,
  logouts: 0, logoutsAll: 0, servedAfterLogout: 0,
  faults: { callbacksDropped: 0, callbacksHeld: 0, heldAppliedAfterAnother: 0, launchAnswersDropped: 0, tokensRevoked: 0, parallelSteps: 0, cookiesCleared: 0 },
  attacks: 0, attacksLaunched: 0, attackerCalls: 0, attackerRefusals: {}, leaked: 0, serverErrors: 0, networkErrors: 0,
})

const bump = (map: Record<string, number>, key: string): void => {
  map[key] = (map[key] ?? 0) + 1
}

const codeOf = (answer: Answer): string => {
  try {
    return String((JSON.parse(answer.body) as { code?: unknown }).code ?? '')
  } catch {
    return ''
  }
}

const statusKey = (answer: Answer): string => `${answer.status} ${codeOf(answer)}`.trim()
const messageOf = (answer: Answer): string => {
  try {
    return String((JSON.parse(answer.body) as { message?: unknown }).message ?? '')
  } catch {
    return answer.body.slice(0, 80)
  }
}
const trimSlash = (url: string): string => url.replace(/\/+$/, '')
const header = (answer: Answer, name: string): string | undefined => {
  const value = answer.headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

type Fault = 'none' | 'dropCallback' | 'holdCallback' | 'dropLaunch'

/** Launches refused in a row before the simulated user clears the site's cookies. */
const CLEAR_COOKIES_AFTER = 5

const identityOf = (tab: Tab): string => `${tab.ehr.name} ${tab.patient}`

interface Tab {
  id: string
  ehr: ChaosEhr
  patient: string
  /** The `?patient=` its callback gave; null until its answer arrived (never, when it was lost). */
  selector: string | null
  state: 'launching' | 'open' | 'lost' | 'closed'
  /** When its (latest) launch started. */
  launchedAt: number
  /** The browser's cookie epoch when its answer was applied. */
  epoch: number
}

/** A callback answer on its way to the browser: applying it sets its cookies and gives the tab its selector. */
interface Delivery {
  tab: Tab
  answer: Answer
  selector: string
  /** How many answers this browser had applied when this one was held: any more when it is applied, and it arrives out of order. */
  heldAfter: number
}

/** What a browser's steps share: the processes, the EHRs, the counts and the selectors handed out so far. */
class Run {
  readonly counts = newCounts()
  readonly incidents: string[] = []
  readonly notes: string[] = []
  /** selector → `<iss> <patient>`: a selector is a function of (EHR, patient) and must never mean another. */
  readonly selectors = new Map<string, string>()
  readonly started = Date.now()
  readonly deadline: number
  constructor(readonly opts: ChaosOptions & Required<Pick<ChaosOptions, 'patients'>>) {
    this.deadline = this.started + opts.durationMs
  }
  get over(): boolean {
    return Date.now() >= this.deadline
  }
  at(): string {
    return `${String(Date.now() - this.started).padStart(6)}ms`
  }
  incident(what: string, trace: readonly string[], into = this.incidents): void {
    into.push(`seed ${this.opts.seed}: ${what}\n  last steps:\n    ${trace.join('\n    ')}`)
  }
}

const describeAnswer = (answer: Answer): string =>
  `${answer.status} X-Active-Patient=${header(answer, 'x-active-patient')} X-Smart-Iss=${header(answer, 'x-smart-iss')} ` +
  `X-Smart-Patient=${header(answer, 'x-smart-patient')} body=${answer.body.slice(0, 300)}`

class SimBrowser {
  readonly jar = new CookieJar()
  tabs: Tab[] = []
  readonly held: Delivery[] = []
  deliveries = 0
  inFlight = 0
  /** Launches in a row that the app refused: after a few the user clears the site's cookies and starts over. */
  failedInARow = 0
  /**
   * Bumped when the session cookie goes back to an older value (an answer applied after a later one's): tabs
   * answered before then may be refused, which is not the same as a refusal out of the blue.
   */
  epoch = 0
  /** An attacker's session cookie was planted in this browser (its tabs' launches may land in several sessions). */
  planted = false
  /** When a logout of an (EHR, patient) — or of all, under '*' — was last sent. */
  readonly closedAt = new Map<string, number>()
  /** (EHR, patient)s this browser closed with nothing else under way, and has not launched again since. */
  readonly quietlyClosed = new Set<string>()
  readonly #trace: string[] = []
  #tabCount = 0

  constructor(readonly name: string, readonly run: Run, readonly rng: Rng) {}

  log(line: string): void {
    this.#trace.push(`${this.run.at()} ${this.name} ${line}`)
    if (this.#trace.length > (this.run.opts.traceLines ?? 40)) this.#trace.shift()
  }

  get trace(): readonly string[] {
    return this.#trace
  }

  /** A request with this browser's cookies as they are when it leaves; null (counted) on a network error. */
  async send(app: ChaosApp, method: string, path: string, headers: Record<string, string | undefined> = {}): Promise<Answer | null> {
    this.inFlight++
    const sent = shortSid(this.jar.get('connect.sid'))
    try {
      const answer = await send(`${app.url}${path}`, method, { ...headers, cookie: this.jar.header() })
      const set = setSidOf(answer.setCookies)
      answer.sids = ` [sid ${sent}${set === undefined ? '' : `→${shortSid(set)}`}]`
      if (answer.status === 500) {
        this.run.counts.serverErrors++
        this.log(`${method} ${path} on ${app.name} -> 500 ${answer.body.slice(0, 200)}`)
        this.run.incident(`500 from ${app.name} for ${method} ${path} (${this.name})`, this.trace)
      }
      return answer
    } catch (err) {
      this.run.counts.networkErrors++
      this.log(`${method} ${path} on ${app.name} -> ${(err as Error).message}`)
      this.run.incident(`no answer from ${app.name} for ${method} ${path} (${this.name}): ${(err as Error).message}`, this.trace)
      return null
    } finally {
      this.inFlight--
    }
  }

  newTab(ehr: ChaosEhr, patient: string): Tab {
    const tab: Tab = { id: `${this.name}.t${++this.#tabCount}`, ehr, patient, selector: null, state: 'launching', launchedAt: Date.now(), epoch: 0 }
    this.tabs.push(tab)
    // Beyond a dozen tabs, the oldest one that cannot call (lost), else the oldest closed one, is forgotten.
    const lost = this.tabs.findIndex((t) => t.state === 'lost')
    const forget = lost >= 0 ? lost : this.tabs.findIndex((t) => t.state === 'closed')
    if (this.tabs.length > 12 && forget >= 0) this.tabs.splice(forget, 1)
    return tab
  }

  /**
   * A tab's launch: /launch on a random process, the EHR's authorization, the callback on a random process. The
   * callback's answer is returned undelivered (null when there is none to deliver: refused, or lost to `fault`).
   */
  async launch(tab: Tab, fault: Fault): Promise<Delivery | null> {
    const { counts } = this.run
    const iss = trimSlash(tab.ehr.ehr.iss)
    tab.state = 'launching'
    tab.selector = null
    tab.launchedAt = Date.now()
    this.quietlyClosed.delete(identityOf(tab))
    counts.launchesStarted++
    const query = new URL(tab.ehr.ehr.launchUrl('http://app.test/launch', { patient: tab.patient })).search
    const first = this.rng.pick(this.run.opts.apps)
    const started = await this.send(first, 'GET', `/launch${query}`)
    if (started === null || started.status !== 302) return this.failed(tab, 'launch', started)
    if (fault === 'dropLaunch') {
      counts.faults.launchAnswersDropped++
      this.log(`${tab.id} launch ${tab.ehr.name}/${tab.patient} on ${first.name}: answer LOST`)
      tab.state = 'lost'
      return null
    }
    this.jar.apply(started.setCookies)
    let back: URL
    try {
      back = await tab.ehr.ehr.authorize(String(started.headers.location))
    } catch (err) {
      counts.networkErrors++
      this.run.incident(`EHR ${tab.ehr.name} authorize failed (${this.name}): ${(err as Error).message}`, this.trace)
      tab.state = 'lost'
      return null
    }
    const second = this.rng.pick(this.run.opts.apps)
    const answer = await this.send(second, 'GET', `${back.pathname}${back.search}`)
    if (answer === null || answer.status !== 302) return this.failed(tab, `callback on ${second.name}`, answer)
    counts.launchesCompleted++
    this.failedInARow = 0
    const selector = new URL(String(answer.headers.location), 'http://app.test').searchParams.get('patient') ?? ''
    this.log(`${tab.id} launch ${tab.ehr.name}/${tab.patient} via ${first.name}${started.sids}, callback ${second.name}${answer.sids} -> ?patient=${selector}${fault === 'none' ? '' : ` [${fault}]`}`)
    this.checkSelector(tab, iss, selector)
    if (fault === 'dropCallback') {
      counts.faults.callbacksDropped++
      tab.state = 'lost'
      return null
    }
    return { tab, answer, selector, heldAfter: 0 }
  }

  failed(tab: Tab, step: string, answer: Answer | null): null {
    this.failedInARow++
    if (answer !== null) bump(this.run.counts.launchRefusals, `${step.split(' ')[0]} ${statusKey(answer)} | ${messageOf(answer)}`)
    const launchCookies = (this.jar.header() ?? '').split('; ').filter((cookie) => /^(__Host-)?smart-launch-/.test(cookie)).length
    this.log(`${tab.id} ${step} ${tab.ehr.name}/${tab.patient} -> ${answer ? `${statusKey(answer)}${answer.sids}` : 'no answer'} (${launchCookies} launch cookies held)`)
    if (answer?.status === 400 && this.run.notes.length < 5) this.run.incident(`${tab.id} ${step} refused: ${statusKey(answer)} ${messageOf(answer)}`, this.trace, this.run.notes)
    tab.state = 'lost'
    return null
  }

  /** S35: the selector names the tab's patient, and no other (EHR, patient) ever got the same one. */
  checkSelector(tab: Tab, iss: string, selector: string): void {
    const identity = `${iss} ${tab.patient}`
    const before = this.run.selectors.get(selector)
    if (before === undefined) this.run.selectors.set(selector, identity)
    const namesPatient = selector === tab.patient || selector.startsWith(`${tab.patient}_`)
    if ((before !== undefined && before !== identity) || !namesPatient) {
      this.run.counts.wrong++
      this.run.incident(`WRONG: callback for ${identity} gave ?patient=${selector}${before && before !== identity ? `, already given to ${before}` : ''} (${this.name})`, this.trace)
    }
  }

  deliver(delivery: Delivery, late = false): void {
    const { tab, answer, selector } = delivery
    this.jar.apply(answer.setCookies)
    const reordered = late && this.deliveries > delivery.heldAfter
    if (reordered) {
      this.run.counts.faults.heldAppliedAfterAnother++
      this.epoch++
    }
    this.deliveries++
    tab.selector = selector
    tab.state = 'open'
    // The late answer's own tab is behind the later ones too.
    tab.epoch = reordered ? this.epoch - 1 : this.epoch
  }

  /** Delivers now, or holds it for a later step ('holdCallback'). */
  settle(delivery: Delivery | null, fault: Fault): void {
    if (delivery === null) return
    if (fault === 'holdCallback') {
      this.run.counts.faults.callbacksHeld++
      this.held.push({ ...delivery, heldAfter: this.deliveries })
      return
    }
    this.deliver(delivery)
  }

  releaseHeld(): void {
    const [delivery] = this.held.splice(this.rng.int(this.held.length), 1)
    this.log(`${delivery.tab.id} held callback answer applied now (?patient=${delivery.selector}, sid →${shortSid(setSidOf(delivery.answer.setCookies))})`)
    this.deliver(delivery, true)
  }

  /** GET /api/context (or /api/patient, a FHIR read) with the tab's selector; every 2xx is checked. */
  async call(tab: Tab, fhirRead: boolean): Promise<void> {
    const { counts } = this.run
    const selector = tab.selector!
    const app = this.rng.pick(this.run.opts.apps)
    const path = fhirRead ? '/api/patient' : '/api/context'
    counts.calls++
    const answer = await this.send(app, 'GET', path, { 'x-active-patient': selector })
    if (answer === null) return
    if (answer.status < 200 || answer.status >= 300) {
      bump(counts.refusals, statusKey(answer))
      const closed = tab.state === 'closed' || Math.max(this.closedAt.get(identityOf(tab)) ?? 0, this.closedAt.get('*') ?? 0) >= tab.launchedAt
      const kind = closed ? 'closed tab'
        : this.planted ? 'open tab, in a browser the attacker planted its cookie in'
          : tab.epoch !== this.epoch ? 'open tab, session cookie set back since (an answer applied after a later one)' : 'open tab'
      bump(counts.refusalDetail, `${kind} | ${statusKey(answer)} | ${messageOf(answer)}`)
      this.log(`${tab.id} ${path} ${selector} on ${app.name} -> ${statusKey(answer)}${answer.sids}`)
      const sid = this.jar.get('connect.sid')
      if (kind === 'open tab' && this.run.notes.length < 5) {
        const stored = sid && this.run.opts.inspect ? `\n  the store:\n    ${(await this.run.opts.inspect(sid).catch((err: Error) => err.message)).split('\n').join('\n    ')}` : ''
        this.run.incident(`${tab.id} (${tab.ehr.name}/${tab.patient}, open) refused: ${statusKey(answer)} ${messageOf(answer)}${stored}`, this.trace, this.run.notes)
      }
      return
    }
    counts.ok++
    const iss = trimSlash(tab.ehr.ehr.iss)
    let body: { id?: string; fhirServer?: string; patient?: { id?: string } } = {}
    try {
      body = JSON.parse(answer.body) as typeof body
    } catch {
      // not JSON: the checks below fail
    }
    const bodyPatient = fhirRead ? body.id : body.patient?.id
    const right = trimSlash(header(answer, 'x-smart-iss') ?? '') === iss && header(answer, 'x-smart-patient') === tab.patient &&
      header(answer, 'x-active-patient') === selector && bodyPatient === tab.patient && (fhirRead || trimSlash(body.fhirServer ?? '') === iss)
    this.log(`${tab.id} ${path} ${selector} on ${app.name} -> ${answer.status}${answer.sids}${right ? '' : ' WRONG'}`)
    if (!right) {
      counts.wrong++
      this.run.incident(`WRONG: ${tab.id} launched ${tab.ehr.name} ${iss} ${tab.patient}, sent X-Active-Patient ${selector} to ${app.name} ${path}, got ${describeAnswer(answer)}`, this.trace)
    } else if (this.quietlyClosed.has(identityOf(tab))) {
      counts.servedAfterLogout++
      this.run.incident(`served after logout: ${tab.id} ${selector} closed (204) and not launched since, ${app.name} ${path} answered ${answer.status}`, this.trace)
    }
  }

  /** POST /logout for one tab's launch (`tab`), or for all of them. */
  async logout(tab: Tab | null): Promise<void> {
    const isQuiet = () => this.inFlight === 0 && this.held.length === 0 && !this.tabs.some((t) => t.state === 'launching')
    const quietBefore = isQuiet()
    // From when it leaves: a request answered before it may have been refused because of it.
    this.closedAt.set(tab ? identityOf(tab) : '*', Date.now())
    const app = this.rng.pick(this.run.opts.apps)
    const answer = await this.send(app, 'POST', '/logout', tab ? { 'x-active-patient': tab.selector! } : { 'sec-fetch-site': 'same-origin' })
    this.log(`logout ${tab ? `${tab.id} ${tab.selector}` : 'ALL'} on ${app.name} -> ${answer ? `${statusKey(answer)}${answer.sids}` : 'no answer'}`)
    if (answer === null || answer.status !== 204) return
    const quiet = quietBefore && isQuiet()
    const closing = this.tabs.filter((t) => t.state === 'open' && (tab === null || t.selector === tab.selector))
    for (const t of closing) {
      t.state = 'closed'
      if (quiet) this.quietlyClosed.add(identityOf(t))
    }
    if (tab) this.run.counts.logouts++
    else this.run.counts.logoutsAll++
  }

  /** One random step of this browser. */
  async step(): Promise<void> {
    const { rng } = this
    if (this.failedInARow >= CLEAR_COOKIES_AFTER && this.inFlight === 0 && !this.tabs.some((t) => t.state === 'launching')) return this.clearCookies()
    const callable = this.tabs.filter((t) => t.selector !== null && (t.state === 'open' || t.state === 'closed'))
    const open = this.tabs.filter((t) => t.state === 'open')
    const op = rng.weighted({
      newTab: this.tabs.length < 2 ? 30 : 8,
      burst: 4,
      relaunch: this.tabs.some((t) => t.state !== 'launching') ? 6 : 0,
      call: callable.length ? 45 : 0,
      fhirRead: open.length ? 8 : 0,
      logout: open.length ? 5 : 0,
      logoutAll: open.length ? 1 : 0,
      release: this.held.length ? 12 : 0,
      parallel: callable.length ? 5 : 0,
    })
    switch (op) {
      case 'newTab': return this.launchTab(this.newTab(rng.pick(this.run.opts.ehrs), rng.pick(this.run.opts.patients)))
      case 'burst': return this.burst()
      case 'relaunch': {
        const tab = rng.pick(this.tabs.filter((t) => t.state !== 'launching'))
        this.run.counts.relaunches++
        return this.launchTab(tab)
      }
      case 'call': return this.call(rng.pick(callable), false)
      case 'fhirRead': return this.call(rng.pick(open), true)
      case 'logout': return this.logout(rng.pick(open))
      case 'logoutAll': return this.logout(null)
      case 'release': return this.releaseHeld()
      case 'parallel': {
        // Several tabs at once: calls, a launch, a close.
        this.run.counts.faults.parallelSteps++
        const work = Array.from({ length: 2 + rng.int(3) }, (): Promise<void> => {
          const roll = rng.int(10)
          if (roll < 6) return this.call(rng.pick(callable), false)
          if (roll < 8) return this.launchTab(this.newTab(rng.pick(this.run.opts.ehrs), rng.pick(this.run.opts.patients)))
          const target = rng.pick(callable)
          return target.state === 'open' ? this.logout(target) : this.call(target, false)
        })
        await Promise.all(work)
      }
    }
  }

  /** What a user does whose launches keep failing: clears the site's cookies; every tab is gone with them. */
  clearCookies(): void {
    this.log(`${this.failedInARow} launches refused in a row: cookies cleared (${this.jar.size} of them), ${this.tabs.length} tabs closed`)
    this.run.counts.faults.cookiesCleared++
    this.jar.clear()
    this.tabs = []
    this.held.length = 0
    this.quietlyClosed.clear()
    this.failedInARow = 0
    this.planted = false
    this.epoch++
  }

  drawFault(): Fault {
    return this.rng.weighted<Fault>({ none: 70, dropCallback: 12, holdCallback: 15, dropLaunch: 3 })
  }

  async launchTab(tab: Tab, fault: Fault = this.drawFault()): Promise<void> {
    this.settle(await this.launch(tab, fault), fault)
  }

  /** 2–4 tabs launch at once; their callback answers arrive in a random order (some lost or held). */
  async burst(): Promise<void> {
    this.run.counts.bursts++
    const tabs = Array.from({ length: 2 + this.rng.int(3) }, () => this.newTab(this.rng.pick(this.run.opts.ehrs), this.rng.pick(this.run.opts.patients)))
    const faults = tabs.map(() => this.drawFault())
    const deliveries = await Promise.all(tabs.map((tab, i) => this.launch(tab, faults[i])))
    for (const i of this.rng.shuffle(tabs.map((_, i) => i))) this.settle(deliveries[i], faults[i])
  }

  async loop(): Promise<void> {
    while (!this.run.over) await this.step()
  }

  /** After the run: the held answers arrive, and every tab that can call does, once per process. */
  async finish(): Promise<void> {
    while (this.held.length) this.releaseHeld()
    for (const tab of this.tabs.filter((t) => t.selector !== null && t.state !== 'launching')) {
      for (const _app of this.run.opts.apps) await this.call(tab, false)
    }
  }
}

const ATTACKER_PATIENT = 'intruder-1'

/** The run's browsers; `create` makes one (null beyond the bound) whose steps begin at `start`. */
interface Browsers {
  all: SimBrowser[]
  create(): SimBrowser | null
  start(browser: SimBrowser): void
}

/**
 * S34/S35 from outside: an attacker with a launch of its own (a patient no victim launches) plants its session
 * cookie in a victim browser, lets the victim launch, then asks with its own cookies for the victim's selector
 * and with no selector at all. Any 2xx not for its own launch is `leaked`.
 */
async function attack(run: Run, rng: Rng, browsers: Browsers, n: number): Promise<void> {
  const { counts, opts } = run
  const attacker = new SimBrowser(`attacker${n}`, run, rng.fork(1000 + n))
  const ehr = rng.pick(opts.ehrs)
  const own = attacker.newTab(ehr, ATTACKER_PATIENT)
  await attacker.launchTab(own, 'none')
  const planted = attacker.jar.get('connect.sid')
  if (own.state !== 'open' || planted === undefined) return
  // A new browser (its own steps start after this launch), or one in the middle of its steps.
  const fresh = rng.chance(0.5) ? browsers.create() : null
  const victim = fresh ?? rng.pick(browsers.all)
  counts.attacks++
  victim.jar.plant('connect.sid', planted)
  victim.planted = true
  victim.log(`attacker${n} planted its connect.sid ${shortSid(planted)} (its launch: ${ehr.name}/${ATTACKER_PATIENT} ${own.selector})`)
  const tab = victim.newTab(rng.pick(opts.ehrs), rng.pick(opts.patients))
  await victim.launchTab(tab, 'none')
  if (fresh) browsers.start(fresh)
  if (tab.state === 'open') counts.attacksLaunched++
  const targets = [...new Set([tab, ...victim.tabs].flatMap((t) => (t.selector !== null ? [t.selector] : [])))]
  for (const selector of [...targets.slice(0, 3), null]) {
    for (const app of opts.apps) {
      counts.attackerCalls++
      const answer = await attacker.send(app, 'GET', '/api/context', { 'x-active-patient': selector ?? undefined })
      if (answer === null) continue
      attacker.log(`GET /api/context ${selector ?? '(no X-Active-Patient)'} on ${app.name} -> ${answer.status}${answer.sids}`)
      if (answer.status < 200 || answer.status >= 300) {
        bump(counts.attackerRefusals, statusKey(answer))
        continue
      }
      const mine = header(answer, 'x-smart-patient') === ATTACKER_PATIENT && trimSlash(header(answer, 'x-smart-iss') ?? '') === trimSlash(ehr.ehr.iss)
      if (!mine) {
        counts.leaked++
        run.incident(`LEAKED: attacker${n} asked ${app.name} for ${selector ?? '(no header)'} of ${victim.name} and got ${describeAnswer(answer)}`, [...attacker.trace, ...victim.trace])
      }
    }
  }
}

/** Runs the chaos for `durationMs` (plus the steps in flight and the final calls); never throws for what it finds. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const run = new Run({ patients: ['patient-1', 'patient-2', 'patient-3'], ...options })
  const root = new Rng(options.seed)
  const loops: Array<Promise<void>> = []
  const maxBrowsers = options.maxBrowsers ?? 8
  const browsers: Browsers = {
    all: [],
    create() {
      if (this.all.length >= maxBrowsers) return null
      const browser = new SimBrowser(`b${this.all.length + 1}`, run, root.fork(this.all.length))
      this.all.push(browser)
      return browser
    },
    start: (browser) => void loops.push(browser.loop()),
  }
  for (let i = 0; i < (options.browsers ?? 4); i++) browsers.start(browsers.create()!)

  const background: Array<Promise<void>> = []
  const every = async (ms: number, rng: Rng, work: (n: number) => Promise<void> | void): Promise<void> => {
    for (let n = 1; ; n++) {
      await sleep(ms / 2 + rng.int(ms))
      if (run.over) return
      await work(n)
    }
  }
  const attackEveryMs = options.attackEveryMs ?? 1500
  const revokeEveryMs = options.revokeEveryMs ?? 2000
  if (attackEveryMs > 0) {
    const rng = root.fork(500)
    background.push(every(attackEveryMs, rng, (n) => attack(run, rng, browsers, n)))
  }
  if (revokeEveryMs > 0) {
    const rng = root.fork(600)
    background.push(every(revokeEveryMs, rng, () => {
      rng.pick(options.ehrs).ehr.expireAccessTokens()
      run.counts.faults.tokensRevoked++
    }))
  }
  await Promise.all(background)
  // Victims join while the loops run: wait until no loop is left that has not ended.
  for (let i = 0; i < loops.length; i++) await loops[i]
  await Promise.all(browsers.all.map((browser) => browser.finish()))
  return { seed: options.seed, elapsedMs: Date.now() - run.started, counts: run.counts, incidents: run.incidents, notes: run.notes }
}

const sum = (map: Record<string, number>): number => Object.values(map).reduce((a, b) => a + b, 0)
const list = (map: Record<string, number>): string =>
  Object.entries(map).sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => `${key}: ${n}`).join(', ') || 'none'

/** One line per run: the counts the issue asks for, then the faults and refusals in detail. */
export function summarize(report: ChaosReport): string {
  const c = report.counts
  const f = c.faults
  return [
    `seed ${report.seed} (${(report.elapsedMs / 1000).toFixed(1)} s): launches ${c.launchesStarted} started / ${c.launchesCompleted} completed` +
      ` (${c.relaunches} relaunches, ${c.bursts} bursts), calls ${c.calls}, 2xx ${c.ok}, refusals ${sum(c.refusals)}, wrong ${c.wrong}, leaked ${c.leaked},` +
      ` 500s ${c.serverErrors}, no answer ${c.networkErrors}, served after logout ${c.servedAfterLogout}`,
    `  faults: ${f.callbacksDropped} callback answers lost, ${f.callbacksHeld} held (${f.heldAppliedAfterAnother} applied after a later one),` +
      ` ${f.launchAnswersDropped} launch answers lost, ${f.tokensRevoked} token revocations, ${f.parallelSteps} parallel steps,` +
      ` ${f.cookiesCleared} browsers' cookies cleared after ${CLEAR_COOKIES_AFTER} launches refused in a row;` +
      ` logouts ${c.logouts} + ${c.logoutsAll} of all; attacks ${c.attacks} (${c.attacksLaunched} victims launched, ${c.attackerCalls} attacker calls)`,
    `  refusals: ${list(c.refusals)}; attacker refused: ${list(c.attackerRefusals)}`,
    ...Object.entries(c.refusalDetail).sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => `    ${n} × ${key}`),
    `  launch refusals: ${sum(c.launchRefusals)}`,
    ...Object.entries(c.launchRefusals).sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => `    ${n} × ${key}`),
  ].join('\n')
}

/** The counts of several runs added up. */
export function total(reports: readonly ChaosReport[]): ChaosCounts {
  const out = newCounts()
  const add = (into: Record<string, number>, from: Record<string, number>) => {
    for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n
  }
  for (const { counts } of reports) {
    for (const key of Object.keys(counts) as Array<keyof ChaosCounts>) {
      const value = counts[key]
      if (typeof value === 'number') (out[key] as number) += value
    }
    add(out.refusals, counts.refusals)
    add(out.launchRefusals, counts.launchRefusals)
    add(out.refusalDetail, counts.refusalDetail)
    add(out.attackerRefusals, counts.attackerRefusals)
    add(out.faults, counts.faults)
  }
  return out
}

export const refusalCount = (counts: ChaosCounts): number => sum(counts.refusals)

/** What the app processes did during one run: refresh grants sent and refused (S31, S33), and their 5xx by cause. */
export interface ProcessDelta {
  refreshSent: number
  refreshRefused: number
  serverErrors: Record<string, number>
}

export function processDelta(before: readonly ProcessReport[], after: readonly ProcessReport[]): ProcessDelta {
  const delta: ProcessDelta = { refreshSent: 0, refreshRefused: 0, serverErrors: {} }
  after.forEach((report, i) => {
    delta.refreshSent += report.refreshGrants.sent - before[i].refreshGrants.sent
    delta.refreshRefused += report.refreshGrants.refused - before[i].refreshGrants.refused
    for (const [key, n] of Object.entries(report.serverErrors)) {
      const added = n - (before[i].serverErrors[key] ?? 0)
      if (added > 0) delta.serverErrors[key] = (delta.serverErrors[key] ?? 0) + added
    }
  })
  return delta
}

export function summarizeProcesses(delta: ProcessDelta): string {
  return [
    `  app processes: ${delta.refreshSent} refresh grants sent, ${delta.refreshRefused} refused by the EHR; 5xx answered: ${sum(delta.serverErrors)}`,
    ...Object.entries(delta.serverErrors).map(([key, n]) => `    ${n} × ${key}`),
  ].join('\n')
}
