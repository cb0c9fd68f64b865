import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { ReadyClient } from '../fhir/ReadyClient'
import { readyAt } from '../client/SmartClient'
import { isSmartError } from '../errors'
import { activePatientOf, announceLaunch } from './active-patient'
import { setUpMiddleware, type SmartMiddlewareOptions } from './options'
import { keepVersion, versionOf } from './session'

export { ACTIVE_PATIENT_HEADER, SMART_ISS_HEADER, SMART_PATIENT_HEADER } from './active-patient'

declare global {
  namespace Express {
    interface Request {
      /** The session's ready FHIR client; set by `requireSmartContext()` (not present on other routes). */
      smart: ReadyClient
    }
  }
}

/**
 * Requires a completed SMART launch and sets `req.smart` to its `ReadyClient`. Fails closed: no session,
 * an unreadable session, an unknown `X-Active-Patient` or an unreachable store is an error — never
 * another patient's context. `X-Active-Patient` selects the launch (multi-launch mode), or must name the
 * session's one launch (single-launch mode). Every answer carries `X-Active-Patient`, `X-Smart-Patient`
 * and `X-Smart-Iss`: the launch it was served for, for the page to check.
 *
 * @example
 * app.get('/api/patient', requireSmartContext({ config, options }), async (req, res) => {
 *   res.json(await req.smart.request(`Patient/${req.smart.patient?.id}`))
 * })
 */
export function requireSmartContext(opts: SmartMiddlewareOptions): RequestHandler {
  const setup = setUpMiddleware('requireSmartContext', opts)
  return async function requireSmartContextMiddleware(req: Request, res: Response, next: NextFunction): Promise<void> {
    try {
      const session = setup.requireSession(req)
      const activePatient = activePatientOf(req)
      const known = versionOf(session)
      // This process's copy of the session's record version answers without a SmartClient or a store call.
      const { client, version } = setup.readyFromCopy(req, activePatient, known) ?? await readyAt(setup.clientFor(req, activePatient), known)
      // null: served through another session id (a forward or link): this session has no version of its own to keep.
      if (version !== null) keepVersion(session, version)
      req.smart = client
      announceLaunch(res, client)
      next()
    } catch (err) {
      // The launch may have ended (a refused refresh): no process may answer from its copy any more.
      if (req.session && isSmartError(err, 'SESSION_EXPIRED', 'NO_SESSION')) keepVersion(req.session, null)
      next(err)
    }
  }
}
