import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { LaunchOptions } from '../client/authorize'
import type { SmartClient } from '../client/SmartClient'
import { PENDING_LAUNCH_TTL_SECONDS } from '../session/pending-launch'
import { clearLaunchCookie, newLaunchSecret, setLaunchCookie } from './browser-cookies'
import { refuseUnframeableSession } from './framing'
import { hasLaunched, markSession, saveSession, trackPendingLaunch } from './session'
import { setUpMiddleware, type SmartMiddlewareOptions } from './options'

/**
 * A route that starts an authorization (EHR or standalone launch): the pending launch is kept server-side,
 * bound to this browser by a fresh launch cookie (SECURITY S34); the session is marked so its cookie is set
 * (also with `saveUninitialized: false`) and saved; the browser is sent to the EHR's authorization endpoint.
 * Before any launch of this session completed, the session lives only as long as a pending launch, and a
 * session keeps at most a few pending launches, the oldest forgotten first (SECURITY S37). In a cross-site frame
 * the session cookie must be one the browser sends there, or nothing starts (framing.ts).
 */
export function authorizingMiddleware(
  name: string,
  opts: SmartMiddlewareOptions,
  start: (client: SmartClient, query: Record<string, unknown>, launchOptions: LaunchOptions) => Promise<{ redirectUrl: string }>,
): RequestHandler {
  const setup = setUpMiddleware(name, opts)
  return async function authorizingRoute(req: Request, res: Response, next: NextFunction): Promise<void> {
    try {
      const session = setup.requireSession(req)
      refuseUnframeableSession(req, setup.logger)
      const client = setup.clientFor(req)
      const binding = newLaunchSecret()
      let state = ''
      // The session is saved beside the pending launch's write (one round trip to the store), not after it.
      const saveAlongside = async (started: string): Promise<void> => {
        state = started
        if (!hasLaunched(session) && session.cookie) session.cookie.maxAge = PENDING_LAUNCH_TTL_SECONDS * 1000
        markSession(session, Date.now())
        for (const evicted of trackPendingLaunch(session, state)) {
          await client.cancelLaunch(evicted)
          clearLaunchCookie(req, res, evicted)
        }
        await saveSession(req)
      }
      const { redirectUrl } = await start(client, req.query as Record<string, unknown>, { binding, alongside: saveAlongside })
      setLaunchCookie(req, res, state, binding)
      // No body (res.redirect would negotiate one): the browser follows Location.
      res.statusCode = 302
      res.setHeader('Location', redirectUrl)
      res.end()
    } catch (err) {
      next(err)
    }
  }
}
