import { SmartError } from '../errors'
import { permits, type FhirInteraction } from '../oauth/scopes'
import { boundedAnswer, type BufferedAnswer, type HttpLimits } from '../oauth/http'
import type { FhirContextItem, LaunchRecord } from '../storage/records'
import { contextReference, FhirApi, userReference } from './fhir-api'
import { checkTtlSeconds, type FhirReadCache } from './fhir-cache'
import { FHIR_ID, FHIR_RESOURCE_TYPE } from './fhir-ids'
import type { FhirContextReference, FhirRequestInit, FhirUserReference } from './fhir-types'
import type { Observation, Observe } from '../observe'

export type { FhirRequestInit } from './fhir-types'

/** How a ReadyClient gets a fresh access token after a 401: the SmartClient's single-flight refresh. */
export type AccessRefresher = (staleAccessToken: string) => Promise<string>

export interface ReadyClientInit {
  launch: LaunchRecord
  accessToken: string
  http: HttpLimits
  /** null when refresh on 401 is off (autoRefresh: false). */
  refresh: AccessRefresher | null
  /**
   * Where `cache` options keep answers (it outlives the per-request ReadyClient), and the scope of this
   * client's entries in it: what no other session or patient shares (session id and launch).
   */
  cache: { store: FhirReadCache; scope: string }
  /** Spans and log lines for FHIR requests (the configuration's instrumentation). */
  observe: Observe
}

