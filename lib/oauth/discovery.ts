import { SmartError } from '../errors'
import { boundedFetch, type HttpFailure, type HttpLimits } from './http'

/** The fields of `.well-known/smart-configuration` this library uses. */
export interface SmartConfiguration {
  issuer?: string
  authorization_endpoint: string
  token_endpoint: string
  jwks_uri?: string
  revocation_endpoint?: string
  code_challenge_methods_supported?: string[]
  authorization_response_iss_parameter_supported?: boolean
  capabilities?: string[]
  [field: string]: unknown
}

export interface DiscoveryOptions {
  http: HttpLimits
  allowHttp: boolean
  cacheSeconds: number
  now: () => number
}

function failed(iss: string, why: string, cause?: unknown): SmartError {
  return new SmartError('DISCOVERY_FAILED', `SMART discovery for ${iss} failed: ${why}`, { cause })
}

/**
 * The authorization URL is sent to the browser in a Location header: an endpoint longer than this would make
 * a redirect that Node (16 KB of headers), proxies and browsers refuse, instead of our documented 502.
 */
const MAX_ENDPOINT_LENGTH = 2048

function checkEndpoint(iss: string, doc: Record<string, unknown>, field: string, allowHttp: boolean, required: boolean): void {
  const value = doc[field]
  if (value === undefined && !required) return
  if (typeof value !== 'string') throw failed(iss, `"${field}" is ${required ? 'missing' : 'not a string'}`)
  if (value.length > MAX_ENDPOINT_LENGTH) throw failed(iss, `"${field}" is longer than ${MAX_ENDPOINT_LENGTH} characters`)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw failed(iss, `"${field}" is not an absolute URL`)
  }
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) {
    throw failed(iss, `"${field}" is not https (allowNonHttpsLaunch is off)`)
  }
}

function validate(iss: string, doc: unknown, allowHttp: boolean): SmartConfiguration {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw failed(iss, 'the document is not a JSON object')
  const fields = doc as Record<string, unknown>
  checkEndpoint(iss, fields, 'authorization_endpoint', allowHttp, true)
  checkEndpoint(iss, fields, 'token_endpoint', allowHttp, true)
  for (const optional of ['jwks_uri', 'revocation_endpoint']) checkEndpoint(iss, fields, optional, allowHttp, false)
  if (fields.issuer !== undefined && typeof fields.issuer !== 'string') throw failed(iss, '"issuer" is not a string')
  const methods = fields.code_challenge_methods_supported
  // PKCE S256 is always used; a server that lists methods without S256 would refuse it (SECURITY S4).
  if (methods !== undefined && (!Array.isArray(methods) || !methods.includes('S256'))) {
    throw failed(iss, 'the server does not support PKCE S256')
  }
  return Object.freeze(fields as SmartConfiguration)
}

/** With allowAnyIssuer, launchers choose the issuers: at most this many documents are kept (oldest out first). */
export const MAX_CACHED_ISSUERS = 1000

async function fetchConfiguration(iss: string, opts: DiscoveryOptions): Promise<SmartConfiguration> {
  const url = `${iss.replace(/\/$/, '')}/.well-known/smart-configuration`
  let response: Response
  try {
    response = await boundedFetch(opts.http, url, { headers: { accept: 'application/json' } }, 256 * 1024)
  } catch (err) {
    // boundedFetch throws HttpFailure only; its message says what went wrong (timeout, size, transport).
    throw failed(iss, (err as HttpFailure).message, err)
  }
  if (response.status !== 200) throw failed(iss, `the server answered ${response.status}`)
  let doc: unknown
  try {
    doc = await response.json()
  } catch (err) {
    throw failed(iss, 'the document is not valid JSON', err)
  }
  return validate(iss, doc, opts.allowHttp)
}

interface DiscoveryCache {
  documents: Map<string, { value: SmartConfiguration; expiresAt: number }>
  pending: Map<string, Promise<SmartConfiguration>>
}

/** Discovery documents are public and the same for every app: one cache per fetch implementation. */
const caches = new WeakMap<typeof fetch, DiscoveryCache>()

function cacheFor(fetchImpl: typeof fetch): DiscoveryCache {
  let cache = caches.get(fetchImpl)
  if (!cache) caches.set(fetchImpl, (cache = { documents: new Map(), pending: new Map() }))
  return cache
}

/**
 * Fetches and checks `{iss}/.well-known/smart-configuration`. Successes are reused for `cacheSeconds`,
 * failures are not cached, and concurrent look-ups of one issuer share one request.
 */
export function discover(iss: string, opts: DiscoveryOptions): Promise<SmartConfiguration> {
  const { documents, pending } = cacheFor(opts.http.fetch)
  const key = `${opts.allowHttp ? 'http' : 'https'} ${iss}`
  const hit = documents.get(key)
  if (hit && hit.expiresAt > opts.now()) return Promise.resolve(hit.value)
  const inFlight = pending.get(key)
  if (inFlight) return inFlight
  const lookup = fetchConfiguration(iss, opts)
    .then((value) => {
      if (documents.size >= MAX_CACHED_ISSUERS) documents.delete(documents.keys().next().value as string)
      documents.set(key, { value, expiresAt: opts.now() + opts.cacheSeconds * 1000 })
      return value
    })
    .finally(() => pending.delete(key))
  pending.set(key, lookup)
  return lookup
}

/** How many documents and look-ups in flight the cache of `fetchImpl` holds (for the memory-bound tests). */
export function discoveryCacheSizes(fetchImpl: typeof fetch): { documents: number; pending: number } {
  const cache = caches.get(fetchImpl)
  return { documents: cache?.documents.size ?? 0, pending: cache?.pending.size ?? 0 }
}
