import { SmartError } from '../errors'

/**
 * What the library keeps in the storage, and under which keys. Every key carries a Redis Cluster hash
 * tag (`{…}`), so that a session's keys share one slot.
 *   pending:{<state>}   one record per launch in progress (so two tabs never overwrite each other)
 *   used:{<state>}      single-use marker for a state
 *   session:{<sid>}     the session's completed launches (one read serves `ready()`), or where a
 *                       regenerated session id went (a forward) or joined (a link)
 *   aliases:{<sid>}     which EHR each bare patient id given to a page stands for (no secrets; outlives launches)
 *   lock:{<sid>}        the session's write lock (callback, refresh, logout)
 */
export const keys = {
  pending: (state: string) => `pending:{${state}}`,
  used: (state: string) => `used:{${state}}`,
  session: (sessionId: string) => `session:{${sessionId}}`,
  aliases: (sessionId: string) => `aliases:{${sessionId}}`,
  lock: (sessionId: string) => `lock:{${sessionId}}`,
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
  /** Epoch ms when the access token was issued; with expiresAt, its lifetime. */
  issuedAt?: number
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
  /** Random, unique per completed launch: what a regenerated session id may still reach (its grace). */
  id: string
  /** What the page sends as `X-Active-Patient` to select this launch: the bare patient id, or a handle. */
  selector: string
  iss: string
  /** The tokens, or their AES-256-GCM sealed form when an `encryptionKey` is set. */
  tokens: TokenSet | { sealed: string }
  idTokenClaims: Record<string, unknown> | null
  completedAt: number
  /** Last time a request was served with this launch (idle timeout), to the touch interval's precision. */
  lastUsedAt: number
}

/** A session's completed launches. */
export interface SessionRecord {
  kind: 'session'
  /** Changes with every write: what an in-process copy is checked against. */
  version: string
  /** Completed launches by launch id: one in single-launch mode, one per (EHR, patient) in multi-launch mode. */
  launches: Record<string, LaunchRecord>
}

/**
 * Which EHR (normalised issuer) each bare patient id given to a page in this session stands for. Kept
 * apart from the launches because it outlives them: a page still holding a bare id must never be answered
 * for the same id from another EHR (ids repeat across EHRs). It holds no secret.
 */
export type Aliases = Record<string, string>

/**
 * A session id the browser left when the callback regenerated it: its in-flight requests may, for a short
 * grace, still reach the launches it held (`held`) — never a newer one — and its pending launches may
 * still complete into `to`.
 */
export interface ForwardRecord {
  kind: 'forward'
  to: string
  at: number
  held: string[]
}

/** A session id made by a callback concurrent with another of the same browser: it shares that session. */
export interface LinkRecord {
  kind: 'link'
  to: string
}

export type StoredSession = SessionRecord | ForwardRecord | LinkRecord

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

function broken(what: string): SmartError {
  return new SmartError('NO_SESSION', `The stored SMART ${what} is unreadable; launch again from the EHR`)
}

function isLaunch(value: unknown): value is LaunchRecord {
  return isObject(value) && typeof value.id === 'string' && typeof value.selector === 'string' && typeof value.iss === 'string'
    && isObject(value.tokens) && typeof value.scope === 'string' && typeof value.completedAt === 'number' && typeof value.lastUsedAt === 'number'
}

/** Checks the shape of what is stored under `session:{sid}`; anything else fails closed (SECURITY S27). */
export function readStoredSession(value: unknown): StoredSession | null {
  if (value === undefined || value === null) return null
  if (!isObject(value)) throw broken('session')
  switch (value.kind) {
    case 'session':
      if (typeof value.version !== 'string' || !isObject(value.launches)) throw broken('session')
      if (!Object.values(value.launches).every(isLaunch)) throw broken('session')
      return value as unknown as SessionRecord
    case 'forward':
      if (typeof value.to !== 'string' || typeof value.at !== 'number' || !Array.isArray(value.held)) throw broken('session')
      return value as unknown as ForwardRecord
    case 'link':
      if (typeof value.to !== 'string') throw broken('session')
      return value as unknown as LinkRecord
    default:
      throw broken('session')
  }
}

export function readAliases(value: unknown): Aliases {
  if (value === undefined || value === null) return {}
  if (!isObject(value) || !Object.values(value).every((iss) => typeof iss === 'string')) throw broken('session')
  return value as Aliases
}

export function readPendingLaunch(value: unknown): PendingLaunch | null {
  if (value === undefined || value === null) return null
  if (!isObject(value) || typeof value.sessionId !== 'string' || typeof value.iss !== 'string' || typeof value.codeVerifier !== 'string' || !isObject(value.smart)) {
    throw broken('launch')
  }
  return value as unknown as PendingLaunch
}
