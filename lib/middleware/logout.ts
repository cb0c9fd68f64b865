import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { activePatientOf } from './active-patient'
import { setUpMiddleware, type SmartMiddlewareOptions } from './options'
import { keepVersion } from './session'

/**
 * Ends SMART launches and revokes their tokens where the EHR has a revocation endpoint; answers 204.
 * With `X-Active-Patient`, only the launch it selects (a "Close patient" action; a value naming no launch
 * of this session is refused with 403 `UNKNOWN_PATIENT`); without it, every launch of the session.
 * The app's own session data is left alone.
 *
 * @example
 * app.post('/logout', smartLogout({ config, options }))
 * // page: fetch('/logout', { method: 'POST', headers: { 'X-Active-Patient': sessionStorage.activePatient } })
 */
export function smartLogout(opts: SmartMiddlewareOptions): RequestHandler {
  const setup = setUpMiddleware('smartLogout', opts)
  return async function smartLogoutMiddleware(req: Request, res: Response, next: NextFunction): Promise<void> {
    try {
      const session = setup.requireSession(req)
      await setup.clientFor(req, activePatientOf(req)).logout()
      // Every process reads the store on this session's next request: none answers from a copy of the ended launch.
      keepVersion(session, null)
      res.status(204).end()
    } catch (err) {
      next(err)
    }
  }
}
