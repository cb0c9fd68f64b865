import type { Request } from 'express'
import type { SessionData } from 'express-session'
import { SmartError } from '../errors'

declare module 'express-session' {
  interface SessionData {
    /** Set by a SMART launch so that the session is saved (and its cookie set) with saveUninitialized: false. */
    smartOnFhir?: { since: number }
  }
}

function storeFailure(err: unknown, what: string): SmartError {
  return err instanceof SmartError ? err : new SmartError('STORAGE_UNAVAILABLE', `The session store failed to ${what} the session`, { cause: err })
}

/** Marks the session as used by a SMART launch, so express-session saves it and sets its cookie. */
export function markSession(session: Partial<SessionData>, now: number): void {
  session.smartOnFhir = { since: now }
}

export function saveSession(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.save((err: unknown) => (err ? reject(storeFailure(err, 'save')) : resolve())))
}

/** A new session id for this browser (session fixation defence); the old session is destroyed. */
export function regenerateSession(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.regenerate((err: unknown) => (err ? reject(storeFailure(err, 'regenerate')) : resolve())))
}
