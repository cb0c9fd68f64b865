import { createPrivateKey, type JsonWebKeyInput, type KeyObject } from 'node:crypto'

/**
 * Configuration types, validated once (when a client or middleware is created), defaulted and frozen.
 * Invalid configuration is a `TypeError` that names the field — never a per-request failure.
 */

/**
 * An EHR the app trusts, and how the app authenticates to its token endpoint.
 *
 * @example
 * const servers: KnownFhirServer[] = [
 *   { issuer: 'https://ehr.example.org/fhir', type: 'public' },
 *   { issuer: 'https://other.example/fhir', type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: process.env.SECRET! },
 *   { issuer: 'https://third.example/fhir', type: 'confidential-asymmetric', method: 'private_key_jwt', privateKey: jwk, keyId: 'key-1', alg: 'ES384' },
 * ]
 */
export type KnownFhirServer = {
  issuer: string
  name?: string
  /** This EHR's registration of the app, when it differs from `config.clientId` (SECURITY S39). */
  clientId?: string
  /** The scope to ask this EHR for, when it differs from `config.scope` (sent as written, never rewritten). */
  scope?: string
  /** Origins of this EHR's pages that may show the app in a frame (`Content-Security-Policy: frame-ancestors`), e.g. `['https://ehr.example.org']`. */
  frameAncestors?: string[]
} & (
  | { type: 'public' }
  | { type: 'confidential-symmetric'; method: 'client_secret_basic' | 'client_secret_post'; clientSecret: string }
  | {
      type: 'confidential-asymmetric'
      method: 'private_key_jwt'
      /** A private JWK or a PKCS#8 PEM string. */
      privateKey: JsonWebKey | string
      /** The `kid` of the assertion header. Default: the private JWK's `kid`; required with a PEM. */
      keyId?: string
      /** Default: from the key — RS384 for an RSA key, ES384 for an EC P-384 key. */
      alg?: 'RS384' | 'ES384'
    }
)

/**
 * The app's registration at its EHRs: client id, scope, its callback and landing URLs, and which EHRs may launch it.
 *
 * @example
 * const config: SmartClientConfiguration = {
 *   clientId: 'my-app',
 *   scope: 'openid fhirUser launch launch/patient patient/*.rs offline_access',
 *   callbackUrl: 'https://app.example.org/callback',
 *   redirectUrl: '/',
 *   knownFhirServers: [{ issuer: 'https://ehr.example.org/fhir', type: 'public' }],
 * }
 */
export type SmartClientConfiguration = {
  clientId: string
  /** e.g. `'openid fhirUser launch launch/patient patient/*.rs offline_access'` */
  scope: string
  /** Where the authorization server returns the user: the `smartCallback()` route. */
  callbackUrl: string
  /** Where the user lands in the app after a successful callback. */
  redirectUrl: string
} & ({ allowAnyIssuer: true } | { knownFhirServers: KnownFhirServer[] })

/**
 * Behaviour switches, all optional with secure defaults (see the README's option table).
 *
 * @example
 * const options: SmartClientOptions = { enableMultiLaunch: true, encryptionKey: process.env.SMART_KEY, idleTimeoutSeconds: 1800, logger: pino() }
 */
export type SmartClientOptions = {
  /** Refresh before expiry in `ready()`, and retry once on a FHIR 401. Default true. */
  autoRefresh?: boolean
  /** Several launched patients per browser session. Default false. */
  enableMultiLaunch?: boolean
  /** Accept http:// issuers and endpoints. Local development only. Default false. */
  allowNonHttpsLaunch?: boolean
  /**
   * Base64 of 32 bytes: tokens are encrypted at rest (AES-256-GCM). For key rotation, a non-empty array:
   * the first key encrypts, every key decrypts (put the new key first, drop the old one later).
   */
  encryptionKey?: string | readonly string[]
  /** Timeout of discovery, token and FHIR calls. Default 10000. */
  httpTimeoutMs?: number
  /** Absolute lifetime of each completed launch, in seconds, enforced on every read. Default 28800 (8 h). */
  sessionTtlSeconds?: number
  /**
   * A launch not used for this many seconds ends (idle timeout, enforced server-side on every read; the last
   * use is recorded at most once a minute, so it ends up to a minute early). Default off (`false`); the README
   * recommends 1800 (30 min) for most clinical apps.
   */
  idleTimeoutSeconds?: number | false
  /** How long a discovered smart-configuration is reused, in seconds. Default 3600. */
  discoveryCacheSeconds?: number
  /** Refresh this many seconds before the access token expires. Default 60. */
  refreshLeewaySeconds?: number
  /** The fetch used for every outbound call (discovery, token, JWKS, FHIR). Default: global fetch. */
  fetch?: typeof fetch
  /** The clock, in epoch milliseconds. Default: `Date.now`. */
  now?: () => number
  /**
   * Where the library writes what it does (launches, callbacks, refreshes, logouts, failures with their
   * code): any pino-compatible logger (`pino()`, `req.log`, a console adapter). No token, code, verifier,
   * secret or — unless `recordPatientIds` — patient id is ever written. Default: none.
   */
  logger?: SmartLogger
  /**
   * Include patient ids in log lines and OpenTelemetry span attributes. Default false: patient ids are
   * personal health information; issuer, outcome, error code and counts are always recorded.
   */
  recordPatientIds?: boolean
}

