import { MemoryStore } from 'express-session'
import { base64url, exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose'
import { SmartClient, expressSessionStorage, type SmartClientOptions } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { issuerKey, launchWithOwnIdToken, signRs256, type TestIssuerKey } from '../helpers/id-token'
import { completeLaunch, devOptions, openConfig } from '../helpers/smart'

let ehr: MockEhr
let key: TestIssuerKey
beforeAll(async () => {
  ehr = await createMockEhr()
  key = await issuerKey()
})
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
let n = 0

function launchWith(claims: (base: JWTPayload) => JWTPayload, sign: (claims: JWTPayload) => Promise<string> = (c) => signRs256(key, c), extraKeys: object[] = []) {
  return launchWithOwnIdToken(ehr, storage, `idt-${++n}`, { idToken: sign, jwks: { keys: [key.publicJwk, ...extraKeys] as never }, claims })
}

const seconds = () => Math.floor(Date.now() / 1000)

async function expectAccepted(outcome: unknown, client: { ready(): Promise<{ idTokenClaims: Record<string, unknown> | null }> }) {
  expect(outcome).toMatchObject({ redirectUrl: 'http://app.test/app' })
  expect((await client.ready()).idTokenClaims).toMatchObject({ sub: 'smart-practitioner-1' })
}

async function expectRefused(outcome: unknown, client: { ready(): Promise<unknown> }) {
  expect(outcome).toMatchObject({ code: 'INVALID_ID_TOKEN', status: 401 })
  await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
}

describe('S19 id_token verification with id_tokens signed by the test', () => {
  it('S19 a well-formed id_token signed by a key of the issuer JWKS is accepted', async () => {
    const { client, outcome } = await launchWith((c) => c)
    await expectAccepted(outcome, client)
  })

  describe('azp (OpenID Connect Core 3.1.3.7)', () => {
    it('S19 regression: an azp that is not this client is refused, even with one audience', async () => {
      const { client, outcome } = await launchWith((c) => ({ ...c, azp: 'other-app' }))
      await expectRefused(outcome, client)
    })

    it('S19 regression: several audiences without azp are refused', async () => {
      const { client, outcome } = await launchWith((c) => ({ ...c, aud: ['mock-app', 'other-app'] }))
      await expectRefused(outcome, client)
    })

    it('S19 several audiences with azp = this client are accepted', async () => {
      const { client, outcome } = await launchWith((c) => ({ ...c, aud: ['mock-app', 'other-app'], azp: 'mock-app' }))
      await expectAccepted(outcome, client)
    })

    it('S19 several audiences with azp = another audience are refused', async () => {
      const { client, outcome } = await launchWith((c) => ({ ...c, aud: ['mock-app', 'other-app'], azp: 'other-app' }))
      await expectRefused(outcome, client)
    })

    it('S19 one audience with azp = this client is accepted', async () => {
      const { client, outcome } = await launchWith((c) => ({ ...c, azp: 'mock-app' }))
      await expectAccepted(outcome, client)
    })
  })

  describe('algorithms: never an HMAC with public key material', () => {
    it.each([
      ['the issuer public key PEM', () => new TextEncoder().encode(key.publicPem)],
      ['the issuer public JWK', () => new TextEncoder().encode(JSON.stringify(key.publicJwk))],
      ['the issuer public key modulus', () => base64url.decode(String(key.publicJwk.n))],
    ])('S19 an HS256 id_token keyed with %s is refused', async (_name, secret) => {
      const sign = (claims: JWTPayload) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: key.kid }).sign(secret())
      const { client, outcome } = await launchWith((c) => c, sign)
      await expectRefused(outcome, client)
    })

    it('S19 an algorithm outside the allow-list (EdDSA), from a key of the issuer JWKS, is refused', async () => {
      const ed = await generateKeyPair('Ed25519', { extractable: true })
      const edJwk = { ...(await exportJWK(ed.publicKey)), kid: 'ed-1', alg: 'EdDSA' }
      const sign = (claims: JWTPayload) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: 'ed-1' }).sign(ed.privateKey)
      const { client, outcome } = await launchWith((c) => c, sign, [edJwk])
      await expectRefused(outcome, client)
    })

    // jose refuses symmetric keys in a remote JWKS today; this holds if it ever stops.
    it('S19 an HS256 id_token is refused even when the JWKS offers a symmetric key that verifies it', async () => {
      const secret = new Uint8Array(32).fill(7)
      const oct = { kty: 'oct', k: base64url.encode(secret), kid: 'hmac-1', alg: 'HS256' }
      const sign = (claims: JWTPayload) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'hmac-1' }).sign(secret)
      const { client, outcome } = await launchWith((c) => c, sign, [oct])
      await expectRefused(outcome, client)
    })
  })

  describe('time claims: bounded clock skew', () => {
    it('S19 an exp 30 s in the past is within the tolerance', async () => {
      const { client, outcome } = await launchWith((c) => ({ ...c, iat: seconds() - 120, exp: seconds() - 30 }))
      await expectAccepted(outcome, client)
    })

    it('S19 an exp beyond the tolerance is refused', async () => {
      const { client, outcome } = await launchWith((c) => ({ ...c, iat: seconds() - 300, exp: seconds() - 120 }))
      await expectRefused(outcome, client)
    })

    it('S19 an iat in the future beyond the tolerance is refused', async () => {
      const { client, outcome } = await launchWith((c) => ({ ...c, iat: seconds() + 300, exp: seconds() + 900 }))
      await expectRefused(outcome, client)
    })

    it('S19 an id_token issued long ago (iat) is refused even if exp is far ahead', async () => {
      const { client, outcome } = await launchWith((c) => ({ ...c, iat: seconds() - 3600, exp: seconds() + 3600 }))
      await expectRefused(outcome, client)
    })
  })

  it('S19 an iss other than the discovered issuer is refused', async () => {
    const { client, outcome } = await launchWith((c) => ({ ...c, iss: ehr.iss }))
    await expectRefused(outcome, client)
  })

  it('S19 an aud without this client is refused, and the message names the claim (not its value)', async () => {
    const { client, outcome } = await launchWith((c) => ({ ...c, aud: 'other-app' }))
    await expectRefused(outcome, client)
    expect((outcome as Error).message).toContain('(aud)')
    expect((outcome as Error).message).not.toContain('other-app')
  })
})