/** A span attribute naming what was asked for, never which: the resource type (or operation), no id, no query. */
function resourceTypeOf(url: URL, base: string): string {
  const [first = ''] = url.href.startsWith(base) ? url.href.slice(base.length).split(/[/?#]/, 1) : ['']
  if (first === '') return '(base)'
  return /^[A-Za-z]{1,64}$|^\$[A-Za-z-]{1,64}$|^_history$/.test(first) ? first : '(other)'
}

const MAX_FHIR_RESPONSE_BYTES = 50 * 1024 * 1024
/** As `Response.text()` decodes: UTF-8, a byte-order mark dropped, invalid bytes replaced. */
const UTF8 = new TextDecoder()
/** What the URL parser strips from the start of its input (C0 controls and space). */
const LEADING_C0_OR_SPACE = /^[\u0000-\u0020]+/
/** One slash (the parser reads `\` as `/`) not followed by another: a path, not `//host`. Tabs and newlines vanish in parsing. */
const PATH_ABSOLUTE = /^[/\\](?![/\\\t\n\r])/

/** What a ReadyClient derives from its launch record by parsing URLs. */
interface Derived {
  base: string
  origin: string
  user: { fhirUser: string; resourceType: string; id: string } | null
}

/**
 * Derived once per stored launch record, not per request: the middleware serves many requests from the
 * same record object (this process's copy), and URL parsing is the costliest part of making a client.
 */
const derivedByLaunch = new WeakMap<LaunchRecord, Derived>()

function derive(launch: LaunchRecord): Derived {
  let derived = derivedByLaunch.get(launch)
  if (!derived) {
    const base = launch.iss.endsWith('/') ? launch.iss : `${launch.iss}/`
    derived = { base, origin: new URL(base).origin, user: userOf(launch.idTokenClaims, launch.iss) }
    derivedByLaunch.set(launch, derived)
  }
  return derived
}

/** `fhirUser` may be relative (`Practitioner/123`); it resolves against the FHIR base (SECURITY S20). */
function userOf(claims: Record<string, unknown> | null, fhirServer: string): { fhirUser: string; resourceType: string; id: string } | null {
  const fhirUser = claims?.fhirUser
  if (typeof fhirUser !== 'string' || fhirUser === '') return null
  let absolute: URL
  try {
    absolute = new URL(fhirUser, fhirServer.endsWith('/') ? fhirServer : `${fhirServer}/`)
  } catch {
    return null
  }
  // `<…>/Practitioner/123`: a resource type and an id, or no user (a reference the app could not read).
  const [resourceType = '', id = ''] = absolute.pathname.split('/').filter(Boolean).slice(-2)
  return FHIR_RESOURCE_TYPE.test(resourceType) && FHIR_ID.test(id) ? { fhirUser: absolute.href, resourceType, id } : null
}

/**
 * Freezes what a ReadyClient hands out of the launch record, in place: the record is this process's copy of the
 * stored session, shared by the session's requests for up to 2 s.
 */
function frozen<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value
  Object.freeze(value)
  for (const item of Object.values(value)) frozen(item)
  return value
}

/**
 * A FHIR client for one completed launch: its context, `request()` with the session's bearer token,
 * and typed R4 helpers (`read`, `search`, `pages`, `resources`, `create`, `update`, `delete`, `batch`,
 * `transaction`). Serializes (`toJSON`, `util.inspect`) without any token.
 *
 * Frozen, with its context objects (`patient`, `encounter`, `user`, `fhirContext`, `idTokenClaims`): the
 * requests of one session may be served the same client, so a write to it would reach the others. Keep
 * per-request data on `res.locals`.
 *
 * @example
 * app.get('/api/patient', requireSmartContext(opts), async (req, res) => {
 *   res.json(await req.smart.patient?.read())
 * })
 */
export class ReadyClient extends FhirApi {
  /** The FHIR base URL (`iss`) the launch came from. */
  readonly fhirServer: string
  /**
   * The value that selects this launch as `X-Active-Patient`: the patient's id in an app of one EHR, else
   * `<patient id>_<EHR tag>` (README, "Several patients in several tabs").
   */
  readonly activePatient: string
  /** The launch's patient, `{ id, reference }`, with `read()`. */
  readonly patient: FhirContextReference<'Patient'> | null
  /** The launch's encounter, `{ id, reference }`, with `read()`. */
  readonly encounter: FhirContextReference<'Encounter'> | null
  /** The signed-in user, from the id_token's `fhirUser`, with `read()`. */
  readonly user: FhirUserReference | null
  /** The granted scope (it may be narrower than requested). */
  readonly scope: string
  readonly intent: string | null
  readonly needPatientBanner: boolean
  readonly smartStyleUrl: string | null
  readonly fhirContext: FhirContextItem[]
  readonly idTokenClaims: Record<string, unknown> | null
  readonly #origin: string
  readonly #base: string
  readonly #http: HttpLimits
  readonly #refresh: AccessRefresher | null
  readonly #cache: { store: FhirReadCache; scope: string }
  readonly #observe: Observe
  #accessToken: string

  constructor(init: ReadyClientInit) {
    super()
    const { launch } = init
    this.fhirServer = launch.iss
    this.activePatient = launch.selector
    this.patient = contextReference(this, 'Patient', launch.patient)
    this.encounter = contextReference(this, 'Encounter', launch.encounter)
    const derived = derive(launch)
    this.user = userReference(this, derived.user)
    this.scope = launch.scope
    this.intent = launch.intent
    this.needPatientBanner = launch.needPatientBanner
    this.smartStyleUrl = launch.smartStyleUrl
    this.fhirContext = frozen(launch.fhirContext)
    this.idTokenClaims = frozen(launch.idTokenClaims)
    this.#base = derived.base
    this.#origin = derived.origin
    this.#http = init.http
    this.#refresh = init.refresh
    this.#accessToken = init.accessToken
    this.#cache = init.cache
    this.#observe = init.observe
    Object.freeze(this)
  }

  /**
   * Resolves a path against the FHIR base, then checks the origin of the URL that will be requested
   * (S20). Every input goes through the same WHATWG parser the request will use, because that parser
   * strips leading spaces and control characters, drops tabs and newlines, and reads `\` as `/`: an
   * input that does not look absolute may still name another host. The check is on the result, never on
   * how the input is spelt.
   */
  #resolve(pathOrUrl: string): URL {
    if (typeof pathOrUrl !== 'string') throw new TypeError(`request: pathOrUrl must be a string, got ${typeof pathOrUrl}`)
    // A path with one leading slash means "under the FHIR base", not "from the server root".
    const input = pathOrUrl.replace(LEADING_C0_OR_SPACE, '').replace(PATH_ABSOLUTE, '')
    const url = URL.parse(input, this.#base)
    if (url === null) throw new SmartError('FORBIDDEN_URL', 'The FHIR request URL is not a valid URL')
    if (url.origin !== this.#origin) {
      throw new SmartError('FORBIDDEN_URL', `Refusing to send the access token to ${url.origin}: not the FHIR server's origin`)
    }
    // Credentials in the URL would travel beside the bearer token; fetch refuses them anyway.
    if (url.username !== '' || url.password !== '') throw new SmartError('FORBIDDEN_URL', 'Refusing a FHIR request URL with credentials in it')
    return url
  }

  async #send(url: URL, init: FhirRequestInit, accessToken: string): Promise<BufferedAnswer> {
    const headers: Record<string, string> = { accept: 'application/fhir+json', ...init.headers, authorization: `Bearer ${accessToken}` }
    let body: string | undefined
    if (init.body !== undefined) {
      body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body)
      headers['content-type'] ??= 'application/fhir+json'
    }
    try {
      return await boundedAnswer(this.#http, url, { method: init.method ?? 'GET', headers, body }, MAX_FHIR_RESPONSE_BYTES)
    } catch (err) {
      throw new SmartError('FHIR_REQUEST_FAILED', `The FHIR server did not answer ${url.pathname}: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * Sends a FHIR request with the bearer token. On a 401 it refreshes once (single-flight) and retries
   * once with the new token. A non-2xx answer throws `FHIR_REQUEST_FAILED` with the server's status
   * (and its OperationOutcome as `operationOutcome`). An absolute URL on another origin is
   * `FORBIDDEN_URL`, before anything is sent.
   *
   * With `cache` (GET only), an answer kept for this session and patient is returned without a request.
   * A write through this client to the same URL drops what was kept for it.
   *
   * @example
   * const bundle = await req.smart.request<fhir4.Bundle>('Observation?patient=patient-1&_count=10')
   * const org = await req.smart.request('Organization/1', { cache: { ttlSeconds: 300 } })
   */
  async request<T = unknown>(pathOrUrl: string, init: FhirRequestInit = {}): Promise<T> {
    const url = this.#resolve(pathOrUrl)
    const method = (init.method ?? 'GET').toUpperCase()
    if (init.cache !== undefined) {
      if (method !== 'GET') throw new TypeError(`request: cache applies to GET only, not ${method}`)
      checkTtlSeconds(init.cache?.ttlSeconds)
    }
    const cache = this.#cache
    const key = `${cache.scope}\u0000${url.href}`
    // A write through this client must not be hidden by its own cached read of the same URL.
    if (method !== 'GET') cache.store.delete(key)
    if (init.cache) {
      const kept = cache.store.get(key)
      if (kept !== undefined) return kept as T
    }
    const answer = await this.#exchange(url, init)
    if (init.cache && answer !== undefined) cache.store.set(key, answer, init.cache.ttlSeconds)
    return answer as T
  }

  /** One request, with one refresh-and-retry on 401; the parsed answer, or a SmartError. */
  #exchange(url: URL, init: FhirRequestInit): Promise<unknown> {
    const attributes = { 'http.request.method': (init.method ?? 'GET').toUpperCase(), 'fhir.resource_type': resourceTypeOf(url, this.#base), 'smart.iss': this.fhirServer }
    return this.#observe('fhir_request', attributes, (observation) => this.#exchangeOnce(url, init, observation))
  }

  async #exchangeOnce(url: URL, init: FhirRequestInit, observation: Observation): Promise<unknown> {
    // The token this request was sent with is the stale one: another request on this client may have renewed
    // the field meanwhile, and naming that one would refresh again.
    const sent = this.#accessToken
    let response = await this.#send(url, init, sent)
    const refresh = response.status === 401 ? this.#refresh : null
    if (refresh) {
      const fresh = await refresh(sent)
      this.#accessToken = fresh
      response = await this.#send(url, init, fresh)
    }
    observation.set({ 'http.response.status_code': response.status, 'smart.retried_after_refresh': refresh !== null })
    const raw = response.body === null ? '' : UTF8.decode(response.body)
    const ok = response.status >= 200 && response.status < 300
    const type = response.headers.get('content-type') ?? ''
    let parsed: unknown = raw
    if (raw !== '' && /json/i.test(type)) {
      try {
        parsed = JSON.parse(raw)
      } catch (err) {
        if (ok) throw new SmartError('FHIR_REQUEST_FAILED', `The FHIR server sent malformed JSON for ${url.pathname}`, { cause: err })
      }
    }
    if (!ok) {
      const outcome = (parsed as { resourceType?: unknown } | null)?.resourceType === 'OperationOutcome' ? parsed : undefined
      throw new SmartError('FHIR_REQUEST_FAILED', `The FHIR server answered ${response.status} to ${init.method ?? 'GET'} ${url.pathname}`, {
        // A redirect is not followed (the token must not travel with it): report it as a bad gateway.
        status: response.status >= 400 ? response.status : 502,
        operationOutcome: outcome,
      })
    }
    return raw === '' ? undefined : parsed
  }

  /** The launch context, without tokens. */
  /**
   * Whether the granted scope lets the app do `interaction` on `resourceType` — in either SMART scope syntax
   * (`patient/Observation.read`, `patient/Observation.rs`), in any context (patient, user, system).
   *
   * @example
   * if (!req.smart.permits('create', 'Observation')) return res.status(403).send('This EHR did not grant writing vital signs')
   */
  permits(interaction: FhirInteraction, resourceType: string): boolean {
    return permits(this.scope, interaction, resourceType)
  }

  toJSON(): Record<string, unknown> {
    return {
      fhirServer: this.fhirServer,
      activePatient: this.activePatient,
      patient: this.patient,
      encounter: this.encounter,
      user: this.user,
      scope: this.scope,
      intent: this.intent,
      needPatientBanner: this.needPatientBanner,
      smartStyleUrl: this.smartStyleUrl,
      fhirContext: this.fhirContext,
      idTokenClaims: this.idTokenClaims,
    }
  }
}