/**
 * The part of a pino logger the library uses: `logger.info({ ...fields }, 'message')`.
 *
 * @example
 * import pino from 'pino'
 * const options: SmartClientOptions = { logger: pino({ level: 'info' }) }
 * // or, without pino:
 * const logger: SmartLogger = { debug() {}, info: (f, m) => console.log(m, f), warn: (f, m) => console.warn(m, f), error: (f, m) => console.error(m, f) }
 */
export interface SmartLogger {
  debug(fields: Record<string, unknown>, message: string): void
  info(fields: Record<string, unknown>, message: string): void
  warn(fields: Record<string, unknown>, message: string): void
  error(fields: Record<string, unknown>, message: string): void
}

/** The validated, defaulted, frozen form the rest of the library works with. */
export interface ResolvedConfig {
  readonly clientId: string
  readonly scope: string
  readonly scopes: ReadonlySet<string>
  /** The scope of a standalone launch: `scope` without the bare `launch` scope (which needs an EHR launch id). */
  readonly standaloneScope: string
  readonly callbackUrl: string
  readonly redirectUrl: string
  /** null: any issuer may launch (`allowAnyIssuer`). */
  readonly knownFhirServers: ReadonlyMap<string, KnownFhirServer> | null
  readonly autoRefresh: boolean
  readonly enableMultiLaunch: boolean
  readonly allowNonHttpsLaunch: boolean
  /** Empty: tokens are stored as they are. Otherwise the first encrypts and all decrypt. */
  readonly encryptionKeys: readonly Buffer[]
  readonly httpTimeoutMs: number
  readonly sessionTtlSeconds: number
  /** null: no idle timeout. */
  readonly idleTimeoutSeconds: number | null
  readonly discoveryCacheSeconds: number
  readonly refreshLeewaySeconds: number
  readonly fetch: typeof fetch
  readonly now: () => number
  readonly logger: SmartLogger | null
  readonly recordPatientIds: boolean
}

const CONFIG_KEYS = ['clientId', 'scope', 'callbackUrl', 'redirectUrl', 'allowAnyIssuer', 'knownFhirServers']
const OPTION_KEYS = [
  'autoRefresh', 'enableMultiLaunch', 'allowNonHttpsLaunch', 'encryptionKey', 'httpTimeoutMs',
  'sessionTtlSeconds', 'idleTimeoutSeconds', 'discoveryCacheSeconds', 'refreshLeewaySeconds', 'fetch', 'now',
  'logger', 'recordPatientIds',
]

/** One default fetch for every client, so caches keyed by the fetch implementation are shared. */
const globalFetch: typeof fetch = (input, init) => fetch(input, init)

function fail(field: string, problem: string): never {
  throw new TypeError(`express-smart-on-fhir: ${field} ${problem}`)
}

/** Levenshtein distance, for "did you mean" hints on misspelt keys. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1))
      prev = row[j]
      row[j] = next
    }
  }
  return row[b.length]
}

function rejectUnknownKeys(where: string, value: object, known: string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue
    const nearest = known.reduce((best, k) => (distance(key, k) < distance(key, best) ? k : best))
    const hint = distance(key, nearest) <= 3 ? ` (did you mean "${nearest}"?)` : ''
    fail(`${where}.${key}`, `is not a known setting${hint}`)
  }
}

function requireString(where: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') fail(where, 'must be a non-empty string')
  return value
}

function requireUrl(where: string, value: unknown): string {
  const text = requireString(where, value)
  let url: URL
  try {
    url = new URL(text)
  } catch {
    fail(where, `must be an absolute URL, got "${text}"`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(where, 'must be an http(s) URL')
  return text
}

function optionalPositive(where: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(where, 'must be a positive number')
  return value
}

function optionalIdleTimeout(value: unknown): number | null {
  if (value === undefined || value === false) return null
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail('options.idleTimeoutSeconds', 'must be a positive number of seconds, or false')
  return value
}

function optionalBoolean(where: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') fail(where, 'must be true or false')
  return value
}

/** The issuer form used for allow-list comparison: exact string, minus one trailing slash. */
export function normalizeIssuer(iss: string): string {
  return iss.endsWith('/') ? iss.slice(0, -1) : iss
}