describe('S3 the issuer JWKS is fetched with the limits of every outbound call', () => {
  async function launchOutcome(options: SmartClientOptions) {
    const client = new SmartClient(`jwks-${++n}`, storage, openConfig(), { ...devOptions, ...options })
    const started = Date.now()
    const outcome = await completeLaunch(ehr, { patient: 'patient-1' }, client).catch((err: unknown) => err)
    return { client, outcome, elapsed: Date.now() - started }
  }

  it('S3 a JWKS that never answers is INVALID_ID_TOKEN after the timeout, not a hang', async () => {
    ehr.faults.jwks = 'hang'
    try {
      const { client, outcome, elapsed } = await launchOutcome({ httpTimeoutMs: 400, fetch: (input, init) => fetch(input, init) })
      expect(outcome).toMatchObject({ code: 'INVALID_ID_TOKEN', status: 401 })
      expect(elapsed).toBeLessThan(5000)
      await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
    } finally {
      delete ehr.faults.jwks
    }
  })

  it('S3 an oversized JWKS is refused: INVALID_ID_TOKEN', async () => {
    const padded: typeof fetch = async (input, init) => {
      const response = await fetch(input, init)
      if (String(input) !== `${ehr.issuer}/jwks`) return response
      const jwks = (await response.json()) as { keys: object[] }
      return Response.json({ keys: [...jwks.keys, ...Array.from({ length: 400 }, (_, i) => ({ kty: 'oct', kid: `pad-${i}`, k: 'x'.repeat(1024) }))] })
    }
    const { outcome } = await launchOutcome({ fetch: padded })
    expect(outcome).toMatchObject({ code: 'INVALID_ID_TOKEN' })
  })

  it('S3 the mock EHR JWKS itself is fine (control for the two above)', async () => {
    const { outcome } = await launchOutcome({ fetch: (input, init) => fetch(input, init) })
    expect(outcome).toMatchObject({ patient: 'patient-1' })
  })
})
