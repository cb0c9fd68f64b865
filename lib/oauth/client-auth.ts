import * as oidc from 'openid-client'
import { importJWK, importPKCS8, type CryptoKey as JoseCryptoKey } from 'jose'
import type { KnownFhirServer } from '../config'

const keys = new WeakMap<KnownFhirServer, Promise<JoseCryptoKey>>()

function importPrivateKey(server: Extract<KnownFhirServer, { type: 'confidential-asymmetric' }>): Promise<JoseCryptoKey> {
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

/**
 * The openid-client authentication for a known server (public when the issuer is open or unlisted).
 * private_key_jwt follows SMART: the assertion's `aud` is the token endpoint, `exp` one minute ahead,
 * a fresh `jti` each time (openid-client's default), RS384 or ES384 from the key.
 */
export async function clientAuthFor(server: KnownFhirServer | undefined, tokenEndpoint: string): Promise<oidc.ClientAuth> {
  switch (server?.type) {
    case undefined:
    case 'public':
      return oidc.None()
    case 'confidential-symmetric':
      return server.method === 'client_secret_basic' ? oidc.ClientSecretBasic(server.clientSecret) : oidc.ClientSecretPost(server.clientSecret)
    case 'confidential-asymmetric': {
      const key = await importPrivateKey(server)
      return oidc.PrivateKeyJwt(
        { key, kid: server.keyId },
        {
          [oidc.modifyAssertion]: (_header, payload) => {
            payload.aud = tokenEndpoint
          },
        },
      )
    }
  }
}
