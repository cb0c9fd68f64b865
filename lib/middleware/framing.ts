import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { runtimeFor } from '../client/runtime'
import type { SmartClientConfiguration, SmartLogger } from '../config'
import { SmartError } from '../errors'
import type { SmartMiddlewareOptions } from './options'

/**
 * The app inside the EHR's own page (API.md "Embedded in the EHR's frame"; SECURITY S36). In a cross-site
 * frame a browser sends the session cookie only when it is `SameSite=None; Secure`, and — where third-party
 * cookies are blocked — `Partitioned` (CHIPS). A launch started there with any other session cookie would
 * loop silently (the callback finds no session), so it is refused before anything is stored or sent.
 */

/** Whether the request is a navigation inside a frame of another site (`Sec-Fetch-*`; absent in old browsers). */
export function isCrossSiteFrame(req: Request): boolean {
  return req.get('sec-fetch-dest') === 'iframe' && req.get('sec-fetch-site') === 'cross-site'
}

/**
 * Refuses a launch in a cross-site frame whose session cookie the browser will not send there: 500 MISCONFIGURED,
 * also logged (error handlers such as smartErrorHandler() show a generic text for a 500; the developer needs this one).
 */
export function refuseUnframeableSession(req: Request, logger: SmartLogger | null): void {
  if (!isCrossSiteFrame(req)) return
  const cookie = req.session?.cookie as { sameSite?: unknown; secure?: unknown } | undefined
  if (cookie?.sameSite === 'none' && cookie.secure === true) return
  const refusal = new SmartError('MISCONFIGURED', 'This launch runs in a cross-site frame (the EHR shows the app in its page), where the browser sends the session cookie only when it is SameSite=None; Secure (and Partitioned where third-party cookies are blocked): set express-session\'s cookie to { sameSite: \'none\', secure: true, partitioned: true } over https')
  logger?.error({ event: 'smart.launch', outcome: 'refused', code: refusal.code }, refusal.message)
  throw refusal
}

/**
 * The `frame-ancestors` sources of the app's pages: the app itself and every `knownFhirServers[].frameAncestors`
 * origin; nothing else may frame the app. For helmet: `contentSecurityPolicy: { directives: { frameAncestors: frameAncestorsOf(config) } }`.
 *
 * @example
 * app.use(helmet({ contentSecurityPolicy: { directives: { frameAncestors: frameAncestorsOf(config) } } }))
 */
export function frameAncestorsOf(config: SmartClientConfiguration): string[] {
  const servers = runtimeFor(config, undefined).config.knownFhirServers
  const origins = new Set<string>()
  for (const server of servers?.values() ?? []) for (const origin of server.frameAncestors ?? []) origins.add(origin)
  return ["'self'", ...origins]
}

/**
 * Sends `Content-Security-Policy: frame-ancestors 'self' <the EHRs' origins>` with every answer, so that only the
 * configured EHRs may show the app in a frame (SECURITY S36). Apps with a CSP of their own (helmet) add
 * `frameAncestorsOf(config)` to it instead.
 *
 * @example
 * app.use(smartFrameAncestors({ config }))
 */
export function smartFrameAncestors(opts: Pick<SmartMiddlewareOptions, 'config'>): RequestHandler {
  const policy = `frame-ancestors ${frameAncestorsOf(opts?.config).join(' ')}`
  return function smartFrameAncestorsMiddleware(_req: Request, res: Response, next: NextFunction): void {
    res.setHeader('Content-Security-Policy', policy)
    next()
  }
}
