import { createHash, randomBytes } from 'node:crypto'
import * as oidc from 'openid-client'
import type { KnownFhirServer } from '../config-servers'
import { oauthErrorCode, SmartError } from '../errors'
import type { SmartConfiguration } from './discovery'
import { clientAuthFor } from './client-auth'
import { boundedFetch, HttpFailure, type HttpLimits } from './http'

/** Everything needed to talk to one EHR's authorization server. */
export interface AuthorizationServer {
  iss: string
  smart: SmartConfiguration
  clientId: string
  server: KnownFhirServer | undefined
  http: HttpLimits
  allowHttp: boolean
}

/** A token endpoint answer: the JSON openid-client validated, and the id_token it never saw. */
export interface TokenAnswer {
  response: oidc.TokenEndpointResponse
  idToken: string | null
}

/**
 * An openid-client Configuration whose fetch is bounded (timeout, no redirects, size cap) and takes the
 * id_token out of token responses: we verify it ourselves with jose against the issuer's JWKS, and a
 * refreshed id_token (which SMART sandboxes send without `aud`/`nonce`) is not needed at all.
 */
async function configure(as: AuthorizationServer, takeIdToken: (idToken: string) => void): Promise<oidc.Configuration> {
  const metadata: oidc.ServerMetadata = {
    issuer: as.smart.issuer ?? as.iss,
    authorization_endpoint: as.smart.authorization_endpoint,
    token_endpoint: as.smart.token_endpoint,
    revocation_endpoint: as.smart.revocation_endpoint,
  }
  const auth = await clientAuthFor(as.server, as.smart.token_endpoint)
  const config = new oidc.Configuration(metadata, as.clientId, undefined, auth)
  // openid-client calls with the parsed, normalised URL: `HTTPS://EHR.example:443/./token` arrives as
  // `https://ehr.example/token`, so compare normalised forms, never the discovery document's spelling.
  const tokenEndpoint = new URL(as.smart.token_endpoint).href
  config[oidc.customFetch] = async (url, options) => {
    const response = await boundedFetch(as.http, url, options as RequestInit)
    if (new URL(url).href !== tokenEndpoint || response.status !== 200) return response
    const text = await response.text()
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      return new Response(text, response)
    }
    if (typeof json === 'object' && json !== null && typeof (json as { id_token?: unknown }).id_token === 'string') {
      const { id_token: idToken, ...rest } = json as { id_token: string }
      takeIdToken(idToken)
      return new Response(JSON.stringify(rest), response)
    }
    return new Response(text, response)
  }
  if (as.allowHttp) oidc.allowInsecureRequests(config)
  return config
}

/**
 * RFC 7636 S256: BASE64URL(SHA-256(ASCII(code_verifier))). The same value as openid-client's
 * `calculatePKCECodeChallenge`, computed synchronously: WebCrypto's asynchronous digest round-trips through
 * the thread pool and was a quarter of a launch's CPU time.
 */
function pkceChallenge(codeVerifier: string): string {
  return createHash('sha256').update(codeVerifier, 'ascii').digest('base64url')
}

export interface AuthorizationRequest {
  url: string
  state: string
  codeVerifier: string
  nonce: string | null
}

/**
 * Builds the SMART authorization URL: PKCE S256, state, nonce (with openid), `aud`, and `launch` for an EHR
 * launch. Random values come from openid-client; the URL is the discovered `authorization_endpoint` (https
 * checked at discovery, S2) with these query parameters — all an authorization request is, so no client
 * configuration (or key import) is built for it.
 */
export async function buildAuthorizationRequest(
  as: AuthorizationServer,
  params: { redirectUri: string; scope: string; launch: string | null; openid: boolean },
): Promise<AuthorizationRequest> {
  // 32 random bytes each, base64url, as openid-client's randomPKCECodeVerifier/randomState/randomNonce make
  // them; drawn in one call (the launch is on every EHR click: three WebCrypto calls cost more than one).
  const random = randomBytes(96)
  const codeVerifier = random.subarray(0, 32).toString('base64url')
  const state = random.subarray(32, 64).toString('base64url')
  const nonce = params.openid ? random.subarray(64, 96).toString('base64url') : null
  const query: Record<string, string> = {
    client_id: as.clientId,
    response_type: 'code',
    redirect_uri: params.redirectUri,
    scope: params.scope,
    state,
    aud: as.iss,
    code_challenge: pkceChallenge(codeVerifier),
    code_challenge_method: 'S256',
  }
  if (nonce) query.nonce = nonce
  // EHR launch: the EHR's launch id, passed back unchanged (S5). Standalone launch: none.
  if (params.launch !== null) query.launch = params.launch
  const url = new URL(as.smart.authorization_endpoint)
  // The endpoint's own query parameters stay; ours replace any of the same name. One serialization.
  const search = new URLSearchParams(url.search)
  for (const [name, value] of Object.entries(query)) search.set(name, value)
  url.search = search.toString()
  return { url: url.href, state, codeVerifier, nonce }
}

