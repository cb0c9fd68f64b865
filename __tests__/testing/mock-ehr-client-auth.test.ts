import { exportJWK, generateKeyPair } from 'jose'
import * as client from 'openid-client'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { authorizeApp, configFor, redeem } from './flow'

let confidential: MockEhr
let rsKey: CryptoKey
let ecKey: CryptoKey
let es256Key: CryptoKey
let tokenEndpoint: string
beforeAll(async () => {
  const rs = await generateKeyPair('RS384')
  const ec = await generateKeyPair('ES384')
  const es256 = await generateKeyPair('ES256')
  rsKey = rs.privateKey
  ecKey = ec.privateKey
  es256Key = es256.privateKey
  confidential = await createMockEhr({
    clients: [
      { clientId: 'basic-app', type: 'confidential-symmetric', clientSecret: 'basic-secret-0123456789', method: 'client_secret_basic' },
      { clientId: 'post-app', type: 'confidential-symmetric', clientSecret: 'post-secret-0123456789', method: 'client_secret_post' },
      { clientId: 'raw-app', type: 'confidential-symmetric', clientSecret: 'raw-secret_0.1~2', method: 'client_secret_basic', rawBasicCredentials: true },
      { clientId: 'rs-app', type: 'confidential-asymmetric', jwks: { keys: [{ ...await exportJWK(rs.publicKey), alg: 'RS384', kid: 'rs-1' }] }, alg: 'RS384' },
      { clientId: 'ec-app', type: 'confidential-asymmetric', jwks: { keys: [{ ...await exportJWK(ec.publicKey), kid: 'ec-1' }, { ...await exportJWK(es256.publicKey), kid: 'es256' }] } },
      { clientId: 'fixed-app', type: 'public', redirectUris: ['http://127.0.0.1:9/fixed'] },
    ],
  })
  tokenEndpoint = `${confidential.issuer}/token`
})
afterAll(() => confidential.close())

async function codeFlow(clientId: string, auth: client.ClientAuth) {
  const config = await configFor(confidential, clientId, undefined, auth)
  return redeem(config, await authorizeApp(confidential, config))
}

/** A private_key_jwt assertion as SMART wants it, which a test may then spoil in one way. */
function assertion(key: CryptoKey, kid: string, spoil: (header: Record<string, unknown>, payload: Record<string, unknown>) => void = () => undefined) {
  return client.PrivateKeyJwt({ key, kid }, {
    [client.modifyAssertion]: (header, payload) => {
      header.typ = 'JWT'
      payload.aud = tokenEndpoint
      spoil(header as Record<string, unknown>, payload as Record<string, unknown>)
    },
  })
}

/** Basic credentials exactly as given, without the form-encoding openid-client applies. */
function rawBasic(id: string, secret: string): client.ClientAuth {
  return (_as, _client, _body, headers) => headers.set('authorization', `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`)
}

test('client_secret_basic redeems a code; a wrong secret is refused', async () => {
  expect((await codeFlow('basic-app', client.ClientSecretBasic('basic-secret-0123456789'))).patient).toBe('patient-1')
  await expect(codeFlow('basic-app', client.ClientSecretBasic('wrong'))).rejects.toMatchObject({ status: 401 })
})

test('client_secret_post redeems a code', async () => {
  expect((await codeFlow('post-app', client.ClientSecretPost('post-secret-0123456789'))).access_token).toBeTruthy()
})

test('rawBasicCredentials: credentials are compared as sent, so form-encoded unreserved characters are refused', async () => {
  expect((await codeFlow('raw-app', rawBasic('raw-app', 'raw-secret_0.1~2'))).patient).toBe('patient-1')
  // openid-client sends raw%2Dapp:raw%2Dsecret%5F0%2E1%7E2, which a decoding server would accept.
  await expect(codeFlow('raw-app', client.ClientSecretBasic('raw-secret_0.1~2'))).rejects.toMatchObject({ status: 401 })
  await expect(codeFlow('raw-app', rawBasic('raw-app', 'raw-secret_0.1~3'))).rejects.toMatchObject({ status: 401 })
})

test('private_key_jwt (RS384) redeems a code with typ JWT, the kid and the token endpoint URL as aud', async () => {
  expect((await codeFlow('rs-app', assertion(rsKey, 'rs-1'))).patient).toBe('patient-1')
})

test('private_key_jwt (ES384) redeems a code; a key of another client is refused', async () => {
  expect((await codeFlow('ec-app', assertion(ecKey, 'ec-1'))).access_token).toBeTruthy()
  await expect(codeFlow('ec-app', assertion(rsKey, 'ec-1'))).rejects.toMatchObject({ status: 401 })
})

test.each([
  ['no typ', (header: Record<string, unknown>) => delete header.typ],
  ['typ other than JWT', (header: Record<string, unknown>) => (header.typ = 'at+jwt')],
  ['no kid', (header: Record<string, unknown>) => delete header.kid],
  ['a kid of no key of the client', (header: Record<string, unknown>) => (header.kid = 'other')],
  ['aud the issuer, not the token endpoint', (_h: Record<string, unknown>, payload: Record<string, unknown>) => (payload.aud = confidential.issuer)],
  ['aud a list', (_h: Record<string, unknown>, payload: Record<string, unknown>) => (payload.aud = [tokenEndpoint])],
  ['exp more than five minutes ahead', (_h: Record<string, unknown>, payload: Record<string, unknown>) => (payload.exp = Math.floor(Date.now() / 1000) + 10 * 60)],
  ['sub other than the client_id', (_h: Record<string, unknown>, payload: Record<string, unknown>) => (payload.sub = 'someone-else')],
])('S15 a private_key_jwt assertion with %s is refused', async (_name, spoil) => {
  // 401 invalid_client; oidc-provider itself answers 400 (client_id mismatch) to a foreign sub.
  const refused = await codeFlow('ec-app', assertion(ecKey, 'ec-1', spoil)).catch((err: { status?: number }) => err)
  expect([400, 401]).toContain((refused as { status?: number }).status)
})

test('S15 a private_key_jwt assertion signed with an algorithm other than RS384/ES384 is refused', async () => {
  await expect(codeFlow('ec-app', assertion(es256Key, 'es256'))).rejects.toMatchObject({ status: 401 })
})

test('S15 a replayed private_key_jwt assertion (same jti) is refused', async () => {
  const jti = `jti-${Date.now()}`
  const fixed = () => assertion(ecKey, 'ec-1', (_header, payload) => (payload.jti = jti))
  expect((await codeFlow('ec-app', fixed())).access_token).toBeTruthy()
  await expect(codeFlow('ec-app', fixed())).rejects.toMatchObject({ status: 401 })
})

test('registered redirect URIs are matched exactly', async () => {
  const config = await configFor(confidential, 'fixed-app')
  await expect(authorizeApp(confidential, config)).rejects.toThrow(/redirect_uri/)
})
