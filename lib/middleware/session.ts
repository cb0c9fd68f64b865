import type { Request } from 'express'
import type { SessionData, Store } from 'express-session'
import { PENDING_LAUNCH_TTL_SECONDS } from '../session/pending-launch'
import { SmartError } from '../errors'

declare module 'express-session' {
  interface SessionData {
    /**
     * Set by a SMART launch so that the session is saved (and its cookie set) with saveUninitialized: false.
     * `v`: the version of the session's SMART record as last seen: a process holding that version's copy
     * answers without reading the store (see session-cache.ts). `launched`: a callback completed into this
     * session. `pending`: the states of its launches in progress (bounded, SECURITY S37).
     */
    smartOnFhir?: { since: number; v?: string; launched?: true; pending?: string[] }
  }
}

function storeFailure(err: unknown, what: string): SmartError {
  return err instanceof SmartError ? err : new SmartError('STORAGE_UNAVAILABLE', `The session store failed to ${what} the session`, { cause: err })
}

/** A browser session keeps at most this many launches in progress; a new one forgets the oldest. */
export const MAX_PENDING_PER_SESSION = 10

/** Marks the session as used by a SMART launch, so express-session saves it and sets its cookie; `launched` after a callback. */
export function markSession(session: Partial<SessionData>, now: number, launched = false): void {
  session.smartOnFhir = { ...session.smartOnFhir, since: now, ...(launched ? { launched: true as const } : {}) }
}

/** Whether a callback completed into this session (until then it lives only as long as a pending launch). */
export function hasLaunched(session: Partial<SessionData>): boolean {
  return session.smartOnFhir?.launched === true
}

/** Keeps `pending` as the session's launches in progress (a callback carries the browser's others into its new session). */
export function keepPendingLaunches(session: Partial<SessionData>, pending: string[]): void {
  if (pending.length > 0) session.smartOnFhir = { ...(session.smartOnFhir ?? { since: Date.now() }), pending }
}

/** Notes a launch in progress; returns the states beyond the bound, oldest first, for the caller to forget. */
export function trackPendingLaunch(session: Partial<SessionData>, state: string): string[] {
  const smart = session.smartOnFhir ?? { since: Date.now() }
  const pending = [...(smart.pending ?? []), state]
  const evicted = pending.splice(0, Math.max(0, pending.length - MAX_PENDING_PER_SESSION))
  session.smartOnFhir = { ...smart, pending }
  return evicted
}

/** The SMART record version the session carries, or null. */
export function versionOf(session: Partial<SessionData>): string | null {
  return session.smartOnFhir?.v ?? null
}

/**
 * Keeps `version` in the session (express-session saves it at the end of the request, as it changed), or
 * forgets it (null): after a change this request did not see the end of, every process reads the store.
 */
export function keepVersion(session: Partial<SessionData>, version: string | null): void {
  if (versionOf(session) === version) return
  const { v: _old, ...rest } = session.smartOnFhir ?? { since: Date.now() }
  session.smartOnFhir = version === null ? rest : { ...rest, v: version }
}

export function saveSession(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.save((err: unknown) => (err ? reject(storeFailure(err, 'save')) : resolve())))
}

/** The session a request came with, kept while the callback regenerates it. */
export interface PreviousSession {
  id: string
  session: Request['session']
}

type GeneratingStore = Store & { generate?: (req: Request) => void }

/**
 * Gives the request a new, empty session with a new id (session fixation defence, SECURITY S22) — without
 * destroying the old one yet: other tabs' requests already sent with the old cookie must still find it.
 * express-session defines `store.generate` on the store it was given; `regenerate()` is destroy + generate.
 */
export function newSessionId(req: Request): string {
  const store = req.sessionStore as GeneratingStore
  if (typeof store.generate !== 'function') throw new SmartError('MISCONFIGURED', 'smartCallback() needs express-session (its store has no generate())')
  store.generate(req)
  return req.sessionID
}

/** Puts the request's original session back (the callback failed after regenerating): nothing changes for the browser. */
export function restoreSession(req: Request, previous: PreviousSession): void {
  req.sessionID = previous.id
  req.session = previous.session
}

/**
 * The old session id lives on briefly: a browser whose callback answer was lost still sends it, and reaches its
 * launches through the forward with its browser cookie. Its data is stored again with a pending launch's lifetime
 * as both expiry and original max age, so that express-session's touch on a later request keeps that lifetime
 * (it resets the expiry to the original max age) instead of bringing back a day.
 */
export function retireSession(req: Request, previous: PreviousSession): Promise<void> {
  const data = JSON.parse(JSON.stringify(previous.session)) as Record<string, unknown> & { cookie: Record<string, unknown> }
  data.cookie.expires = new Date(Date.now() + PENDING_LAUNCH_TTL_SECONDS * 1000).toISOString()
  data.cookie.originalMaxAge = PENDING_LAUNCH_TTL_SECONDS * 1000
  return new Promise((resolve, reject) => {
    req.sessionStore.set(previous.id, data as unknown as SessionData, (err: unknown) => (err ? reject(storeFailure(err, 'retire')) : resolve()))
  })
}
