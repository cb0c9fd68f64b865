import * as client from 'openid-client'
import type { AuthorizeOptions, LaunchContext, MockEhr } from '../../lib/testing'

/** Never requested: authorize() stops at the redirect back to it. */
export const REDIRECT_URI = 'http://127.0.0.1:9/callback'

export const PATIENT_SCOPE = 'openid fhirUser profile launch launch/patient patient/*.cruds offline_access'

/** A standalone launch's scope: launch/patient asks the EHR's picker for a patient; no bare `launch`. */
export const STANDALONE_SCOPE = 'openid fhirUser profile launch/patient patient/*.rs offline_access'

export async function configFor(
  ehr: MockEhr,
  clientId = 'mock-app',
  metadata?: Partial<client.ClientMetadata>,
  auth: client.ClientAuth = client.None(),
): Promise<client.Configuration> {
  return client.discovery(new URL(ehr.issuer), clientId, metadata, auth, { execute: [client.allowInsecureRequests] })
}

export interface Authorized {
  callback: URL
  verifier: string
  state: string
  nonce: string | undefined
}

export interface AuthorizationRequest {
  url: URL
  verifier: string
  state: string
  nonce: string | undefined
}

/** A standalone launch's authorization request: no `launch` parameter, `aud` the FHIR base. */
export async function standaloneRequest(ehr: MockEhr, config: client.Configuration, scope = STANDALONE_SCOPE): Promise<AuthorizationRequest> {
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = scope.split(' ').includes('openid') ? client.randomNonce() : undefined
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    ...(nonce ? { nonce } : {}),
    aud: ehr.iss,
  })
  return { url, verifier, state, nonce }
}

/** A standalone launch up to the redirect back to the app, answering the EHR as `as` says. */
export async function authorizeStandalone(
  ehr: MockEhr,
  config: client.Configuration,
  options: { scope?: string; as?: AuthorizeOptions } = {},
): Promise<Authorized> {
  const { url, ...request } = await standaloneRequest(ehr, config, options.scope)
  return { callback: await ehr.authorize(url.href, options.as), ...request }
}

export async function authorizeApp(
  ehr: MockEhr,
  config: client.Configuration,
  options: { scope?: string; context?: LaunchContext; aud?: string; launch?: string; extra?: Record<string, string>; as?: AuthorizeOptions } = {},
): Promise<Authorized> {
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const launchUrl = new URL(ehr.launchUrl('http://127.0.0.1:9/launch', options.context ?? { patient: 'patient-1' }))
  const scope = options.scope ?? PATIENT_SCOPE
  // oidc-provider refuses a nonce without the openid scope.
  const nonce = scope.split(' ').includes('openid') ? client.randomNonce() : undefined
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    ...(nonce ? { nonce } : {}),
    launch: options.launch ?? launchUrl.searchParams.get('launch')!,
    aud: options.aud ?? launchUrl.searchParams.get('iss')!,
    ...options.extra,
  })
  return { callback: await ehr.authorize(url.href, options.as), verifier, state, nonce }
}

export async function redeem(config: client.Configuration, authorized: Authorized): Promise<client.TokenEndpointResponse & client.TokenEndpointResponseHelpers> {
  return client.authorizationCodeGrant(config, authorized.callback, {
    pkceCodeVerifier: authorized.verifier,
    expectedState: authorized.state,
    expectedNonce: authorized.nonce,
  })
}

/** A complete launch: configuration, authorization and token exchange for the default public client. */
export async function launch(ehr: MockEhr, options: Parameters<typeof authorizeApp>[2] = {}) {
  const config = await configFor(ehr)
  return redeem(config, await authorizeApp(ehr, config, options))
}

export function fhir(ehr: MockEhr, path: string, token: string | null, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers)
  if (token !== null) headers.set('authorization', `Bearer ${token}`)
  if (init.body) headers.set('content-type', 'application/fhir+json')
  return fetch(path.startsWith('http') ? path : `${ehr.iss}/${path}`, { ...init, headers })
}
