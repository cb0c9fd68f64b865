import { errors, type KoaContextWithOIDC } from 'oidc-provider'
import type { MockEhrClient } from './types'

/**
 * Client authentication as strict as the SMART reference launcher, where oidc-provider is lenient: an
 * app that passes here does not fail at a real EHR for a header or encoding oidc-provider forgives.
 */

type Asymmetric = Extract<MockEhrClient, { type: 'confidential-asymmetric' }>
type Symmetric = Extract<MockEhrClient, { type: 'confidential-symmetric' }>

/** SMART App Launch 2.x, client-confidential-asymmetric. */
const ASSERTION_ALGORITHMS = ['RS384', 'ES384']
const MAX_ASSERTION_LIFETIME_SECONDS = 5 * 60

function refuse(detail: string): never {
  throw new errors.InvalidClientAuth(detail)
}

/**
 * oidc-provider's `assertJwtClientAuthClaimsAndHeader` hook, run after it verified the assertion's
 * signature, `iss` = `sub` = client_id, presence of `exp`/`jti` and replay: the SMART rules it does not
 * check. `aud` must be the token endpoint URL exactly (oidc-provider would also take the issuer).
 */
export function strictAssertionCheck(clients: readonly MockEhrClient[], tokenEndpoint: string) {
  const asymmetric = new Map(clients.filter((c): c is Asymmetric => c.type === 'confidential-asymmetric').map((c) => [c.clientId, c]))
  return async function assertSmartClientAssertion(
    _ctx: unknown,
    claims: Record<string, unknown>,
    header: Record<string, unknown>,
    client: { clientId: string },
  ): Promise<void> {
    const registered = asymmetric.get(client.clientId)
    if (!registered) return
    if (header.typ !== 'JWT') refuse('the client_assertion header must have typ "JWT"')
    if (typeof header.kid !== 'string' || header.kid === '') refuse('the client_assertion header must have a kid')
    if (!registered.jwks.keys.some((key) => key.kid === header.kid)) refuse('the client_assertion kid names no key of this client')
    if (!ASSERTION_ALGORITHMS.includes(String(header.alg))) refuse('the client_assertion must be signed with RS384 or ES384')
    if (claims.aud !== tokenEndpoint) refuse('the client_assertion aud must be the token endpoint URL')
    if (typeof claims.exp !== 'number' || claims.exp > Date.now() / 1000 + MAX_ASSERTION_LIFETIME_SECONDS) {
      refuse('the client_assertion exp must be at most five minutes ahead')
    }
    if (typeof claims.jti !== 'string' || claims.jti === '') refuse('the client_assertion must have a jti')
  }
}

function decodeFormComponent(value: string): string | null {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '))
  } catch {
    return null
  }
}

/**
 * For clients registered with `rawBasicCredentials`: the Basic credentials are compared as sent, without
 * form-decoding, like EHRs that never decode them. `my%2Dapp` is then not `my-app`.
 */
export function rawBasicCredentialsCheck(clients: readonly MockEhrClient[], routes: readonly string[]) {
  const raw = new Map(clients.filter((c): c is Symmetric => c.type === 'confidential-symmetric' && c.rawBasicCredentials === true).map((c) => [c.clientId, c]))
  return async function compareRawBasicCredentials(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
    const match = /^Basic\s+(\S+)$/i.exec(ctx.get('authorization'))
    if (raw.size === 0 || ctx.method !== 'POST' || !routes.includes(ctx.path) || !match) return next()
    const credentials = Buffer.from(match[1], 'base64').toString('utf8')
    const colon = credentials.indexOf(':')
    const [id, secret] = colon === -1 ? [credentials, ''] : [credentials.slice(0, colon), credentials.slice(colon + 1)]
    const client = raw.get(decodeFormComponent(id) ?? id)
    if (client && (id !== client.clientId || secret !== client.clientSecret)) {
      ctx.status = 401
      ctx.set('www-authenticate', 'Basic realm="mock-ehr"')
      ctx.body = { error: 'invalid_client', error_description: 'client authentication failed (credentials are compared without decoding)' }
      return
    }
    return next()
  }
}
