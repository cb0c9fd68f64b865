import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose'
import { SmartClient, type SmartClientOptions, type SmartStorage } from '../../lib'
import type { MockEhr } from '../../lib/testing'
import { authorize, devOptions, ehrLaunch, openConfig } from './smart'

/** An issuer key of our own: id_tokens a test signs, and the JWKS that verifies them. */
export interface TestIssuerKey {
  kid: string
  privateKey: CryptoKey
  publicJwk: JWK
  publicPem: string
}

export async function issuerKey(kid = 'test-key-1'): Promise<TestIssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }, publicPem: await exportSPKI(publicKey) }
}

export function signRs256(key: TestIssuerKey, claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' }).sign(key.privateKey)
}

export interface OwnIdTokenLaunch {
  /** The mock EHR's launch, with the token response's id_token replaced by `idToken(claims)`. */
  idToken: (claims: JWTPayload) => Promise<string>
  /** The JWKS served at the mock EHR's jwks_uri instead of its own. */
  jwks: { keys: JWK[] }
  /** Changes the claims that fit this launch (iss, aud, sub, nonce, iat, exp). */
  claims?: (claims: JWTPayload) => JWTPayload
  options?: SmartClientOptions
}

/**
 * Launches against the real mock EHR, but with an id_token and a JWKS the test chose: what a real
 * server could send and the mock does not. Resolves with the callback's outcome (result or error).
 */
export async function launchWithOwnIdToken(ehr: MockEhr, storage: SmartStorage, sessionId: string, launch: OwnIdTokenLaunch) {
  let nonce: string | null = null
  const fetchFn: typeof fetch = async (input, init) => {
    const url = String(input)
    if (url === `${ehr.issuer}/jwks`) return Response.json(launch.jwks)
    const response = await fetch(input, init)
    if (url !== `${ehr.issuer}/token` || !String(init?.body).includes('grant_type=authorization_code') || response.status !== 200) return response
    const now = Math.floor(Date.now() / 1000)
    const base: JWTPayload = { iss: ehr.issuer, sub: 'smart-practitioner-1', aud: 'mock-app', nonce: nonce ?? undefined, iat: now, exp: now + 300, fhirUser: `${ehr.iss}/Practitioner/smart-practitioner-1` }
    const body = (await response.json()) as Record<string, unknown>
    return Response.json({ ...body, id_token: await launch.idToken(launch.claims ? launch.claims(base) : base) })
  }
  const client = new SmartClient(sessionId, storage, openConfig(), { ...devOptions, fetch: fetchFn, ...launch.options })
  const { redirectUrl } = await client.launch(ehrLaunch(ehr, { patient: 'patient-1' }))
  nonce = new URL(redirectUrl).searchParams.get('nonce')
  const query = await authorize(ehr, redirectUrl)
  const outcome = await client.callback(query).catch((err: unknown) => err)
  return { client, outcome }
}
