import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { markSession, saveSession } from './session'
import { requireSession, setUpMiddleware, type SmartMiddlewareOptions } from './options'

/**
 * The EHR launch route: `GET ?iss=&launch=` → 302 to the EHR's authorization endpoint.
 * Checks the issuer, discovers it, keeps the pending launch server-side, and makes sure the session
 * cookie is set (also with `saveUninitialized: false`).
 *
 * @example
 * app.get('/launch', smartLaunch({ config, options }))
 */
export function smartLaunch(opts: SmartMiddlewareOptions): RequestHandler {
  const setup = setUpMiddleware('smartLaunch', opts)
  return async function smartLaunchMiddleware(req: Request, res: Response, next: NextFunction): Promise<void> {
    try {
      const session = requireSession(req, 'smartLaunch')
      const client = setup.clientFor(req)
      const { iss, launch } = req.query as Record<string, unknown>
      const { redirectUrl } = await client.launch({ iss: iss as string, launch: launch as string })
      markSession(session, Date.now())
      await saveSession(req)
      res.redirect(302, redirectUrl)
    } catch (err) {
      next(err)
    }
  }
}
