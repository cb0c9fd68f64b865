import { SmartError } from '../errors'
import type { SmartConfiguration } from '../oauth/discovery'
import type { PendingLaunch } from '../storage/records'

/** The discovery fields a callback needs, pinned at launch time (mix-up defence: the callback talks to the same server). */
export function pinnedDiscovery(smart: SmartConfiguration): PendingLaunch['smart'] {
  const { issuer, authorization_endpoint, token_endpoint, jwks_uri, revocation_endpoint, authorization_response_iss_parameter_supported } = smart
  return { issuer, authorization_endpoint, token_endpoint, jwks_uri, revocation_endpoint, authorization_response_iss_parameter_supported }
}

/** RFC 9207 (SECURITY S14): a returned `iss` must be the discovered issuer; required when the server says it sends one. */
export function checkResponseIssuer(smart: PendingLaunch['smart'], iss: string | undefined): void {
  if (iss === undefined) {
    if (smart.authorization_response_iss_parameter_supported === true) {
      throw new SmartError('ISSUER_MISMATCH', 'The authorization response lacks the "iss" its server promises (RFC 9207)')
    }
    return
  }
  if (typeof iss !== 'string' || (smart.issuer !== undefined && iss !== smart.issuer)) {
    throw new SmartError('ISSUER_MISMATCH', 'The authorization response comes from another issuer than the one this launch used (RFC 9207)')
  }
}

/** `redirectUrl` with `?patient=<selector>` (multi-launch): what the page keeps and sends back as `X-Active-Patient`. */
export function withActivePatient(redirectUrl: string, selector: string): string {
  const [path, hash] = redirectUrl.split('#', 2)
  const joined = `${path}${path.includes('?') ? '&' : '?'}patient=${encodeURIComponent(selector)}`
  return hash === undefined ? joined : `${joined}#${hash}`
}
