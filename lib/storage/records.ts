import { SmartError } from '../errors'

/**
 * What the library keeps in the storage, and under which keys.
 *   pending:<state>   one record per launch in progress (so two tabs never overwrite each other)
 *   used:<state>      single-use marker for a state
 *   session:<sid>     the session's completed launches: one read serves `ready()`
 *   lock:<sid>        the session's write lock (callback, refresh, logout)
 *   moved:<sid>       where a regenerated session id went, for its still-pending launches
 */
export const keys = {
  pending: (state: string) => `pending:${state}`,
  used: (state: string) => `used:${state}`,
  session: (sessionId: string) => `session:${sessionId}`,
  lock: (sessionId: string) => `lock:${sessionId}`,
  moved: (sessionId: string) => `moved:${sessionId}`,
}

export interface PendingLaunch {
  sessionId: string
  iss: string
  codeVerifier: string
  nonce: string | null
  /** The discovery fields the callback needs, pinned at launch time. */
  smart: {
    issuer?: string
    authorization_endpoint: string
    token_endpoint: string
    jwks_uri?: string
    revocation_endpoint?: string
    authorization_response_iss_parameter_supported?: boolean
  }
  createdAt: number
}

export interface TokenSet {
  accessToken: string
  /** Epoch ms; null when the server sent no `expires_in`. */
  expiresAt: number | null
  refreshToken: string | null
}

export interface FhirContextItem {
  reference?: string
  canonical?: string
  type?: string
  role?: string
}

/** The SMART launch context of a token response (SECURITY S18: context comes only from there). */
export interface LaunchContext {
  scope: string
  patient: string | null
  encounter: string | null
  intent: string | null
  needPatientBanner: boolean
  smartStyleUrl: string | null
  fhirContext: FhirContextItem[]
}

export interface LaunchRecord extends LaunchContext {
  iss: string
  /** The tokens, or their AES-256-GCM sealed form when an `encryptionKey` is set. */
  tokens: TokenSet | { sealed: string }
  idTokenClaims: Record<string, unknown> | null
  completedAt: number
}

export interface SessionRecord {
  /** Completed launches: one entry (key `''`) in single-launch mode, one per patient in multi-launch mode. */
  launches: Record<string, LaunchRecord>
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

function broken(what: string): SmartError {
  return new SmartError('NO_SESSION', `The stored SMART ${what} is unreadable; launch again from the EHR`)
}

/** Checks the shape of a stored session; anything else fails closed (SECURITY S27). */
export function readSessionRecord(value: unknown): SessionRecord | null {
  if (value === undefined || value === null) return null
  if (!isObject(value) || !isObject(value.launches)) throw broken('session')
  for (const launch of Object.values(value.launches)) {
    if (!isObject(launch) || typeof launch.iss !== 'string' || !isObject(launch.tokens) || typeof launch.scope !== 'string') {
      throw broken('session')
    }
  }
  return value as unknown as SessionRecord
}

export function readPendingLaunch(value: unknown): PendingLaunch | null {
  if (value === undefined || value === null) return null
  if (!isObject(value) || typeof value.sessionId !== 'string' || typeof value.iss !== 'string' || typeof value.codeVerifier !== 'string' || !isObject(value.smart)) {
    throw broken('launch')
  }
  return value as unknown as PendingLaunch
}
