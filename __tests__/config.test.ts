import { generateKeyPairSync, type KeyObject } from 'node:crypto'
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

  it.each([null, undefined, 'config', 42])('a configuration that is not an object (%p) is a TypeError saying so', (config) => {
    expect(construct(config)).toThrow(TypeError)
    expect(construct(config)).toThrow(/config must be an object/)
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

  describe('private_key_jwt keys are read at construction, never first at a launch', () => {
    const server = { issuer: 'https://ehr/fhir', type: 'confidential-asymmetric', method: 'private_key_jwt' }
    const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const pem = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }) as string
    const jwk = (key: KeyObject, kid = 'k1') => ({ ...key.export({ format: 'jwk' }), kid })
    const withKey = (fields: Record<string, unknown>) => construct({ ...base, allowAnyIssuer: undefined, knownFhirServers: [{ ...server, ...fields }] })

    it('S15 accepts RSA and EC P-384 keys, as JWK (kid from the JWK) or PKCS#8 PEM (kid from keyId), with or without alg', () => {
      for (const ok of [
        { privateKey: pem(ec384.privateKey), keyId: 'k1' }, { privateKey: jwk(ec384.privateKey), alg: 'ES384' },
        { privateKey: pem(rsa.privateKey), keyId: 'k1', alg: 'RS384' }, { privateKey: jwk(rsa.privateKey) },
      ]) expect(withKey(ok)).not.toThrow()
    })

    it("regression: the application's server object is read, never written to, and may be frozen", () => {
      const frozen = Object.freeze({ ...server, privateKey: Object.freeze(jwk(rsa.privateKey)) })
      const before = JSON.stringify(frozen)
      expect(construct({ ...base, allowAnyIssuer: undefined, knownFhirServers: [frozen] })).not.toThrow()
      expect(JSON.stringify(frozen)).toBe(before)
      expect(frozen).not.toHaveProperty('alg')
    })

    it.each([
      ['an EC key with alg RS384', () => ({ privateKey: jwk(ec384.privateKey), alg: 'RS384' }), /knownFhirServers\[0\]\.alg.*ES384/],
      ['an RSA key with alg ES384', () => ({ privateKey: pem(rsa.privateKey), keyId: 'k1', alg: 'ES384' }), /knownFhirServers\[0\]\.alg/],
      ['an EC P-256 key', () => ({ privateKey: jwk(ec256.privateKey) }), /knownFhirServers\[0\]\.privateKey.*P-384/],
      ['a public JWK (no "d")', () => ({ privateKey: jwk(ec384.publicKey), alg: 'ES384' }), /knownFhirServers\[0\]\.privateKey/],
      ['text that is no key', () => ({ privateKey: 'not a pem', keyId: 'k1' }), /knownFhirServers\[0\]\.privateKey/],
      ['a truncated PEM', () => ({ privateKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----', keyId: 'k1' }), /knownFhirServers\[0\]\.privateKey/],
      ['a PKCS#1 PEM', () => ({ privateKey: rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string, keyId: 'k1' }), /knownFhirServers\[0\]\.privateKey.*PKCS#8/],
    ])('regression: %s is a TypeError naming the field', (_name, fields, message) => {
      const run = withKey(fields())
      expect(run).toThrow(TypeError)
      expect(run).toThrow(message)
    })
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

  it('names what is wrong with the session, the storage or the active patient', () => {
    const noSession = new TypeError('express-smart-on-fhir: sessionId must be a non-empty string')
    for (const session of ['', 42, null, { sessionId: '' }, { sessionId: 7, activePatient: null }]) {
      expect(() => new SmartClient(session as never, storage, base)).toThrow(noSession)
    }
    const notStorage = new TypeError('express-smart-on-fhir: storage must implement SmartStorage (get, set, delete)')
    const { get, set, delete: del } = storage
    for (const broken of [null, { set, delete: del }, { get, delete: del }, { get, set }, { get: 'get', set, delete: del }]) {
      expect(() => new SmartClient('sid', broken as never, base)).toThrow(notStorage)
    }
    expect(() => new SmartClient({ sessionId: 'sid', activePatient: 42 as never }, storage, base)).toThrow(new TypeError('express-smart-on-fhir: activePatient must be a string or null'))
    for (const activePatient of [null, undefined, 'patient-1']) expect(() => new SmartClient({ sessionId: 'sid', activePatient: activePatient as never }, storage, base)).not.toThrow()
  })
})
