import { MemoryStore } from 'express-session'
import { decodeJwt, decodeProtectedHeader, exportJWK, exportPKCS8, generateKeyPair } from 'jose'
import { SmartClient, expressSessionStorage, type KnownFhirServer } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { completeLaunch, devOptions, openConfig } from '../helpers/smart'

const storage = expressSessionStorage(new MemoryStore())
const context = { patient: 'patient-1', encounter: 'encounter-1' }
let n = 0
const session = () => `auth-${++n}`

/** What the app sends to the token endpoint: client assertions and Basic credentials, in order. */
function tokenRequestRecorder() {
  const assertions: string[] = []
  const basic: string[] = []
  /** The client_secret of each token request's body, null when there was none. */
  const posted: Array<string | null> = []
  const fetchFn: typeof fetch = async (input, init) => {
    const body = new URLSearchParams(String(init?.body ?? ''))
    if (body.has('grant_type')) posted.push(body.get('client_secret'))
    const assertion = body.get('client_assertion')
    if (assertion) assertions.push(assertion)
    const authorization = new Headers(init?.headers).get('authorization')
    if (authorization?.startsWith('Basic ')) basic.push(Buffer.from(authorization.slice(6), 'base64').toString('utf8'))
    return fetch(input, init)
  }
  return { assertions, basic, posted, fetch: fetchFn }
}

type ServerAuth = KnownFhirServer extends infer S ? (S extends unknown ? Omit<S, 'issuer'> : never) : never

function clientFor(ehr: MockEhr, clientId: string, auth: ServerAuth, fetchFn?: typeof fetch): SmartClient {
  const config = openConfig({ clientId, allowAnyIssuer: undefined, knownFhirServers: [{ issuer: ehr.iss, ...auth }] } as never)
  return new SmartClient(session(), storage, config, { ...devOptions, ...(fetchFn ? { fetch: fetchFn } : {}) })
}

let confidential: MockEhr
let rsPrivate: JsonWebKey
let esPrivate: JsonWebKey
let rsPem: string
beforeAll(async () => {
  const rs = await generateKeyPair('RS384', { extractable: true })
  const es = await generateKeyPair('ES384', { extractable: true })
  rsPrivate = (await exportJWK(rs.privateKey)) as JsonWebKey
  esPrivate = (await exportJWK(es.privateKey)) as JsonWebKey
  rsPem = await exportPKCS8(rs.privateKey)
  confidential = await createMockEhr({
    clients: [
      { clientId: 'basic-app', type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 'basic-secret-value' },
      { clientId: 'post-app', type: 'confidential-symmetric', method: 'client_secret_post', clientSecret: 'post-secret-value' },
      { clientId: 'rs-app', type: 'confidential-asymmetric', alg: 'RS384', jwks: { keys: [{ ...(await exportJWK(rs.publicKey)), kid: 'rs-1' } as JsonWebKey] } },
      { clientId: 'es-app', type: 'confidential-asymmetric', alg: 'ES384', jwks: { keys: [{ ...(await exportJWK(es.publicKey)), kid: 'es-1' } as JsonWebKey] } },
      { clientId: 'my-app_v1.0~x', type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 'se-cr_et.v1~z', rawBasicCredentials: true },
      { clientId: 'app:1 x', type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 'p@ss w0rd:/%+&!*()' },
    ],
  })
})
afterAll(() => confidential.close())

