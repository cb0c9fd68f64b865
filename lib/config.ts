import type { KnownFhirServer } from './config-servers'
import { validateServers } from './config-servers'
import { fail, optionalBoolean, optionalIdleTimeout, optionalPositive, rejectUnknownKeys, requireString, requireUrl } from './config-fields'

/**
 * Configuration types, validated once (when a client or middleware is created), defaulted and frozen.
 * Invalid configuration is a `TypeError` that names the field — never a per-request failure.
 */

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
