import { normalizeIssuer } from '../config-servers'
import { SmartError } from '../errors'
import { buildAuthorizationRequest } from '../oauth/authorization-server'
import type { Observation } from '../observe'
import { pinnedDiscovery } from '../session/callback-checks'
import { digest, sealSecrets, startPendingLaunch } from '../session/pending-launch'
import { checkCapabilities, scopeForEhr } from './capabilities'
import { authorizationServerFor, registrationFor } from './registration'
import type { ClientParts } from './runtime'

/**
 * Options of `SmartClient.launch()` and `login()`.
 *
 * @example
 * const binding = randomBytes(32).toString('base64url')   // kept in an HttpOnly cookie of this browser
 * await client.launch({ iss, launch }, { binding })
 */
export interface LaunchOptions {
  /** A fresh secret only the launching browser holds; the callback must present it (SECURITY S34). Its SHA-256 is stored. */
  binding?: string
  /**
   * Runs beside the write of the pending launch, given its `state`; the launch waits for both. The middleware
   * saves the browser session here, so that both writes reach the store at once: one round trip (node-redis
   * sends commands issued in the same turn together; a pool runs them on two connections at once).
   */
  alongside?: (state: string) => Promise<void>
}

/**
 * The launch step of `SmartClient.launch()` and `login()`: checks the issuer (allow-list first, before any
 * network call), discovers it, stores the pending launch and returns the authorization request's URL.
 */
export async function authorize(
  { rt, storage, session }: ClientParts, iss: string, launch: string | null, kind: 'ehr' | 'standalone', opts: LaunchOptions, observation: Observation,
): Promise<{ redirectUrl: string }> {
  const { config } = rt
  const known = config.knownFhirServers?.get(normalizeIssuer(iss))
  if (config.knownFhirServers && !known) throw new SmartError('UNKNOWN_ISSUER', 'This EHR (iss) is not one the app is configured to trust')
  let url: URL
  try {
    url = new URL(iss)
  } catch {
    throw new SmartError('MISSING_PARAMETER', 'The "iss" parameter must be an absolute URL')
  }
  if (url.protocol !== 'https:' && !(config.allowNonHttpsLaunch && url.protocol === 'http:')) {
    throw new SmartError('INSECURE_ISSUER', 'The EHR (iss) must use https; allowNonHttpsLaunch permits http for local development')
  }
  observation.set({ 'smart.iss': iss })
  const smart = await rt.discover(iss)
  const registration = registrationFor(config, iss)
  checkCapabilities(smart, iss, { kind, clientType: registration.server?.type ?? 'public' }, config.logger)
  const requested = kind === 'ehr' ? registration.scope : registration.standaloneScope
  const request = await buildAuthorizationRequest(authorizationServerFor(rt, iss, smart), {
    redirectUri: config.callbackUrl,
    scope: scopeForEhr(smart, iss, requested, registration.server?.scope !== undefined, config.logger),
    launch,
    openid: registration.openid,
  })
  const binding = typeof opts?.binding === 'string' && opts.binding.length >= 32 ? digest(opts.binding) : null
  const pending = startPendingLaunch(storage, request.state, {
    sessionId: session.sessionId,
    iss,
    binding,
    secrets: sealSecrets(config.encryptionKeys, request.state, { codeVerifier: request.codeVerifier, nonce: request.nonce }),
    smart: pinnedDiscovery(smart),
    createdAt: config.now(),
  })
  // Either failing fails the launch; what the other wrote is harmless: a pending launch no browser holds the cookie
  // of expires unused, and a session listing a state with no pending launch has its callback refused as unknown.
  await Promise.all([pending, opts.alongside?.(request.state)])
  return { redirectUrl: request.url }
}
