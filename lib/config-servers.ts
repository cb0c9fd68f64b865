import { createPrivateKey, type JsonWebKeyInput, type KeyObject } from 'node:crypto'
import { fail, requireString, requireUrl } from './config-fields'

/** `knownFhirServers`: the EHRs the app trusts, how it authenticates to each, validated once with the rest of the configuration (config.ts). */

/**
 * An EHR the app trusts, and how the app authenticates to its token endpoint.
 *
 * @example
 * const servers: KnownFhirServer[] = [
 *   { issuer: 'https://ehr.example.org/fhir', type: 'public' },
 *   { issuer: 'https://other.example/fhir', type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: process.env.SECRET! },
 *   { issuer: 'https://third.example/fhir', type: 'confidential-asymmetric', method: 'private_key_jwt', privateKey: jwk, keyId: 'key-1', alg: 'ES384' },
 * ]
 */
export type KnownFhirServer = {
  issuer: string
  name?: string
  /** This EHR's registration of the app, when it differs from `config.clientId` (SECURITY S39). */
  clientId?: string
  /** The scope to ask this EHR for, when it differs from `config.scope` (sent as written, never rewritten). */
  scope?: string
  /** Origins of this EHR's pages that may show the app in a frame (`Content-Security-Policy: frame-ancestors`), e.g. `['https://ehr.example.org']`. */
  frameAncestors?: string[]
} & (
  | { type: 'public' }
  | { type: 'confidential-symmetric'; method: 'client_secret_basic' | 'client_secret_post'; clientSecret: string }
  | {
      type: 'confidential-asymmetric'
      method: 'private_key_jwt'
      /** A private JWK or a PKCS#8 PEM string. */
      privateKey: JsonWebKey | string
      /** The `kid` of the assertion header. Default: the private JWK's `kid`; required with a PEM. */
      keyId?: string
      /** Default: from the key — RS384 for an RSA key, ES384 for an EC P-384 key. */
      alg?: 'RS384' | 'ES384'
    }
)

/** The issuer form used for allow-list comparison: exact string, minus one trailing slash. */
export function normalizeIssuer(iss: string): string {
  return iss.endsWith('/') ? iss.slice(0, -1) : iss
}

function validateServer(where: string, server: unknown): KnownFhirServer {
  if (typeof server !== 'object' || server === null) fail(where, 'must be an object')
  // A copy: the defaults below are written into it, never into the application's (possibly frozen) object.
  const s = { ...(server as Record<string, unknown>) }
  requireUrl(`${where}.issuer`, s.issuer)
  if (s.clientId !== undefined) requireString(`${where}.clientId`, s.clientId)
  if (s.scope !== undefined) s.scope = requireString(`${where}.scope`, s.scope).trim().split(/\s+/).join(' ')
  if (s.frameAncestors !== undefined) s.frameAncestors = Object.freeze(validateOrigins(`${where}.frameAncestors`, s.frameAncestors))
  switch (s.type) {
    case 'public':
      break
    case 'confidential-symmetric':
      if (s.method !== 'client_secret_basic' && s.method !== 'client_secret_post') {
        fail(`${where}.method`, 'must be "client_secret_basic" or "client_secret_post"')
      }
      requireString(`${where}.clientSecret`, s.clientSecret)
      break
    case 'confidential-asymmetric':
      if (s.method !== 'private_key_jwt') fail(`${where}.method`, 'must be "private_key_jwt"')
      if (typeof s.privateKey !== 'string' && (typeof s.privateKey !== 'object' || s.privateKey === null)) {
        fail(`${where}.privateKey`, 'must be a private JWK or a PKCS#8 PEM string')
      }
      if (s.alg !== undefined && s.alg !== 'RS384' && s.alg !== 'ES384') fail(`${where}.alg`, 'must be "RS384" or "ES384"')
      if (s.keyId !== undefined) requireString(`${where}.keyId`, s.keyId)
      // SMART requires a `kid` in every client assertion header: from keyId, or from the private JWK.
      else if (typeof s.privateKey === 'string' || typeof (s.privateKey as { kid?: unknown }).kid !== 'string' || (s.privateKey as { kid: string }).kid === '') {
        fail(`${where}.keyId`, 'is required: SMART needs a "kid" in the assertion header; set keyId, or a "kid" in the private JWK')
      } else s.keyId = (s.privateKey as { kid: string }).kid
      s.alg = signingAlgorithm(where, s.privateKey as JsonWebKey | string, s.alg as 'RS384' | 'ES384' | undefined)
      break
    default:
      fail(`${where}.type`, 'must be "public", "confidential-symmetric" or "confidential-asymmetric"')
  }
  return Object.freeze(s) as KnownFhirServer
}