function validateServer(where: string, server: unknown): KnownFhirServer {
  if (typeof server !== 'object' || server === null) fail(where, 'must be an object')
  // A copy: the defaults below are written into it, never into the application's (possibly frozen) object.
  const s = { ...(server as Record<string, unknown>) }
  requireUrl(`${where}.issuer`, s.issuer)
  if (s.clientId !== undefined) requireString(`${where}.clientId`, s.clientId)
  if (s.scope !== undefined) s.scope = requireString(`${where}.scope`, s.scope).trim().split(/\s+/).join(' ')
  if (s.frameAncestors !== undefined) s.frameAncestors = Object.freeze(validateOrigins(`${where}.frameAncestors`, s.frameAncestors))
  switch (s.type) {
    case 'public':
      break
    case 'confidential-symmetric':
      if (s.method !== 'client_secret_basic' && s.method !== 'client_secret_post') {
        fail(`${where}.method`, 'must be "client_secret_basic" or "client_secret_post"')
      }
      requireString(`${where}.clientSecret`, s.clientSecret)
      break
    case 'confidential-asymmetric':
      if (s.method !== 'private_key_jwt') fail(`${where}.method`, 'must be "private_key_jwt"')
      if (typeof s.privateKey !== 'string' && (typeof s.privateKey !== 'object' || s.privateKey === null)) {
        fail(`${where}.privateKey`, 'must be a private JWK or a PKCS#8 PEM string')
      }
      if (s.alg !== undefined && s.alg !== 'RS384' && s.alg !== 'ES384') fail(`${where}.alg`, 'must be "RS384" or "ES384"')
      if (s.keyId !== undefined) requireString(`${where}.keyId`, s.keyId)
      // SMART requires a `kid` in every client assertion header: from keyId, or from the private JWK.
      else if (typeof s.privateKey === 'string' || typeof (s.privateKey as { kid?: unknown }).kid !== 'string' || (s.privateKey as { kid: string }).kid === '') {
        fail(`${where}.keyId`, 'is required: SMART needs a "kid" in the assertion header; set keyId, or a "kid" in the private JWK')
      } else s.keyId = (s.privateKey as { kid: string }).kid
      s.alg = signingAlgorithm(where, s.privateKey as JsonWebKey | string, s.alg as 'RS384' | 'ES384' | undefined)
      break
    default:
      fail(`${where}.type`, 'must be "public", "confidential-symmetric" or "confidential-asymmetric"')
  }
  return Object.freeze(s) as KnownFhirServer
}

/** A list of web origins (`https://host[:port]`, http for local development), as CSP `frame-ancestors` sources. */
function validateOrigins(where: string, value: unknown): string[] {
  if (!Array.isArray(value)) fail(where, 'must be an array of origins, e.g. ["https://ehr.example.org"]')
  return value.map((origin, i) => {
    let url: URL | null = null
    try {
      url = typeof origin === 'string' ? new URL(origin) : null
    } catch {
      url = null
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== origin || url.hostname.includes('*')) {
      fail(`${where}[${i}]`, `must be an origin such as "https://ehr.example.org" (scheme, host and port only), got ${JSON.stringify(origin)}`)
    }
    return origin as string
  })
}

/**
 * Reads the private key now, so that a key the EHR could never accept fails at configuration time with a
 * TypeError naming the field — never later, on every launch. The algorithm follows from the key when unset.
 */
function signingAlgorithm(where: string, privateKey: JsonWebKey | string, alg: 'RS384' | 'ES384' | undefined): 'RS384' | 'ES384' {
  if (typeof privateKey === 'string' && !privateKey.includes('-----BEGIN PRIVATE KEY-----')) {
    fail(`${where}.privateKey`, 'must be a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"; convert with `openssl pkcs8 -topk8 -nocrypt`) or a private JWK')
  }
  let key: KeyObject
  try {
    key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : createPrivateKey({ key: privateKey as JsonWebKeyInput['key'], format: 'jwk' })
  } catch {
    fail(`${where}.privateKey`, 'is not a readable private key (a private JWK with "d", or a PKCS#8 PEM)')
  }
  const curve = key.asymmetricKeyDetails?.namedCurve
  const fromKey = key.asymmetricKeyType === 'rsa' ? 'RS384' : key.asymmetricKeyType === 'ec' && curve === 'secp384r1' ? 'ES384' : null
  if (!fromKey) fail(`${where}.privateKey`, `must be an RSA key (RS384) or an EC P-384 key (ES384), not ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''}`)
  if (alg !== undefined && alg !== fromKey) fail(`${where}.alg`, `is ${alg}, but the key is for ${fromKey}`)
  return fromKey
}

