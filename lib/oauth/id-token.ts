import { createRemoteJWKSet, customFetch, jwtVerify, type JWTPayload } from 'jose'
import { SmartError } from '../errors'
import { boundedFetch, type HttpLimits } from './http'

/** Asymmetric algorithms only: no `none`, no HS* (a public key must never verify an HMAC). */
const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512']
const CLOCK_TOLERANCE_SECONDS = 60
const MAX_ID_TOKEN_AGE_SECONDS = 10 * 60

export interface IdTokenExpectations {
  issuer: string | undefined
  jwksUri: string | undefined
  clientId: string
  nonce: string | null
  now: () => number
  http: HttpLimits
}

type KeySet = ReturnType<typeof createRemoteJWKSet>

const keySetsByFetch = new WeakMap<typeof fetch, Map<string, KeySet>>()
/** JWKS key sets kept per fetch implementation (each EHR has one); the oldest go first. */
export const MAX_KEY_SETS = 1000

/** How many key sets the cache of `fetchImpl` holds (for the memory-bound tests). */
export function keySetCount(fetchImpl: typeof fetch): number {
  return keySetsByFetch.get(fetchImpl)?.size ?? 0
}

/** One JWKS (with jose's own caching, cooldown and refetch on an unknown kid) per jwks_uri and fetch implementation. */
function keySetFor(jwksUri: string, http: HttpLimits): KeySet {
  let sets = keySetsByFetch.get(http.fetch)
  if (!sets) keySetsByFetch.set(http.fetch, (sets = new Map()))
  let set = sets.get(jwksUri)
  if (!set) {
    if (sets.size >= MAX_KEY_SETS) sets.delete(sets.keys().next().value as string)
    set = createRemoteJWKSet(new URL(jwksUri), {
      timeoutDuration: http.timeoutMs,
      [customFetch]: (url, init) => boundedFetch(http, url, { method: init.method, headers: init.headers, signal: init.signal }, 256 * 1024),
    })
    sets.set(jwksUri, set)
  }
  return set
}

function invalid(reason: string, cause?: unknown): SmartError {
  return new SmartError('INVALID_ID_TOKEN', `The id_token was rejected: ${reason}`, { cause })
}

/**
 * Verifies an id_token as OpenID Connect Core §3.1.3.7 asks: signature by a key of the expected issuer's
 * JWKS (never a key the token names itself), allowed algorithm, exact `iss`, `aud` containing our
 * client id, `exp`/`iat` within a bounded skew, and the launch's `nonce`.
 */
export async function verifyIdToken(idToken: string, expected: IdTokenExpectations): Promise<JWTPayload> {
  if (!expected.issuer || !expected.jwksUri) {
    throw invalid('the EHR sent an id_token but its smart-configuration names no issuer and jwks_uri to verify it')
  }
  let payload: JWTPayload
  try {
    ;({ payload } = await jwtVerify(idToken, keySetFor(expected.jwksUri, expected.http), {
      algorithms: ALLOWED_ALGORITHMS,
      issuer: expected.issuer,
      audience: expected.clientId,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      maxTokenAge: MAX_ID_TOKEN_AGE_SECONDS + CLOCK_TOLERANCE_SECONDS,
      // iss, aud and iat are required by the issuer, audience and maxTokenAge checks above.
      requiredClaims: ['sub', 'exp'],
      currentDate: new Date(expected.now()),
    }))
  } catch (err) {
    const { code = '', claim } = err as { code?: string; claim?: unknown }
    const what = code ? code.replace(/^ERR_/, '').toLowerCase().replace(/_/g, ' ') : 'verification failed'
    // jose names the claim that failed (aud, iss, exp, nbf, iat…): a name from a fixed set, never a value.
    const named = typeof claim === 'string' && /^[a-z_]{2,20}$/i.test(claim) ? ` (${claim})` : ''
    throw invalid(`${what}${named}`, err)
  }
  // OpenID Connect Core 3.1.3.7: with several audiences the token must name its authorized party, and
  // an azp, whenever present, must be this client (a token issued to another client is not ours).
  if (payload.azp !== undefined && payload.azp !== expected.clientId) throw invalid('azp is not this client')
  if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp === undefined) throw invalid('several audiences and no azp')
  if (expected.nonce !== null && payload.nonce !== expected.nonce) throw invalid('nonce does not match this launch')
  return payload
}
