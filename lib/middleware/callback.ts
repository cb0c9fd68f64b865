import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { clearLaunchCookie, setBrowserCookie } from './browser-cookies'
import { keepPendingLaunches, markSession, newSessionId, restoreSession, retireSession, saveSession, type PreviousSession } from './session'
import { setUpMiddleware, type SmartMiddlewareOptions } from './options'

const CALLBACK_FIELDS = ['code', 'state', 'iss', 'error', 'error_description'] as const

/**
 * The authorization server's return route: `GET ?code=&state=` → 302 to `redirectUrl` with `?patient=<selector>`.
 * Like a login: verify (the state, and this browser's launch cookie) → regenerate the session id → store →
 * save → redirect. The browser's other launches, pending or completed, move to the new session id when the
 * session belongs to this browser (its browser cookie); the old id then reaches them only with that cookie.
 *
 * @example
 * app.get('/callback', smartCallback({ config, options }))
 */
export function smartCallback(opts: SmartMiddlewareOptions): RequestHandler {
  const setup = setUpMiddleware('smartCallback', opts)
  return async function smartCallbackMiddleware(req: Request, res: Response, next: NextFunction): Promise<void> {
    try {
      const pending = setup.requireSession(req).smartOnFhir?.pending ?? []
      const client = setup.clientFor(req)
      const query = Object.fromEntries(CALLBACK_FIELDS.filter((field) => field in req.query).map((field) => [field, req.query[field]]))
      let previous: PreviousSession | null = null
      const result = await client.callback(query, {
        regenerate: async () => {
          previous = { id: req.sessionID, session: req.session }
          return newSessionId(req)
        },
      }).catch((err: unknown) => {
        // Nothing was stored under the new id: the browser keeps its session as it was. The launch's cookie is
        // of no use any more (its state is spent or was never this browser's).
        if (previous) restoreSession(req, previous)
        if (typeof query.state === 'string') clearLaunchCookie(req, res, query.state)
        throw err
      })
      markSession(req.session, Date.now(), true)
      // The browser's other launches in progress stay counted (and bounded) in its new session.
      keepPendingLaunches(req.session, pending.filter((state) => state !== query.state))
      await saveSession(req)
      // Best effort: the old id's SMART state answers only the same browser, whatever its session's lifetime.
      if (previous) await retireSession(req, previous).catch(() => undefined)
      if (result.browserKey) setBrowserCookie(req, res, result.browserKey, setup.sessionTtlSeconds)
      clearLaunchCookie(req, res, String(query.state))
      res.redirect(302, result.redirectUrl)
    } catch (err) {
      next(err)
    }
  }
}
