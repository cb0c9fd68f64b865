import { randomBytes } from 'node:crypto'
import type { SessionRecord } from '../storage/records'
import { PENDING_LAUNCH_TTL_SECONDS, sameSecret } from './pending-launch'

/**
 * The browser is the unit of trust (SECURITY S34), not the session id, which a same-site page can plant:
 * - every pending launch is bound to a fresh secret in a cookie of the browser that started it (its launch
 *   cookie; the pending launch keeps only its SHA-256), and the callback needs it;
 * - every session the middleware makes belongs to a browser: the value of its browser cookie, fresh for every
 *   new session and sent again by every callback that extends it. A callback extends the session its cookie
 *   reaches only when it carries that browser cookie, or the launch cookie of a launch lately completed into
 *   that session (a concurrent tab of the same browser, whose request left before the browser cookie arrived).
 *   Otherwise it starts a new session of its own and leaves the other untouched.
 * - a request reaching a session through a forward (a regenerated id the browser left, e.g. a lost Set-Cookie)
 *   is followed only with that browser cookie.
 */

/** What a request carries that only its browser can hold (the middleware reads it from the cookies). */
export interface BrowserProof {
  /** The browser cookie's values (a planted cookie of a narrower path may come first), usually one or none. */
  keys: readonly string[]
  /** SHA-256 (base64url) of every launch-cookie value the request carries. */
  bindings: ReadonlySet<string>
}

/** Recent launch proofs kept per session: enough for the tabs one browser launches within a pending launch's lifetime. */
const MAX_PROOFS = 20

export const newBrowserKey = (): string => randomBytes(32).toString('base64url')

/** Whether `keys` hold the browser cookie of `session`. */
export function isSessionBrowser(session: SessionRecord, keys: readonly string[]): boolean {
  const { browser } = session
  return browser !== undefined && keys.some((key) => sameSecret(key, browser))
}

/**
 * Whether a callback carrying `proof` may extend `session`, which its session cookie reaches (`crossed`: through
 * a forward). Sessions made without the middleware have no browser: only their own id (no forward) owns them.
 */
export function ownsSession(session: SessionRecord | null, crossed: boolean, proof: BrowserProof | null, now: number): boolean {
  if (session === null) return false
  if (proof === null || session.browser === undefined) return !crossed
  if (isSessionBrowser(session, proof.keys)) return true
  return (session.proofs ?? []).some((known) => now - known.at <= PENDING_LAUNCH_TTL_SECONDS * 1000 && proof.bindings.has(known.hash))
}

/** The session's launch proofs with `binding` added: those younger than a pending launch, the newest few. */
export function withProof(proofs: SessionRecord['proofs'], binding: string | null, now: number): NonNullable<SessionRecord['proofs']> {
  const recent = (proofs ?? []).filter((known) => now - known.at <= PENDING_LAUNCH_TTL_SECONDS * 1000)
  if (binding !== null) recent.push({ hash: binding, at: now })
  return recent.slice(-MAX_PROOFS)
}
