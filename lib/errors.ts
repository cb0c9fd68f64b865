/**
 * Every failure the library reports is a `SmartError` with a stable `code`. Callers (and an app's
 * error handler) match on `code`; `status` is the HTTP status the middleware reports.
 */

/** HTTP status for each error code. `FHIR_REQUEST_FAILED` carries the FHIR server's status when it answered. */
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
} as const)

export type SmartErrorCode = keyof typeof SMART_ERROR_STATUS

/** Extra, token-free facts attached to some errors (e.g. a FHIR server's OperationOutcome). */
export interface SmartErrorDetails {
  status?: number
  cause?: unknown
  operationOutcome?: unknown
}

/**
 * The library's only error type.
 *
 * `expose` is true for client errors (4xx): their message is safe and useful to show the user.
 * Messages never contain a token, an authorization code, a code_verifier or a client secret.
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
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
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

/** True for a `SmartError`, optionally of one of the given codes. */
export function isSmartError(err: unknown, ...codes: SmartErrorCode[]): err is SmartError {
  return err instanceof SmartError && (codes.length === 0 || codes.includes(err.code))
}