describe('S15 confidential clients redeem codes with their own authentication', () => {
  const cases = () =>
    [
      ['client_secret_basic', 'basic-app', { type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 'basic-secret-value' }],
      ['client_secret_post', 'post-app', { type: 'confidential-symmetric', method: 'client_secret_post', clientSecret: 'post-secret-value' }],
      ['private_key_jwt RS384', 'rs-app', { type: 'confidential-asymmetric', method: 'private_key_jwt', privateKey: rsPrivate, keyId: 'rs-1', alg: 'RS384' }],
      ['private_key_jwt ES384', 'es-app', { type: 'confidential-asymmetric', method: 'private_key_jwt', privateKey: esPrivate, keyId: 'es-1', alg: 'ES384' }],
      ['private_key_jwt RS384 from a PKCS#8 PEM', 'rs-app', { type: 'confidential-asymmetric', method: 'private_key_jwt', privateKey: rsPem, keyId: 'rs-1', alg: 'RS384' }],
    ] as const

  it.each(['client_secret_basic', 'client_secret_post', 'private_key_jwt RS384', 'private_key_jwt ES384', 'private_key_jwt RS384 from a PKCS#8 PEM'])('%s', async (name) => {
    const [, clientId, auth] = cases().find(([method]) => method === name)!
    const client = clientFor(confidential, clientId, auth)
    await completeLaunch(confidential, context, client)
    await expect(client.ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    await expect(client.refresh()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
  })

  it('each method sends the credentials its own way: client_secret_post in the body only, client_secret_basic in the header only', async () => {
    const post = tokenRequestRecorder()
    const postClient = clientFor(confidential, 'post-app', { type: 'confidential-symmetric', method: 'client_secret_post', clientSecret: 'post-secret-value' }, post.fetch)
    await completeLaunch(confidential, context, postClient)
    await postClient.refresh()
    expect({ posted: post.posted, basic: post.basic }).toEqual({ posted: ['post-secret-value', 'post-secret-value'], basic: [] })

    const basic = tokenRequestRecorder()
    const basicClient = clientFor(confidential, 'basic-app', { type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 'basic-secret-value' }, basic.fetch)
    await completeLaunch(confidential, context, basicClient)
    expect({ posted: basic.posted, basic: basic.basic }).toEqual({ posted: [null], basic: ['basic-app:basic-secret-value'] })
  })

  it('a wrong client secret is refused by the EHR (TOKEN_EXCHANGE_FAILED 400, invalid_client from its 401 challenge), and the secret is not in the message', async () => {
    const client = clientFor(confidential, 'basic-app', { type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 'wrong-secret' })
    const err = await completeLaunch(confidential, context, client).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'TOKEN_EXCHANGE_FAILED', status: 400, message: 'The EHR refused the authorization code (invalid_client)' })
    expect((err as Error).message).not.toContain('wrong-secret')
  })
})

describe('S15 private_key_jwt assertions', () => {
  it('S15 have typ JWT and the kid, iss = sub = client_id, aud = the token endpoint, exp within 5 min and a fresh jti each time', async () => {
    const recorder = tokenRequestRecorder()
    const client = clientFor(confidential, 'rs-app', { type: 'confidential-asymmetric', method: 'private_key_jwt', privateKey: rsPrivate, keyId: 'rs-1', alg: 'RS384' }, recorder.fetch)
    await completeLaunch(confidential, context, client)
    await client.refresh()
    expect(recorder.assertions).toHaveLength(2)
    for (const assertion of recorder.assertions) {
      expect(decodeProtectedHeader(assertion)).toEqual({ alg: 'RS384', typ: 'JWT', kid: 'rs-1' })
      const claims = decodeJwt(assertion)
      expect(claims).toMatchObject({ iss: 'rs-app', sub: 'rs-app', aud: `${confidential.issuer}/token` })
      expect(claims.exp! - Date.now() / 1000).toBeLessThanOrEqual(5 * 60)
      expect(claims.jti).toEqual(expect.any(String))
    }
    expect(new Set(recorder.assertions.map((a) => decodeJwt(a).jti)).size).toBe(2)
  })

  it('S15 take the kid from the private JWK when keyId is not set', async () => {
    const recorder = tokenRequestRecorder()
    const client = clientFor(confidential, 'es-app', { type: 'confidential-asymmetric', method: 'private_key_jwt', privateKey: { ...esPrivate, kid: 'es-1' } as JsonWebKey, alg: 'ES384' }, recorder.fetch)
    await completeLaunch(confidential, context, client)
    await expect(client.ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    expect(decodeProtectedHeader(recorder.assertions[0])).toMatchObject({ alg: 'ES384', typ: 'JWT', kid: 'es-1' })
  })
})

describe('client_secret_basic credentials', () => {
  it('regression: unreserved characters (- . _ ~) in client id and secret are sent as they are, for EHRs that do not decode', async () => {
    const recorder = tokenRequestRecorder()
    const client = clientFor(confidential, 'my-app_v1.0~x', { type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 'se-cr_et.v1~z' }, recorder.fetch)
    await completeLaunch(confidential, context, client)
    await expect(client.refresh()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    expect(recorder.basic).toEqual(['my-app_v1.0~x:se-cr_et.v1~z', 'my-app_v1.0~x:se-cr_et.v1~z'])
  })

  it('any other character is still form-encoded (RFC 6749 2.3.1), so a decoding EHR reads the same credentials', async () => {
    const recorder = tokenRequestRecorder()
    const client = clientFor(confidential, 'app:1 x', { type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 'p@ss w0rd:/%+&!*()' }, recorder.fetch)
    await completeLaunch(confidential, context, client)
    await expect(client.ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    expect(recorder.basic[0]).toBe('app%3A1+x:p%40ss+w0rd%3A%2F%25%2B%26%21%2A%28%29')
  })
})
