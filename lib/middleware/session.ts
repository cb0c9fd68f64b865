import type { Request } from 'express'
import type { SessionData, Store } from 'express-session'
import { MOVE_GRACE_MS } from '../client/session-state'
import { SmartError } from '../errors'

declare module 'express-session' {
  interface SessionData {
    /**
     * Set by a SMART launch so that the session is saved (and its cookie set) with saveUninitialized: false.
     * `v`: the version of the session's SMART record as last seen: a process holding that version's copy
     * answers without reading the store (see session-cache.ts).
     */
    smartOnFhir?: { since: number; v?: string }
  }
}

function storeFailure(err: unknown, what: string): SmartError {
  return err instanceof SmartError ? err : new SmartError('STORAGE_UNAVAILABLE', `The session store failed to ${what} the session`, { cause: err })
}

/** Marks the session as used by a SMART launch, so express-session saves it and sets its cookie. */
export function markSession(session: Partial<SessionData>, now: number): void {
  session.smartOnFhir = { since: now }
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
  const since = session.smartOnFhir?.since ?? Date.now()
  session.smartOnFhir = version === null ? { since } : { since, v: version }
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

/** The old session id lives on only for the move's grace: its data is stored again to expire then. */
export function retireSession(req: Request, previous: PreviousSession): Promise<void> {
  const data = JSON.parse(JSON.stringify(previous.session)) as Record<string, unknown> & { cookie: Record<string, unknown> }
  data.cookie.expires = new Date(Date.now() + MOVE_GRACE_MS).toISOString()
  return new Promise((resolve, reject) => {
    req.sessionStore.set(previous.id, data as unknown as SessionData, (err: unknown) => (err ? reject(storeFailure(err, 'retire')) : resolve()))
  })
}
