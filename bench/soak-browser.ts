/**
 * One simulated browser of the soak (bench/soak.ts): tabs that launch patients (one at a time, or two tabs'
 * callbacks at once on different instances), call the API with their `X-Active-Patient` on either instance,
 * close a patient or all of them, and launch again. It knows which patient each tab launched and checks every
 * answer against it: the status, `X-Active-Patient`, `X-Smart-Patient` and the body.
 */
import type { MockEhr } from '../lib/testing'
import { applySetCookies } from '../__tests__/helpers/cookie-jar'

export interface Instance {
  name: string
  url: string
}

/** One completed launch: the refresh grants it caused are listed under its label by the app processes. */
export interface LaunchTrace {
  label: string
  patient: string
  /** When its callback was sent: its first access token was issued after that. */
  callbackSentAt: number
}

/** What every browser adds to. */
export class Tally {
  requests = 0
  expectedRefusals = 0
  readonly errors: string[] = []
  readonly wrongPatient: string[] = []
  readonly latencyMs: { api: number[]; other: number[] } = { api: [], other: [] }
  readonly actions = { launches: 0, twoTabLaunches: 0, relaunches: 0, apiCalls: 0, logouts: 0, logoutsAll: 0 }
  readonly launches: LaunchTrace[] = []
}

interface Answer {
  status: number
  headers: Headers
  body: string
  cookie: string | undefined
}

interface Tab {
  patient: string
  selector: string
  label: string
}

const PATIENTS = ['patient-1', 'patient-2', 'patient-3']
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function json(body: string): Record<string, unknown> | null {
  try {
    return JSON.parse(body) as Record<string, unknown>
  } catch {
    return null
  }
}

export class Browser {
  #cookie: string | undefined
  #tabs: Tab[] = []
  #launchCount = 0
  readonly #closed = new Set<string>()

  constructor(
    private readonly id: number,
    private readonly apps: readonly Instance[],
    private readonly ehr: MockEhr,
    private readonly tally: Tally,
  ) {}

  async run(until: number): Promise<void> {
    while (Date.now() < until) {
      await this.#step().catch((err: unknown) => this.#error(`browser ${this.id}: ${(err as Error).message}`))
      await sleep(100 + Math.random() * 500)
    }
  }

  async #step(): Promise<void> {
    const roll = Math.random()
    const notLaunched = PATIENTS.filter((patient) => !this.#tabs.some((tab) => tab.patient === patient))
    if (this.#tabs.length === 0) return roll < 0.3 ? this.#launchTwoTabs(notLaunched) : this.#launch(pick(PATIENTS))
    // Launches live long enough (about a minute) to be refreshed several times.
    if (roll < 0.8) return this.#callApi(pick(this.#tabs), pick(this.apps))
    if (roll < 0.93) {
      await Promise.all(this.#tabs.map((tab, i) => this.#callApi(tab, this.apps[i % this.apps.length])))
      return
    }
    if (roll < 0.96) return this.#launch(pick(PATIENTS))
    if (roll < 0.975) return this.#launchTwoTabs(notLaunched)
    if (roll < 0.993) return this.#logout(pick(this.#tabs))
    return this.#logoutAll()
  }

  async #send(app: Instance, method: string, path: string, headers: Record<string, string> = {}, cookie = this.#cookie): Promise<Answer | null> {
    const started = performance.now()
    this.tally.requests++
    try {
      const res = await fetch(`${app.url}${path}`, {
        method, redirect: 'manual', signal: AbortSignal.timeout(30_000), headers: { ...headers, ...(cookie ? { cookie } : {}) },
      })
      const body = await res.text()
      const setCookies = res.headers.getSetCookie()
      const set = setCookies.length > 0 ? applySetCookies(cookie ?? '', setCookies) : undefined
      ;(path.startsWith('/api/') ? this.tally.latencyMs.api : this.tally.latencyMs.other).push(performance.now() - started)
      return { status: res.status, headers: res.headers, body, cookie: set }
    } catch (err) {
      this.#error(`${method} ${path} on ${app.name}: ${(err as Error).message}`)
      return null
    }
  }

  #error(message: string): void {
    this.tally.errors.push(message)
  }