function validateServers(config: Record<string, unknown>): ReadonlyMap<string, KnownFhirServer> | null {
  const open = config.allowAnyIssuer
  const list = config.knownFhirServers
  if (open !== undefined && list !== undefined) fail('config', 'takes either allowAnyIssuer or knownFhirServers, not both')
  if (open !== undefined) {
    if (open !== true) fail('config.allowAnyIssuer', 'must be true (or use knownFhirServers)')
    return null
  }
  if (!Array.isArray(list) || list.length === 0) {
    fail('config.knownFhirServers', 'must be a non-empty array (or set allowAnyIssuer: true to accept any EHR)')
  }
  const servers = new Map<string, KnownFhirServer>()
  list.forEach((entry, i) => {
    const server = validateServer(`config.knownFhirServers[${i}]`, entry)
    servers.set(normalizeIssuer(server.issuer), server)
  })
  return servers
}

function decodeKey(where: string, value: unknown): Buffer {
  const text = requireString(where, value)
  const key = Buffer.from(text, 'base64')
  if (key.length !== 32 || key.toString('base64') !== text.replace(/\s/g, '')) fail(where, 'must be the base64 encoding of exactly 32 bytes')
  return key
}

function decodeKeys(value: unknown): readonly Buffer[] {
  if (value === undefined) return Object.freeze([])
  if (!Array.isArray(value)) return Object.freeze([decodeKey('options.encryptionKey', value)])
  if (value.length === 0) fail('options.encryptionKey', 'must be a key or a non-empty array of keys (the first encrypts, all decrypt)')
  return Object.freeze(value.map((key, i) => decodeKey(`options.encryptionKey[${i}]`, key)))
}

/**
 * Validates configuration and options, applies defaults and freezes the result.
 * @throws TypeError naming the offending field.
 */
export function resolveConfig(config: SmartClientConfiguration, options: SmartClientOptions = {}): ResolvedConfig {
  if (typeof config !== 'object' || config === null) fail('config', 'must be an object')
  if (typeof options !== 'object' || options === null) fail('options', 'must be an object')
  const raw = config as Record<string, unknown>
  rejectUnknownKeys('config', raw, CONFIG_KEYS)
  rejectUnknownKeys('options', options, OPTION_KEYS)
  const scope = requireString('config.scope', raw.scope).trim().split(/\s+/).join(' ')
  if (options.fetch !== undefined && typeof options.fetch !== 'function') fail('options.fetch', 'must be a function')
  if (options.now !== undefined && typeof options.now !== 'function') fail('options.now', 'must be a function')
  return Object.freeze({
    clientId: requireString('config.clientId', raw.clientId),
    scope,
    scopes: new Set(scope.split(' ')),
    standaloneScope: scope.split(' ').filter((s) => s !== 'launch').join(' '),
    callbackUrl: requireUrl('config.callbackUrl', raw.callbackUrl),
    redirectUrl: requireString('config.redirectUrl', raw.redirectUrl),
    knownFhirServers: validateServers(raw),
    autoRefresh: optionalBoolean('options.autoRefresh', options.autoRefresh, true),
    enableMultiLaunch: optionalBoolean('options.enableMultiLaunch', options.enableMultiLaunch, false),
    allowNonHttpsLaunch: optionalBoolean('options.allowNonHttpsLaunch', options.allowNonHttpsLaunch, false),
    encryptionKeys: decodeKeys(options.encryptionKey),
    httpTimeoutMs: optionalPositive('options.httpTimeoutMs', options.httpTimeoutMs, 10_000),
    sessionTtlSeconds: optionalPositive('options.sessionTtlSeconds', options.sessionTtlSeconds, 8 * 3600),
    idleTimeoutSeconds: optionalIdleTimeout(options.idleTimeoutSeconds),
    discoveryCacheSeconds: optionalPositive('options.discoveryCacheSeconds', options.discoveryCacheSeconds, 3600),
    refreshLeewaySeconds: optionalPositive('options.refreshLeewaySeconds', options.refreshLeewaySeconds, 60),
    fetch: options.fetch ?? globalFetch,
    now: options.now ?? Date.now,
    logger: optionalLogger(options.logger),
    recordPatientIds: optionalBoolean('options.recordPatientIds', options.recordPatientIds, false),
  })
}

function optionalLogger(value: unknown): SmartLogger | null {
  if (value === undefined || value === null) return null
  const methods = ['debug', 'info', 'warn', 'error'] as const
  const logger = value as Partial<Record<(typeof methods)[number], unknown>>
  const missing = methods.filter((method) => typeof logger[method] !== 'function')
  if (typeof value !== 'object' || missing.length > 0) fail('options.logger', `must be a pino-compatible logger (missing ${missing.join(', ') || 'methods'})`)
  return value as SmartLogger
}