/** The OAuth `error` of a refusal: in the JSON body, or in a 401's WWW-Authenticate challenge. */
function refusalCode(err: oidc.ResponseBodyError | oidc.WWWAuthenticateChallengeError): string {
  const challenged = err instanceof oidc.WWWAuthenticateChallengeError ? err.cause[0]?.parameters.error : undefined
  return oauthErrorCode(err instanceof oidc.ResponseBodyError ? err.error : challenged) ?? `HTTP ${err.status}`
}

/** Our SmartError for a failed grant; what it keeps of openid-client's error is sanitized (no body). */
function tokenFailure(err: unknown, step: 'code' | 'refresh'): SmartError {
  if (err instanceof SmartError) return err
  if (err instanceof oidc.ResponseBodyError || err instanceof oidc.WWWAuthenticateChallengeError) {
    const code = refusalCode(err)
    // The server refused the grant: a refused refresh ends the SMART session (SECURITY S33).
    if (step === 'refresh') return new SmartError('SESSION_EXPIRED', `The EHR refused to refresh the session (${code}); launch again`, { cause: err })
    return new SmartError('TOKEN_EXCHANGE_FAILED', `The EHR refused the authorization code (${code})`, { cause: err, status: 400 })
  }
  let transport: unknown = err
  while (transport instanceof Error && !(transport instanceof HttpFailure) && transport.cause !== undefined) transport = transport.cause
  const why = transport instanceof HttpFailure
    ? transport.message
    // openid-client keeps the Response of an answer it could not use: a non-2xx one without an OAuth error body.
    : transport instanceof Response && !transport.ok
      ? `the server answered ${transport.status}`
      : 'the answer was malformed'
  return new SmartError('TOKEN_EXCHANGE_FAILED', `The EHR's token endpoint failed: ${why}`, { cause: err })
}

/** Redeems the authorization code with the launch's PKCE verifier and the configured redirect_uri. */
export async function redeemCode(
  as: AuthorizationServer,
  params: { redirectUri: string; code: string; state: string; codeVerifier: string },
): Promise<TokenAnswer> {
  let idToken: string | null = null
  try {
    const config = await configure(as, (token) => (idToken = token))
    const currentUrl = new URL(params.redirectUri)
    currentUrl.search = new URLSearchParams({ code: params.code, state: params.state }).toString()
    const response = await oidc.authorizationCodeGrant(config, currentUrl, {
      pkceCodeVerifier: params.codeVerifier,
      expectedState: params.state,
      idTokenExpected: false,
    })
    return { response, idToken }
  } catch (err) {
    throw tokenFailure(err, 'code')
  }
}

/** Uses a refresh token once. The refreshed id_token, if any, is dropped: identity comes from the launch. */
export async function redeemRefreshToken(as: AuthorizationServer, refreshToken: string): Promise<oidc.TokenEndpointResponse> {
  try {
    const config = await configure(as, () => undefined)
    return await oidc.refreshTokenGrant(config, refreshToken)
  } catch (err) {
    throw tokenFailure(err, 'refresh')
  }
}

/** Revokes a token where the EHR has a revocation endpoint; best effort (a failure is not the user's problem). */
export async function revokeToken(as: AuthorizationServer, token: string, hint: 'access_token' | 'refresh_token'): Promise<void> {
  if (!as.smart.revocation_endpoint) return
  try {
    const config = await configure(as, () => undefined)
    await oidc.tokenRevocation(config, token, { token_type_hint: hint })
  } catch {
    // Best effort: the launch ends here whatever the EHR answers.
  }
}
