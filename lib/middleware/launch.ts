import type { RequestHandler } from 'express'
import { authorizingMiddleware } from './authorize'
import type { SmartMiddlewareOptions } from './options'

/**
 * The EHR launch route: `GET ?iss=&launch=` → 302 to the EHR's authorization endpoint.
 * Checks the issuer, discovers it, keeps the pending launch server-side, and makes sure the session
 * cookie is set (also with `saveUninitialized: false`).
 *
 * @example
 * app.get('/launch', smartLaunch({ config, options }))
 */
export function smartLaunch(opts: SmartMiddlewareOptions): RequestHandler {
  return authorizingMiddleware('smartLaunch', opts, (client, { iss, launch }, launchOptions) => client.launch({ iss: iss as string, launch: launch as string }, launchOptions))
}
