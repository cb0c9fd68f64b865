import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { SmartClient } from '../client/SmartClient'
import { markSession, saveSession } from './session'
import { setUpMiddleware, type SmartMiddlewareOptions } from './options'

/**
 * A route that starts an authorization (EHR or standalone launch): the pending launch is kept server-side,
 * the session is marked so its cookie is set (also with `saveUninitialized: false`) and saved, and the
 * browser is sent to the EHR's authorization endpoint.
 */
export function authorizingMiddleware(
  name: string,
  opts: SmartMiddlewareOptions,
  start: (client: SmartClient, query: Record<string, unknown>) => Promise<{ redirectUrl: string }>,
): RequestHandler {
  const setup = setUpMiddleware(name, opts)
  return async function authorizingRoute(req: Request, res: Response, next: NextFunction): Promise<void> {
    try {
      const session = setup.requireSession(req)
      const { redirectUrl } = await start(setup.clientFor(req), req.query as Record<string, unknown>)
      markSession(session, Date.now())
      await saveSession(req)
      res.redirect(302, redirectUrl)
    } catch (err) {
      next(err)
    }
  }
}
