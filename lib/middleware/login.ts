import type { RequestHandler } from 'express'
import { authorizingMiddleware } from './authorize'
import type { SmartMiddlewareOptions } from './options'

/**
 * The standalone launch route (the app opened outside the EHR): `GET ?iss=` → 302 to the EHR's authorization
 * endpoint, with the same allow-list, discovery, PKCE, state, nonce and `aud` as `smartLaunch`, no `launch`
 * parameter, and the configured scope without the bare `launch` scope (`launch/patient` asks the EHR's
 * patient picker for a patient). `iss` may be omitted when `knownFhirServers` names exactly one EHR.
 * `smartCallback()` completes it like an EHR launch.
 *
 * @example
 * app.get('/login', smartLogin({ config, options }))   // a "Sign in with <EHR>" link points here
 */
export function smartLogin(opts: SmartMiddlewareOptions): RequestHandler {
  return authorizingMiddleware('smartLogin', opts, (client, { iss }, launchOptions) => client.login(iss === undefined ? {} : { iss: iss as string }, launchOptions))
}
