import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { markSession, newSessionId, restoreSession, retireSession, saveSession, type PreviousSession } from './session'
import { setUpMiddleware, type SmartMiddlewareOptions } from './options'

const CALLBACK_FIELDS = ['code', 'state', 'iss', 'error', 'error_description'] as const

/**
 * The authorization server's return route: `GET ?code=&state=` → 302 to `redirectUrl` (multi-launch:
 * `?patient=<id>` appended). Like a login: verify → regenerate the session id → store → save → redirect.
 * The browser's other launches, pending or completed, move to the new session id; the old id answers
 * requests already on their way for a few seconds, with the launches it held, and then nothing.
 *
 * @example
 * app.get('/callback', smartCallback({ config, options }))
 */
export function smartCallback(opts: SmartMiddlewareOptions): RequestHandler {
  const setup = setUpMiddleware('smartCallback', opts)
  return async function smartCallbackMiddleware(req: Request, res: Response, next: NextFunction): Promise<void> {
    try {
      setup.requireSession(req)
      const client = setup.clientFor(req)
      const query = Object.fromEntries(CALLBACK_FIELDS.filter((field) => field in req.query).map((field) => [field, req.query[field]]))
      let previous: PreviousSession | null = null
      const result = await client.callback(query, {
        regenerate: async () => {
          previous = { id: req.sessionID, session: req.session }
          return newSessionId(req)
        },
      }).catch((err: unknown) => {
        // Nothing was stored under the new id: the browser keeps its session as it was.
        if (previous) restoreSession(req, previous)
        throw err
      })
      markSession(req.session, Date.now())
      await saveSession(req)
      // Best effort: the old id's SMART state already answers only within the grace, whatever its session's lifetime.
      if (previous) await retireSession(req, previous).catch(() => undefined)
      res.redirect(302, result.redirectUrl)
    } catch (err) {
      next(err)
    }
  }
}
