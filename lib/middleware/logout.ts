import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { SmartError } from '../errors'
import { activePatientOf } from './active-patient'
import { setUpMiddleware, type SmartMiddlewareOptions } from './options'
import { keepVersion } from './session'

/**
 * Ends SMART launches and revokes their tokens where the EHR has a revocation endpoint; answers 204.
 * With `X-Active-Patient`, only the launch it selects (a "Close patient" action; a value naming no launch
 * of this session is refused with 403 `UNKNOWN_PATIENT`); without it, every launch of the session.
 * The app's own session data is left alone.
 *
 * CSRF: a browser's request from another site (another port or subdomain is "same-site" but not
 * same-origin) can carry the session cookie but cannot add `X-Active-Patient` without a CORS preflight the
 * app does not grant. So a request without the header must come from the app's own pages
 * (`Sec-Fetch-Site: same-origin`, or `none` for one the user typed); otherwise 403 `CROSS_SITE_REQUEST`.
 * Clients that send no `Sec-Fetch-Site` (not a browser, or one older than 2023) are not refused.
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
      const activePatient = activePatientOf(req)
      refuseCrossSite(req, activePatient)
      await setup.clientFor(req, activePatient).logout()
      // Every process reads the store on this session's next request: none answers from a copy of the ended launch.
      keepVersion(session, null)
      res.status(204).end()
    } catch (err) {
      next(err)
    }
  }
}

/** A logout of every launch from a page of another origin (a form POST) is refused; see smartLogout. */
function refuseCrossSite(req: Request, activePatient: string | null): void {
  const site = req.get('sec-fetch-site')
  if (activePatient === null && site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new SmartError('CROSS_SITE_REQUEST', 'A logout from another site must name the launch (X-Active-Patient); it was refused')
  }
}
