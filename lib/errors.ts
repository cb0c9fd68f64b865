/**
 * Every failure the library reports is a `SmartError` with a stable `code`. Callers (and an app's
 * error handler) match on `code`; `status` is the HTTP status the middleware reports.
 */

/**
 * HTTP status for each error code. `FHIR_REQUEST_FAILED` carries the FHIR server's status when it answered.
 *
 * @example
 * SMART_ERROR_STATUS.UNKNOWN_PATIENT   // 403
 */
export const SMART_ERROR_STATUS = Object.freeze({
  MISSING_PARAMETER: 400,
  UNKNOWN_ISSUER: 403,
  INSECURE_ISSUER: 400,
  DISCOVERY_FAILED: 502,
  TOKEN_EXCHANGE_FAILED: 502,
  INVALID_STATE: 400,
  AUTHORIZATION_DENIED: 403,
  INVALID_ID_TOKEN: 401,
  NO_SESSION: 401,
  SESSION_EXPIRED: 401,
  UNKNOWN_PATIENT: 403,
  ACTIVE_PATIENT_REQUIRED: 400,
  ISSUER_MISMATCH: 400,
  STORAGE_UNAVAILABLE: 503,
  FHIR_REQUEST_FAILED: 502,
  FORBIDDEN_URL: 400,
  MISCONFIGURED: 500,
  CROSS_SITE_REQUEST: 403,
} as const)

/**
 * The stable error codes (API.md's table): match on these, never on messages.
 *
 * @example
 * const relaunch: SmartErrorCode[] = ['NO_SESSION', 'SESSION_EXPIRED', 'UNKNOWN_PATIENT']
 */
export type SmartErrorCode = keyof typeof SMART_ERROR_STATUS

/** Extra, token-free facts attached to some errors (e.g. a FHIR server's OperationOutcome). */
export interface SmartErrorDetails {
  status?: number
  cause?: unknown
  operationOutcome?: unknown
}

// What may be copied from another library's error: identifiers, never free text.
const NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/
const CODE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/
/** RFC 6749 §5.2 error codes (and the common extensions) are lower-case words joined by underscores. */
const OAUTH_ERROR = /^[a-z][a-z0-9_]{0,63}$/
const MAX_CAUSE_DEPTH = 4

const identifier = (value: unknown, pattern: RegExp): string | undefined => (typeof value === 'string' && pattern.test(value) ? value : undefined)

/** An OAuth `error` code when `value` looks like one, for messages and sanitized causes. */
export function oauthErrorCode(value: unknown): string | undefined {
  return identifier(value, OAUTH_ERROR)
}

/**
 * What is kept of another library's error: its name, `code`, OAuth `error`, HTTP `status` and stack
 * frames, for each error of its cause chain — never its message, response body, request, claims or any
 * other field, which may echo tokens, codes or the session's data.
 */
export class SanitizedCause extends Error {
  readonly code?: string
  readonly error?: string
  readonly status?: number

  constructor(source: unknown, depth = 0) {
    const fields = (typeof source === 'object' && source !== null ? source : {}) as Record<string, unknown>
    const code = identifier(fields.code, CODE)
    const error = oauthErrorCode(fields.error)
    const status = Number.isInteger(fields.status) && (fields.status as number) >= 100 && (fields.status as number) <= 599 ? (fields.status as number) : undefined
    const inner = fields.cause instanceof Error && depth < MAX_CAUSE_DEPTH ? sanitizeCause(fields.cause, depth + 1) : undefined
    const summary = [code, error, status === undefined ? undefined : `HTTP ${status}`].filter(Boolean).join(', ')
    super(summary || 'details withheld', inner === undefined ? undefined : { cause: inner })
    this.name = identifier(fields.name, NAME) ?? 'Error'
    if (code !== undefined) this.code = code
    if (error !== undefined) this.error = error
    if (status !== undefined) this.status = status
    const frames = typeof fields.stack === 'string' ? fields.stack.split('\n').filter((line) => /^\s+at /.test(line)) : []
    this.stack = [`${this.name}: ${this.message}`, ...frames].join('\n')
  }
}

/**
 * The cause a SmartError may keep: our own SmartError as it is, anything else as a `SanitizedCause`.
 * Every `SmartError` applies it to its `cause`; use it too where another error type wraps a third-party one.
 */
export function sanitizeCause(cause: unknown, depth = 0): Error {
  return cause instanceof SmartError || cause instanceof SanitizedCause ? cause : new SanitizedCause(cause, depth)
}

/**
 * The library's only error type.
 *
 * `expose` is true for client errors (4xx): their message is safe and useful to show the user.
 * Messages never contain a token, an authorization code, a code_verifier or a client secret, and a
 * `cause` from another library is kept only as a {@link SanitizedCause} (its name, code, OAuth error and
 * HTTP status): third-party errors carry response bodies, requests and claims.
 *
 * @example
 * app.use((err, req, res, next) => {
 *   if (err instanceof SmartError && err.code === 'NO_SESSION') return res.redirect('/relaunch')
 *   next(err)
 * })
 */
export class SmartError extends Error {
  readonly code: SmartErrorCode
  readonly status: number
  readonly expose: boolean
  /** The FHIR server's OperationOutcome, for `FHIR_REQUEST_FAILED` when it sent one. */
  readonly operationOutcome?: unknown

  constructor(code: SmartErrorCode, message: string, details: SmartErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: sanitizeCause(details.cause) })
    this.name = 'SmartError'
    this.code = code
    this.status = details.status ?? SMART_ERROR_STATUS[code]
    this.expose = this.status < 500
    if (details.operationOutcome !== undefined) this.operationOutcome = details.operationOutcome
  }

  toJSON(): { code: SmartErrorCode; message: string; status: number } {
    return { code: this.code, message: this.message, status: this.status }
  }
}

/**
 * True for a `SmartError`, optionally of one of the given codes.
 *
 * @example
 * app.use((err, req, res, next) => (isSmartError(err, 'NO_SESSION', 'SESSION_EXPIRED') ? res.redirect('/relaunch') : next(err)))
 */
export function isSmartError(err: unknown, ...codes: SmartErrorCode[]): err is SmartError {
  return err instanceof SmartError && (codes.length === 0 || codes.includes(err.code))
}
