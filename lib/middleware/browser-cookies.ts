import { createHash, randomBytes } from 'node:crypto'
import type { Request, Response } from 'express'
import type { BrowserProof } from '../session/browser-binding'
import { digest, PENDING_LAUNCH_TTL_SECONDS } from '../session/pending-launch'

/**
 * The cookies that bind launches and sessions to the browser (SECURITY S34; session/browser-binding.ts):
 * - a launch cookie per pending launch, `__Host-smart-launch-<id>` (the id derived from the launch's state),
 *   holding a fresh 256-bit secret for the launch's lifetime (10 minutes);
 * - the browser cookie `__Host-smart-browser`, the session's browser secret, sent again by every callback.
 * Both HttpOnly, Path=/, and with the SameSite and Partitioned attributes of the app's session cookie (so a
 * framed launch gets them where it gets the session cookie). `__Host-` needs Secure, so over plain http
 * (local development only) the names lose the prefix and the Secure flag: a page on another subdomain could
 * then plant them too. The secret is always fresh from the server; a planted value proves nothing.
 */
const SECURE_PREFIX = '__Host-'
const LAUNCH = 'smart-launch-'
const BROWSER = 'smart-browser'

/** Cookie names are tokens; values are base64url: anything else is not ours and is ignored. */
const VALUE = /^[A-Za-z0-9_-]{32,128}$/

const prefixOf = (req: Request): string => (req.secure ? SECURE_PREFIX : '')

/** Bounded work per request; browsers send older cookies first, and the newest launches matter most. */
const MAX_COOKIES_PER_FAMILY = 64

/**
 * What only this browser holds: its browser cookie and the secrets of its launch cookies. One pass over the
 * Cookie header (it is read on every protected request); a header without our names costs one search.
 * Duplicates are kept: a planted cookie may come first.
 */
export function browserProofOf(req: Request): BrowserProof {
  const header = req.headers.cookie
  const keys: string[] = []
  const launches: string[] = []
  if (typeof header === 'string' && header.includes('smart-')) {
    const prefix = prefixOf(req)
    const browserName = prefix + BROWSER
    const launchPrefix = prefix + LAUNCH
    for (const pair of header.split(';')) {
      const at = pair.indexOf('=')
      if (at < 0) continue
      const name = pair.slice(0, at).trim()
      const isLaunch = name.startsWith(launchPrefix) && (prefix !== '' || !name.startsWith(SECURE_PREFIX))
      if (name !== browserName && !isLaunch) continue
      const value = pair.slice(at + 1).trim()
      if (VALUE.test(value)) (isLaunch ? launches : keys).push(value)
    }
  }
  return {
    keys: keys.slice(-MAX_COOKIES_PER_FAMILY),
    bindings: new Set(launches.slice(-MAX_COOKIES_PER_FAMILY).map(digest)),
  }
}

/** The launch cookie's name for `state`: 16 characters of the state's SHA-256 (the state itself is never in a cookie). */
const launchCookieName = (req: Request, state: string): string =>
  `${prefixOf(req)}${LAUNCH}${createHash('sha256').update(state).digest('base64url').slice(0, 16)}`

function attributes(req: Request, maxAgeSeconds: number): string {
  const cookie = req.session?.cookie as { sameSite?: unknown; partitioned?: unknown } | undefined
  const sameSite = cookie?.sameSite === 'none' || cookie?.sameSite === 'strict' ? cookie.sameSite : 'lax'
  const parts = ['Path=/', 'HttpOnly', `Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`, `SameSite=${sameSite[0].toUpperCase()}${sameSite.slice(1)}`]
  if (req.secure) parts.push('Secure')
  if (req.secure && cookie?.partitioned === true) parts.push('Partitioned')
  return parts.join('; ')
}

function setCookie(res: Response, value: string): void {
  const current = res.getHeader('Set-Cookie')
  const list = current === undefined ? [] : Array.isArray(current) ? current : [String(current)]
  res.setHeader('Set-Cookie', [...list, value])
}

/** A fresh secret for a launch about to start; its cookie is set once the launch's state is known. */
export const newLaunchSecret = (): string => randomBytes(32).toString('base64url')

export function setLaunchCookie(req: Request, res: Response, state: string, secret: string): void {
  setCookie(res, `${launchCookieName(req, state)}=${secret}; ${attributes(req, PENDING_LAUNCH_TTL_SECONDS)}`)
}

/** Ends a launch's cookie (its callback completed, or it was evicted). */
export function clearLaunchCookie(req: Request, res: Response, state: string): void {
  setCookie(res, `${launchCookieName(req, state)}=; ${attributes(req, 0)}`)
}

export function setBrowserCookie(req: Request, res: Response, key: string, maxAgeSeconds: number): void {
  setCookie(res, `${prefixOf(req)}${BROWSER}=${key}; ${attributes(req, maxAgeSeconds)}`)
}