/** A list of web origins (`https://host[:port]`, http for local development), as CSP `frame-ancestors` sources. */
function validateOrigins(where: string, value: unknown): string[] {
  if (!Array.isArray(value)) fail(where, 'must be an array of origins, e.g. ["https://ehr.example.org"]')
  return value.map((origin, i) => {
    let url: URL | null = null
    try {
      url = typeof origin === 'string' ? new URL(origin) : null
    } catch {
      url = null
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== origin || url.hostname.includes('*')) {
      fail(`${where}[${i}]`, `must be an origin such as "https://ehr.example.org" (scheme, host and port only), got ${JSON.stringify(origin)}`)
    }
    return origin as string
  })
}

/**
 * Reads the private key now, so that a key the EHR could never accept fails at configuration time with a
 * TypeError naming the field — never later, on every launch. The algorithm follows from the key when unset.
 */
function signingAlgorithm(where: string, privateKey: JsonWebKey | string, alg: 'RS384' | 'ES384' | undefined): 'RS384' | 'ES384' {
  if (typeof privateKey === 'string' && !privateKey.includes('-----BEGIN PRIVATE KEY-----')) {
    fail(`${where}.privateKey`, 'must be a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"; convert with `openssl pkcs8 -topk8 -nocrypt`) or a private JWK')
  }
  let key: KeyObject
  try {
    key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : createPrivateKey({ key: privateKey as JsonWebKeyInput['key'], format: 'jwk' })
  } catch {
    fail(`${where}.privateKey`, 'is not a readable private key (a private JWK with "d", or a PKCS#8 PEM)')
  }
  const curve = key.asymmetricKeyDetails?.namedCurve
  const fromKey = key.asymmetricKeyType === 'rsa' ? 'RS384' : key.asymmetricKeyType === 'ec' && curve === 'secp384r1' ? 'ES384' : null
  if (!fromKey) fail(`${where}.privateKey`, `must be an RSA key (RS384) or an EC P-384 key (ES384), not ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''}`)
  if (alg !== undefined && alg !== fromKey) fail(`${where}.alg`, `is ${alg}, but the key is for ${fromKey}`)
  return fromKey
}

export function validateServers(config: Record<string, unknown>): ReadonlyMap<string, KnownFhirServer> | null {
  const open = config.allowAnyIssuer
  const list = config.knownFhirServers
  if (open !== undefined && list !== undefined) fail('config', 'takes either allowAnyIssuer or knownFhirServers, not both')
  if (open !== undefined) {
    if (open !== true) fail('config.allowAnyIssuer', 'must be true (or use knownFhirServers)')
    return null
  }
  if (!Array.isArray(list) || list.length === 0) {
    fail('config.knownFhirServers', 'must be a non-empty array (or set allowAnyIssuer: true to accept any EHR)')
  }
  const servers = new Map<string, KnownFhirServer>()
  list.forEach((entry, i) => {
    const server = validateServer(`config.knownFhirServers[${i}]`, entry)
    servers.set(normalizeIssuer(server.issuer), server)
  })
  return servers
}
