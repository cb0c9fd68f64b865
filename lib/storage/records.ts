import { SmartError } from '../errors'

/**
 * What the library keeps in the storage, and under which keys. Every key carries a Redis Cluster hash
 * tag (`{…}`), so that a session's keys share one slot.
 *   pending:{<state>}   one record per launch in progress (so two tabs never overwrite each other)
 *   used:{<state>}      single-use marker for a state
 *   session:{<sid>}     the session's completed launches (one read serves `ready()`), or where a
 *                       regenerated session id went (a forward; `link` records of earlier versions are still read)
 *   lock:{<sid>}        the session's write lock (callback, refresh, logout)
 */
export const keys = {
  pending: (state: string) => `pending:{${state}}`,
  used: (state: string) => `used:{${state}}`,
  session: (sessionId: string) => `session:{${sessionId}}`,
  lock: (sessionId: string) => `lock:{${sessionId}}`,
}

export interface PendingLaunch {
  sessionId: string
  iss: string
  /**
   * SHA-256 (base64url) of the secret that only the browser that started the launch holds (its launch cookie,
   * SECURITY S34); null when the launch was started without one (SmartClient used without the middleware).
   */
  binding: string | null
  /** The PKCE verifier and nonce; sealed (AES-256-GCM) when an encryption key is set. */
  secrets: { codeVerifier: string; nonce: string | null } | { sealed: string }
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
  /** When its authorization started (the pending launch's creation): of two launches of one identity, the later wins. */
  startedAt?: number
}

/** Why a launch ended, for the answer a page still selecting it gets (SESSION_EXPIRED with the reason). */
export type EndReason = 'closed' | 'evicted' | 'idle' | 'expired' | 'refused' | 'replaced'

/** A session's completed launches. */
export interface SessionRecord {
  kind: 'session'
  /** Changes with every write: what an in-process copy is checked against. */
  version: string
  /** Completed launches by launch id: one in single-launch mode, one per (EHR, patient) in multi-launch mode. */
  launches: Record<string, LaunchRecord>
  /**
   * The browser this session belongs to (SECURITY S34): the value of its browser cookie, which every callback
   * that extends the session sends again. A request reaching the session through a forward, and a callback
   * extending it, must carry it (or `proofs`). Absent on sessions made without the middleware.
   */
  browser?: string
  /** SHA-256 of the launch cookies of launches completed into this session lately, with when: the proof of a concurrent tab. */
  proofs?: Array<{ hash: string; at: number }>
  /** Selectors of launches that ended, why and when (bounded): a page still naming one is told it ended. */
  ended?: Record<string, { reason: EndReason; at: number }>
}

/**
 * A session id the browser left when the callback regenerated it. When the session it moved to has a
 * `browser`, only a request carrying that browser's cookie follows it (a lost or late Set-Cookie loses
 * nothing); without one (SmartClient used directly), requests may, for a short grace, still reach the
 * launches it held (`held`) — never a newer one.
 */
export interface ForwardRecord {
  kind: 'forward'
  to: string
  at: number
  held: string[]
}

/** A session id made by a callback concurrent with another of the same browser (written by earlier versions): it shares that session. */
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
      if (value.browser !== undefined && typeof value.browser !== 'string') throw broken('session')
      if (value.proofs !== undefined && !(Array.isArray(value.proofs) && value.proofs.every((p) => isObject(p) && typeof p.hash === 'string' && typeof p.at === 'number'))) throw broken('session')
      if (value.ended !== undefined && !(isObject(value.ended) && Object.values(value.ended).every((e) => isObject(e) && typeof e.reason === 'string' && typeof e.at === 'number'))) throw broken('session')
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

export function readPendingLaunch(value: unknown): PendingLaunch | null {
  if (value === undefined || value === null) return null
  if (!isObject(value) || typeof value.sessionId !== 'string' || typeof value.iss !== 'string' || !isObject(value.secrets) || !isObject(value.smart)
    || (value.binding !== null && typeof value.binding !== 'string') || typeof value.createdAt !== 'number') {
    throw broken('launch')
  }
  return value as unknown as PendingLaunch
}
