import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { ReadyClient } from '../client/ReadyClient'
import { SmartError } from '../errors'
import { requireSession, setUpMiddleware, type SmartMiddlewareOptions } from './options'

declare global {
  namespace Express {
    interface Request {
      /** The session's ready FHIR client; set by `requireSmartContext()` (not present on other routes). */
      smart: ReadyClient
    }
  }
}

/** The header a multi-launch page sends with the patient id it was launched for. */
export const ACTIVE_PATIENT_HEADER = 'x-active-patient'

/** FHIR resource ids: 1–64 of [A-Za-z0-9-.]. Anything else cannot be a launched patient. */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/

function activePatientOf(req: Request): string | null {
  const header = req.headers[ACTIVE_PATIENT_HEADER]
  if (header === undefined || header === '') return null
  if (typeof header !== 'string' || !FHIR_ID.test(header)) {
    throw new SmartError('UNKNOWN_PATIENT', 'The X-Active-Patient header does not name a patient launched in this session')
  }
  return header
}

/**
 * Requires a completed SMART launch and sets `req.smart` to its `ReadyClient`. Fails closed: no session,
 * an unreadable session, an unknown `X-Active-Patient` or an unreachable store is an error — never
 * another patient's context. Multi-launch mode reads the active patient from `X-Active-Patient`.
 *
 * @example
 * app.get('/api/patient', requireSmartContext({ config, options }), async (req, res) => {
 *   res.json(await req.smart.request(`Patient/${req.smart.patient?.id}`))
 * })
 */
export function requireSmartContext(opts: SmartMiddlewareOptions): RequestHandler {
  const setup = setUpMiddleware('requireSmartContext', opts)
  return async function requireSmartContextMiddleware(req: Request, _res: Response, next: NextFunction): Promise<void> {
    try {
      requireSession(req, 'requireSmartContext')
      // Single-launch mode ignores the header: there is only one context.
      req.smart = await setup.clientFor(req, setup.multiLaunch ? activePatientOf(req) : null).ready()
      next()
    } catch (err) {
      next(err)
    }
  }
}