  #expect(answer: Answer | null, status: number, what: string): answer is Answer {
    if (answer === null) return false
    if (answer.status === status) return true
    this.#error(`${what}: ${answer.status} instead of ${status}: ${answer.body.slice(0, 200)}`)
    return false
  }

  /** GET /launch on one instance, the EHR's authorization: the callback path to bring back. */
  async #start(patient: string): Promise<string | null> {
    const query = new URL(this.ehr.launchUrl('http://app.test/launch', { patient })).search
    const started = await this.#send(pick(this.apps), 'GET', `/launch${query}`)
    if (!this.#expect(started, 302, 'launch')) return null
    this.#cookie = started.cookie ?? this.#cookie
    const back = await this.ehr.authorize(started.headers.get('location')!)
    return `${back.pathname}${back.search}`
  }

  /** The launch a callback's redirect names (`?patient=`), as this browser's tabs now see it. */
  #completed(patient: string, answer: Answer, callbackSentAt: number): void {
    const selector = new URL(answer.headers.get('location')!, 'http://app.test').searchParams.get('patient')
    if (selector === null) return this.#error(`callback for ${patient}: no ?patient= in ${answer.headers.get('location')}`)
    const label = `${this.id}.${++this.#launchCount}`
    this.tally.launches.push({ label, patient, callbackSentAt })
    this.tally.actions.launches++
    if (this.#closed.has(patient)) this.tally.actions.relaunches++
    // Launching the same patient again replaces its launch and keeps its value: the tabs holding it go on.
    this.#tabs = this.#tabs.map((tab) => (tab.selector === selector ? { ...tab, patient, label } : tab))
    this.#tabs.push({ patient, selector, label })
  }

  async #launch(patient: string): Promise<void> {
    const callback = await this.#start(patient)
    if (callback === null) return
    const sentAt = Date.now()
    const back = await this.#send(pick(this.apps), 'GET', callback)
    if (!this.#expect(back, 302, `callback for ${patient}`)) return
    this.#cookie = back.cookie ?? this.#cookie
    this.#completed(patient, back, sentAt)
  }

  /** Two tabs' callbacks at the same moment on different instances; the browser keeps either Set-Cookie. */
  async #launchTwoTabs(candidates: string[]): Promise<void> {
    if (candidates.length < 2) return this.#launch(pick(PATIENTS))
    const [first, second] = [...candidates].sort(() => Math.random() - 0.5)
    const callbacks = [await this.#start(first), await this.#start(second)]
    if (callbacks.includes(null)) return
    const cookie = this.#cookie
    const sentAt = Date.now()
    const answers = await Promise.all(callbacks.map((path, i) => this.#send(this.apps[i % this.apps.length], 'GET', path!, {}, cookie)))
    this.tally.actions.twoTabLaunches++
    answers.forEach((answer, i) => {
      if (this.#expect(answer, 302, `two-tab callback for ${[first, second][i]}`)) this.#completed([first, second][i], answer, sentAt)
    })
    const kept = pick(answers.filter((answer) => answer?.cookie))
    this.#cookie = kept?.cookie ?? this.#cookie
  }

  async #callApi(tab: Tab, app: Instance): Promise<void> {
    const route = Math.random() < 0.5 ? '/api/context' : '/api/patient'
    this.tally.actions.apiCalls++
    const answer = await this.#send(app, 'GET', route, { 'x-active-patient': tab.selector, 'x-test-label': tab.label })
    if (!this.#expect(answer, 200, `${route} for ${tab.patient} on ${app.name}`)) return
    const body = json(answer.body)
    const served = route === '/api/context' ? (body?.patient as { id?: string } | undefined)?.id : body?.id
    const headers = [answer.headers.get('x-active-patient'), answer.headers.get('x-smart-patient')]
    if (headers[0] !== tab.selector || headers[1] !== tab.patient || served !== tab.patient) {
      this.tally.wrongPatient.push(`${route} on ${app.name} for ${tab.patient} (${tab.selector}): headers ${headers.join(', ')}, body ${served}`)
    }
  }

  async #logout(tab: Tab): Promise<void> {
    const answer = await this.#send(pick(this.apps), 'POST', '/logout', { 'x-active-patient': tab.selector })
    if (!this.#expect(answer, 204, `logout of ${tab.patient}`)) return
    this.tally.actions.logouts++
    this.#tabs = this.#tabs.filter((other) => other.selector !== tab.selector)
    this.#closed.add(tab.patient)
    await this.#probeEnded(tab)
  }

  async #logoutAll(): Promise<void> {
    const answer = await this.#send(pick(this.apps), 'POST', '/logout')
    if (!this.#expect(answer, 204, 'logout of every patient')) return
    this.tally.actions.logoutsAll++
    const ended = this.#tabs
    this.#tabs = []
    for (const tab of ended) this.#closed.add(tab.patient)
    if (ended.length > 0) await this.#probeEnded(pick(ended))
  }

  /** A page still holding a closed patient's value is refused (401 or 403), by either instance. */
  async #probeEnded(tab: Tab): Promise<void> {
    const app = pick(this.apps)
    const answer = await this.#send(app, 'GET', '/api/context', { 'x-active-patient': tab.selector })
    if (answer === null) return
    if (answer.status === 401 || answer.status === 403) {
      this.tally.expectedRefusals++
      return
    }
    if (answer.status === 200) this.tally.wrongPatient.push(`closed ${tab.patient} (${tab.selector}) still served on ${app.name}: ${answer.headers.get('x-smart-patient')}`)
    else this.#error(`closed ${tab.patient} on ${app.name}: ${answer.status} ${answer.body.slice(0, 200)}`)
  }
}
