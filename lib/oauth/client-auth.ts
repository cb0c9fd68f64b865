import * as oidc from 'openid-client'
import { importJWK, importPKCS8, type CryptoKey as JoseCryptoKey } from 'jose'
import type { KnownFhirServer } from '../config'

type AsymmetricServer = Extract<KnownFhirServer, { type: 'confidential-asymmetric' }>

const keys = new WeakMap<KnownFhirServer, Promise<JoseCryptoKey>>()

function importPrivateKey(server: AsymmetricServer): Promise<JoseCryptoKey> {
  let key = keys.get(server)
  if (!key) {
    const alg = server.alg ?? 'RS384'
    key = (typeof server.privateKey === 'string'
      ? importPKCS8(server.privateKey, alg)
      : importJWK(server.privateKey as Parameters<typeof importJWK>[0], alg)) as Promise<JoseCryptoKey>
    keys.set(server, key)
    key.catch(() => keys.delete(server))
  }
  return key
}

/** The `kid` SMART requires in every assertion header; configuration validation made sure there is one. */
export function assertionKeyId(server: AsymmetricServer): string | undefined {
  const fromJwk = typeof server.privateKey === 'object' ? (server.privateKey as { kid?: unknown }).kid : undefined
  return server.keyId ?? (typeof fromJwk === 'string' ? fromJwk : undefined)
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
  switch (server?.type) {
    case undefined:
    case 'public':
      return oidc.None()
    case 'confidential-symmetric':
      return server.method === 'client_secret_basic' ? clientSecretBasic(server.clientSecret) : oidc.ClientSecretPost(server.clientSecret)
    case 'confidential-asymmetric': {
      const key = await importPrivateKey(server)
      return oidc.PrivateKeyJwt(
        { key, kid: assertionKeyId(server) },
        {
          [oidc.modifyAssertion]: (header, payload) => {
            header.typ = 'JWT'
            payload.aud = tokenEndpoint
          },
        },
      )
    }
  }
}
