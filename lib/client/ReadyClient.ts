import { SmartError } from '../errors'
import { boundedFetch, type HttpLimits } from '../oauth/http'
import type { FhirContextItem, LaunchRecord } from '../storage/records'

export interface FhirRequestInit {
  method?: string
  /** A JSON value (sent as `application/fhir+json`) or a string sent as is. */
  body?: unknown
  headers?: Record<string, string>
}

/** How a ReadyClient gets a fresh access token after a 401: the SmartClient's single-flight refresh. */
export type AccessRefresher = (staleAccessToken: string) => Promise<string>

interface ReadyClientInit {
  launch: LaunchRecord
  accessToken: string
  http: HttpLimits
  /** null when refresh on 401 is off (autoRefresh: false). */
  refresh: AccessRefresher | null
}

const MAX_FHIR_RESPONSE_BYTES = 50 * 1024 * 1024

function reference(type: string, id: string | null): { id: string; reference: string } | null {
  return id === null ? null : { id, reference: `${type}/${id}` }
}

/** `fhirUser` may be relative (`Practitioner/123`); it resolves against the FHIR base (SECURITY S20). */
function userOf(claims: Record<string, unknown> | null, fhirServer: string): ReadyClient['user'] {
  const fhirUser = claims?.fhirUser
  if (typeof fhirUser !== 'string' || fhirUser === '') return null
  let absolute: URL
  try {
    absolute = new URL(fhirUser, fhirServer.endsWith('/') ? fhirServer : `${fhirServer}/`)
  } catch {
    return null
  }
  const [resourceType, id] = absolute.pathname.split('/').filter(Boolean).slice(-2)
  return resourceType && id ? { fhirUser: absolute.href, resourceType, id } : null
}

/**
 * A FHIR client for one completed launch: its context, and `request()` with the session's bearer token.
 * Serializes (`toJSON`, `util.inspect`) without any token.
 *
 * @example
 * app.get('/api/patient', requireSmartContext(opts), async (req, res) => {
 *   res.json(await req.smart.request(`Patient/${req.smart.patient?.id}`))
 * })
 */
export class ReadyClient {
  /** The FHIR base URL (`iss`) the launch came from. */
  readonly fhirServer: string
  readonly patient: { id: string; reference: string } | null
  readonly encounter: { id: string; reference: string } | null
  /** The signed-in user, from the id_token's `fhirUser`. */
  readonly user: { fhirUser: string; resourceType: string; id: string } | null
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
  #accessToken: string

  constructor(init: ReadyClientInit) {
    const { launch } = init
    this.fhirServer = launch.iss
    this.patient = reference('Patient', launch.patient)
    this.encounter = reference('Encounter', launch.encounter)
    this.user = userOf(launch.idTokenClaims, launch.iss)
    this.scope = launch.scope
    this.intent = launch.intent
    this.needPatientBanner = launch.needPatientBanner
    this.smartStyleUrl = launch.smartStyleUrl
    this.fhirContext = launch.fhirContext
    this.idTokenClaims = launch.idTokenClaims
    this.#base = launch.iss.endsWith('/') ? launch.iss : `${launch.iss}/`
    this.#origin = new URL(this.#base).origin
    this.#http = init.http
    this.#refresh = init.refresh
    this.#accessToken = init.accessToken
  }

  /** Resolves a path against the FHIR base; an absolute URL must be on the FHIR server's origin (S20). */
  #resolve(pathOrUrl: string): URL {
    if (/^[a-z][a-z0-9+.-]*:/i.test(pathOrUrl) || pathOrUrl.startsWith('//')) {
      let url: URL
      try {
        url = new URL(pathOrUrl)
      } catch {
        throw new SmartError('FORBIDDEN_URL', 'The FHIR request URL is not a valid URL')
      }
      if (url.origin !== this.#origin) {
        throw new SmartError('FORBIDDEN_URL', `Refusing to send the access token to ${url.origin}: not the FHIR server's origin`)
      }
      return url
    }
    return new URL(pathOrUrl.replace(/^\/+/, ''), this.#base)
  }

  async #send(url: URL, init: FhirRequestInit, accessToken: string): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/fhir+json', ...init.headers, authorization: `Bearer ${accessToken}` }
    let body: string | undefined
    if (init.body !== undefined) {
      body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body)
      headers['content-type'] ??= 'application/fhir+json'
    }
    try {
      return await boundedFetch(this.#http, url, { method: init.method ?? 'GET', headers, body }, MAX_FHIR_RESPONSE_BYTES)
    } catch (err) {
      throw new SmartError('FHIR_REQUEST_FAILED', `The FHIR server did not answer ${url.pathname}: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * Sends a FHIR request with the bearer token. On a 401 it refreshes once (single-flight) and retries
   * once with the new token. A non-2xx answer throws `FHIR_REQUEST_FAILED` with the server's status.
   */
  async request<T = unknown>(pathOrUrl: string, init: FhirRequestInit = {}): Promise<T> {
    const url = this.#resolve(pathOrUrl)
    let response = await this.#send(url, init, this.#accessToken)
    if (response.status === 401 && this.#refresh) {
      this.#accessToken = await this.#refresh(this.#accessToken)
      response = await this.#send(url, init, this.#accessToken)
    }
    const raw = await response.text()
    const type = response.headers.get('content-type') ?? ''
    let parsed: unknown = raw
    if (raw !== '' && /json/i.test(type)) {
      try {
        parsed = JSON.parse(raw)
      } catch (err) {
        if (response.ok) throw new SmartError('FHIR_REQUEST_FAILED', `The FHIR server sent malformed JSON for ${url.pathname}`, { cause: err })
      }
    }
    if (!response.ok) {
      const outcome = (parsed as { resourceType?: unknown } | null)?.resourceType === 'OperationOutcome' ? parsed : undefined
      throw new SmartError('FHIR_REQUEST_FAILED', `The FHIR server answered ${response.status} to ${init.method ?? 'GET'} ${url.pathname}`, {
        // A redirect is not followed (the token must not travel with it): report it as a bad gateway.
        status: response.status >= 400 ? response.status : 502,
        operationOutcome: outcome,
      })
    }
    return (raw === '' ? undefined : parsed) as T
  }

  /** The launch context, without tokens. */
  toJSON(): Record<string, unknown> {
    return {
      fhirServer: this.fhirServer,
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
