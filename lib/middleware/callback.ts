import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { markSession, regenerateSession, saveSession } from './session'
import { requireSession, setUpMiddleware, type SmartMiddlewareOptions } from './options'

const CALLBACK_FIELDS = ['code', 'state', 'iss', 'error', 'error_description'] as const

/**
 * The authorization server's return route: `GET ?code=&state=` → 302 to `redirectUrl` (multi-launch:
 * `?patient=<id>` appended). Like a login: verify → regenerate the session id → save → redirect; the
 * browser's other launches, pending or completed, move to the new session id.
 *
 * @example
 * app.get('/callback', smartCallback({ config, options }))
 */
export function smartCallback(opts: SmartMiddlewareOptions): RequestHandler {
  const setup = setUpMiddleware('smartCallback', opts)
  return async function smartCallbackMiddleware(req: Request, res: Response, next: NextFunction): Promise<void> {
    try {
      requireSession(req, 'smartCallback')
      const client = setup.clientFor(req)
      const query = Object.fromEntries(CALLBACK_FIELDS.filter((field) => field in req.query).map((field) => [field, req.query[field]]))
      const result = await client.callback(query)
      await regenerateSession(req)
      markSession(req.session, Date.now())
      await client.moveSession(req.sessionID)
      await saveSession(req)
      res.redirect(302, result.redirectUrl)
    } catch (err) {
      next(err)
    }
  }
}
