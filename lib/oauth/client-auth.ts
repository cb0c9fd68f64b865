import * as oidc from 'openid-client'
import { importJWK, importPKCS8, type CryptoKey as JoseCryptoKey } from 'jose'
import type { KnownFhirServer } from '../config-servers'

type AsymmetricServer = Extract<KnownFhirServer, { type: 'confidential-asymmetric' }>

/**
 * The assertion's signing key. Configuration validation read it once already, and set `alg` (from the key)
 * and `keyId` (from the JWK's `kid` when not given). Imported per token request: a launch or a refresh.
 */
function importPrivateKey(server: AsymmetricServer): Promise<JoseCryptoKey> {
  const alg = server.alg as 'RS384' | 'ES384'
  return (typeof server.privateKey === 'string'
    ? importPKCS8(server.privateKey, alg)
    : importJWK(server.privateKey as Parameters<typeof importJWK>[0], alg)) as Promise<JoseCryptoKey>
}

/**
 * RFC 6749 §2.3.1 form-encoding of a Basic credential, except that RFC 3986 unreserved characters
 * (`A-Z a-z 0-9 - . _ ~`) stay as they are: openid-client encodes `-` as `%2D`, which EHRs that do
 * not decode the credentials refuse. For a server that decodes, both spellings are the same.
 */
function formEncodeCredential(value: string): string {
  return encodeURIComponent(value)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+')
}

function clientSecretBasic(clientSecret: string): oidc.ClientAuth {
  return (_as, client, _body, headers) => {
    const credentials = `${formEncodeCredential(client.client_id)}:${formEncodeCredential(clientSecret)}`
    headers.set('authorization', `Basic ${Buffer.from(credentials).toString('base64')}`)
  }
}

/**
 * The openid-client authentication for a known server (public when the issuer is open or unlisted).
 * private_key_jwt follows SMART: header `typ: JWT` and the key's `kid`, `aud` the token endpoint, `exp`
 * one minute ahead, a fresh `jti` each time (openid-client's default), RS384 or ES384 from the key.
 */
export async function clientAuthFor(server: KnownFhirServer | undefined, tokenEndpoint: string): Promise<oidc.ClientAuth> {
  if (server?.type === 'confidential-symmetric') {
    return server.method === 'client_secret_basic' ? clientSecretBasic(server.clientSecret) : oidc.ClientSecretPost(server.clientSecret)
  }
  if (server?.type === 'confidential-asymmetric') {
    const key = await importPrivateKey(server)
    return oidc.PrivateKeyJwt(
      { key, kid: server.keyId },
      {
        [oidc.modifyAssertion]: (header, payload) => {
          header.typ = 'JWT'
          payload.aud = tokenEndpoint
        },
      },
    )
  }
  // A public client, or an issuer that is open (allowAnyIssuer) or unlisted.
  return oidc.None()
}
