import { createHash, timingSafeEqual } from 'node:crypto'
import { SmartError } from '../errors'
import { seal, unseal } from '../storage/encryption'
import { processMutex } from '../storage/lock'
import { keys, readPendingLaunch, type PendingLaunch } from '../storage/records'
import type { SmartStorage } from '../storage/SmartStorage'

/** A launch must come back within this time (SECURITY S6). */
export const PENDING_LAUNCH_TTL_SECONDS = 600

/** Whether a launch started under `owner` belongs to the browser session asking (same id, or moved there). */
export type Ownership = (owner: string) => Promise<boolean>

/** The PKCE verifier and nonce of a launch, as the callback needs them. */
export interface LaunchSecrets {
  codeVerifier: string
  nonce: string | null
}

/** SHA-256 in base64url: how a browser's secrets are kept server-side (the value itself only the browser holds). */
export const digest = (secret: string): string => createHash('sha256').update(secret).digest('base64url')

/** Constant-time comparison of two digests or secrets. */
export function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}

const sealedAs = (state: string) => `pending:${state}`

/**
 * The shape of every state this library issues (openid-client's randomState: 32 random bytes, base64url).
 * Anything else cannot name a pending launch and is refused before it reaches the store as part of a key:
 * a NUL byte, say, is a query error in PostgreSQL (a 503 instead of the 400 it deserves).
 */
const ISSUED_STATE = /^[A-Za-z0-9_-]{22,128}$/

/** The verifier and nonce as stored: sealed with the tokens' key when one is set (SECURITY S29). */
export function sealSecrets(encryptionKeys: readonly Buffer[], state: string, secrets: LaunchSecrets): PendingLaunch['secrets'] {
  return encryptionKeys.length > 0 ? { sealed: seal(encryptionKeys, secrets, sealedAs(state)) } : secrets
}

export function secretsOf(encryptionKeys: readonly Buffer[], state: string, pending: PendingLaunch): LaunchSecrets {
  const { secrets } = pending
  if ('sealed' in secrets) {
    if (encryptionKeys.length === 0) throw invalid('its stored PKCE verifier is encrypted but no encryptionKey is set')
    try {
      return unseal(encryptionKeys, secrets.sealed, sealedAs(state)) as LaunchSecrets
    } catch {
      throw invalid('its stored PKCE verifier could not be decrypted (was encryptionKey changed?)')
    }
  }
  if (typeof secrets.codeVerifier !== 'string') throw invalid('its stored PKCE verifier is unreadable')
  return secrets
}

/** Keeps a launch in progress under its own state, so launches in other tabs never overwrite it (S11). */
export function startPendingLaunch(storage: SmartStorage, state: string, launch: PendingLaunch): Promise<void> {
  return storage.set(keys.pending(state), launch, PENDING_LAUNCH_TTL_SECONDS)
}

/** Forgets a launch still pending (evicted by a newer one of the same browser session: SECURITY S37). */
export function forgetPendingLaunch(storage: SmartStorage, state: string): Promise<void> {
  return storage.delete(keys.pending(state))
}

/**
 * Takes the pending launch of `state` for this caller only, and forgets it: one atomic read-and-delete when the
 * storage has `take` (Redis GETDEL, PostgreSQL DELETE … RETURNING), else a `used:` marker claimed with
 * `setIfAbsent` (atomic across processes when the storage's is) before the delete.
 */
async function claimPending(storage: SmartStorage, state: string): Promise<boolean> {
  if (storage.take) return (await storage.take(keys.pending(state))) !== undefined
  const claimed = storage.setIfAbsent
    ? await storage.setIfAbsent(keys.used(state), 1, PENDING_LAUNCH_TTL_SECONDS)
    : await processMutex(storage, keys.used(state), async () => {
      if ((await storage.get(keys.used(state))) !== undefined) return false
      await storage.set(keys.used(state), 1, PENDING_LAUNCH_TTL_SECONDS)
      return true
    })
  if (claimed) await storage.delete(keys.pending(state))
  return claimed
}

const invalid = (why: string) => new SmartError('INVALID_STATE', `The launch cannot be completed: ${why}; launch again from the EHR`)

/**
 * What proves that the browser calling back is the one that started the launch: the launch cookies' secrets
 * it sent (middleware), or nothing (SmartClient used directly: the session id is all there is).
 */
export interface CallbackProof {
  /** SHA-256 of every launch-cookie value the request carries. */
  bindings: ReadonlySet<string>
}

/**
 * Takes the pending launch of `state` for this browser, exactly once (SECURITY S12, S34): unknown, expired,
 * replayed or other-browser states are refused before any token call, and a refusal for another browser's
 * state consumes nothing. A launch started with a browser binding needs the binding; one started without
 * (SmartClient used directly) needs the session that started it.
 */
export async function consumePendingLaunch(storage: SmartStorage, state: string, owns: Ownership, proof: CallbackProof | null, now: number): Promise<PendingLaunch> {
  if (!ISSUED_STATE.test(state)) throw invalid('the state is unknown, expired or already used')
  const pending = readPendingLaunch(await storage.get(keys.pending(state)))
  if (!pending) throw invalid('the state is unknown, expired or already used')
  if (pending.binding !== null) {
    if (!proof || proof.bindings.size === 0) {
      throw invalid('this browser sent no cookie of the launch (cookies blocked, a cross-site frame without SameSite=None, or another browser)')
    }
    if (![...proof.bindings].some((hash) => sameSecret(hash, pending.binding!))) throw invalid('the launch was started by another browser')
  } else if (!(await owns(pending.sessionId))) {
    throw invalid('the state belongs to another session (was the session cookie lost?)')
  }
  if (!(await claimPending(storage, state))) throw invalid('the state was already used')
  if (now - pending.createdAt > PENDING_LAUNCH_TTL_SECONDS * 1000) throw invalid('the launch expired')
  return pending
}

/**
 * The authorization server refused (`?error=`): forget the pending launch of `state`, but only when it is
 * this browser's — a state alone must not let anyone cancel another browser's launch.
 */
export async function dropPendingLaunch(storage: SmartStorage, state: string, owns: Ownership, proof: CallbackProof | null): Promise<void> {
  if (!ISSUED_STATE.test(state)) return
  const pending = readPendingLaunch(await storage.get(keys.pending(state)))
  if (!pending) return
  const mine = pending.binding !== null
    ? [...(proof?.bindings ?? [])].some((hash) => sameSecret(hash, pending.binding!))
    : await owns(pending.sessionId)
  if (mine) await storage.delete(keys.pending(state))
}
