import { MemoryStore } from 'express-session'
import { SmartClient, expressSessionStorage, type SmartClientConfiguration } from '../lib'

const storage = expressSessionStorage(new MemoryStore())
const base = {
  clientId: 'app',
  scope: 'openid fhirUser launch patient/*.rs',
  callbackUrl: 'https://app.example/callback',
  redirectUrl: '/app',
  allowAnyIssuer: true,
} as const

function construct(config: unknown, options?: unknown) {
  return () => new SmartClient('sid', storage, config as SmartClientConfiguration, options as never)
}

describe('configuration is validated at construction', () => {
  it('accepts a valid open configuration', () => {
    expect(construct(base)).not.toThrow()
  })

  it.each([
    ['clientId', { ...base, clientId: '' }, /config\.clientId/],
    ['scope', { ...base, scope: 42 }, /config\.scope/],
    ['callbackUrl', { ...base, callbackUrl: 'not a url' }, /config\.callbackUrl/],
    ['redirectUrl', { ...base, redirectUrl: undefined }, /config\.redirectUrl/],
    ['issuer policy', { clientId: 'a', scope: 's', callbackUrl: 'https://a/cb', redirectUrl: '/' }, /config\.knownFhirServers/],
    ['both issuer policies', { ...base, knownFhirServers: [] }, /either allowAnyIssuer or knownFhirServers/],
    ['server type', { ...base, allowAnyIssuer: undefined, knownFhirServers: [{ issuer: 'https://ehr/fhir', type: 'secret' }] }, /knownFhirServers\[0\]\.type/],
    [
      'secret',
      { ...base, allowAnyIssuer: undefined, knownFhirServers: [{ issuer: 'https://ehr/fhir', type: 'confidential-symmetric', method: 'client_secret_basic' }] },
      /knownFhirServers\[0\]\.clientSecret/,
    ],
    [
      'keyId with a PEM key',
      { ...base, allowAnyIssuer: undefined, knownFhirServers: [{ issuer: 'https://ehr/fhir', type: 'confidential-asymmetric', method: 'private_key_jwt', privateKey: '-----BEGIN PRIVATE KEY-----' }] },
      /knownFhirServers\[0\]\.keyId/,
    ],
    [
      'keyId with a JWK without kid',
      { ...base, allowAnyIssuer: undefined, knownFhirServers: [{ issuer: 'https://ehr/fhir', type: 'confidential-asymmetric', method: 'private_key_jwt', privateKey: { kty: 'EC' } }] },
      /knownFhirServers\[0\]\.keyId/,
    ],
  ])('names the field: %s', (_name, config, message) => {
    const run = construct(JSON.parse(JSON.stringify(config)))
    expect(run).toThrow(TypeError)
    expect(run).toThrow(message)
  })

  it('S15 accepts a private key whose kid comes from keyId or from the JWK', () => {
    const server = { issuer: 'https://ehr/fhir', type: 'confidential-asymmetric', method: 'private_key_jwt' }
    expect(construct({ ...base, allowAnyIssuer: undefined, knownFhirServers: [{ ...server, privateKey: '-----BEGIN PRIVATE KEY-----', keyId: 'k1' }] })).not.toThrow()
    expect(construct({ ...base, allowAnyIssuer: undefined, knownFhirServers: [{ ...server, privateKey: { kty: 'EC', kid: 'k1' } }] })).not.toThrow()
  })

  it('suggests the nearest key for a misspelt one', () => {
    expect(construct({ ...base, callbackURL: 'https://a/cb' })).toThrow(/config\.callbackURL .*did you mean "callbackUrl"/)
    expect(construct(base, { enableMultilaunch: true })).toThrow(/options\.enableMultilaunch .*did you mean "enableMultiLaunch"/)
  })

  it('rejects an encryptionKey that is not 32 bytes of base64', () => {
    expect(construct(base, { encryptionKey: Buffer.alloc(16).toString('base64') })).toThrow(/options\.encryptionKey/)
    expect(construct(base, { encryptionKey: Buffer.alloc(32, 7).toString('base64') })).not.toThrow()
  })

  it('rejects non-positive timeouts', () => {
    expect(construct(base, { httpTimeoutMs: 0 })).toThrow(/options\.httpTimeoutMs/)
  })

  it('rejects a missing session id or storage', () => {
    expect(() => new SmartClient('', storage, base)).toThrow(/sessionId/)
    expect(() => new SmartClient('sid', {} as never, base)).toThrow(/storage/)
  })
})
