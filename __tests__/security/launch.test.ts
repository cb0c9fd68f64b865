import { gzipSync } from 'node:zlib'
import { MemoryStore } from 'express-session'
import { calculatePKCECodeChallenge } from 'openid-client'
import { SmartClient, expressSessionStorage, type SmartClientOptions } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { json, startServer } from '../helpers/http-server'
import { devOptions, ehrLaunch, openConfig, testClock } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
const context = { patient: 'patient-1' }

function spyFetch(): { fetch: typeof fetch; urls: string[] } {
  const urls: string[] = []
  return { urls, fetch: (input, init) => (urls.push(String(input)), fetch(input, init)) }
}

/** DISCOVERY_FAILED, with the reason its message gives (the app's logs see it; the page gets a generic 502). */
const discoveryFailed = (why: string) => ({
  code: 'DISCOVERY_FAILED', status: 502, message: expect.stringMatching(new RegExp(`^SMART discovery for https?://\\S+/fhir failed: ${why.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)),
})

/** Options with their own fetch: a discovery cache of their own. */
const freshOptions = (extra: SmartClientOptions = {}): SmartClientOptions => ({ ...devOptions, fetch: (input, init) => fetch(input, init), ...extra })

describe('launch and discovery', () => {
  it('S1 an issuer outside knownFhirServers is refused before any network call', async () => {
    const spy = spyFetch()
    const config = openConfig({ allowAnyIssuer: undefined, knownFhirServers: [{ issuer: 'https://trusted.example/fhir', type: 'public' }] } as never)
    const client = new SmartClient('s1', storage, config, freshOptions({ fetch: spy.fetch }))
    const before = ehr.stats.discoveryFetches
    await expect(client.launch(ehrLaunch(ehr, context))).rejects.toMatchObject({ code: 'UNKNOWN_ISSUER', status: 403 })
    expect(spy.urls).toEqual([])
    expect(ehr.stats.discoveryFetches).toBe(before)
  })

  it('S1 a listed issuer launches (trailing slash tolerated)', async () => {
    const config = openConfig({ allowAnyIssuer: undefined, knownFhirServers: [{ issuer: `${ehr.iss}/`, type: 'public' }] } as never)
    await expect(new SmartClient('s1b', storage, config, freshOptions()).launch(ehrLaunch(ehr, context))).resolves.toHaveProperty('redirectUrl')
  })

  it('S2 an http issuer is INSECURE_ISSUER unless allowNonHttpsLaunch', async () => {
    const spy = spyFetch()
    const client = new SmartClient('s2', storage, openConfig(), { fetch: spy.fetch })
    await expect(client.launch(ehrLaunch(ehr, context))).rejects.toMatchObject({ code: 'INSECURE_ISSUER', status: 400 })
    expect(spy.urls).toEqual([])
  })

  it('S2 http endpoints in the discovery document of an https issuer are refused', async () => {
    const doc = { authorization_endpoint: 'http://ehr.example/authorize', token_endpoint: 'https://ehr.example/token' }
    const fake: typeof fetch = async () => Response.json(doc)
    const client = new SmartClient('s2b', storage, openConfig(), { fetch: fake })
    await expect(client.launch({ iss: 'https://ehr.example/fhir', launch: 'x' })).rejects.toMatchObject(discoveryFailed('"authorization_endpoint" is not https (allowNonHttpsLaunch is off)'))
  })

  it.each(['jwks_uri', 'revocation_endpoint'])('S2 an http %s in the discovery document of an https issuer is refused unless allowNonHttpsLaunch', async (field) => {
    const doc = { authorization_endpoint: 'https://ehr.example/authorize', token_endpoint: 'https://ehr.example/token', [field]: `http://ehr.example/${field}` }
    const fake: typeof fetch = async () => Response.json(doc)
    const strict = new SmartClient('s2c', storage, openConfig(), { fetch: fake })
    await expect(strict.launch({ iss: 'https://ehr.example/fhir', launch: 'x' })).rejects.toMatchObject(discoveryFailed(`"${field}" is not https (allowNonHttpsLaunch is off)`))
    const lenient = new SmartClient('s2d', storage, openConfig(), { fetch: async () => Response.json(doc), allowNonHttpsLaunch: true })
    await expect(lenient.launch({ iss: 'https://ehr.example/fhir', launch: 'x' })).resolves.toHaveProperty('redirectUrl')
  })

  it('S5 a missing iss or launch is MISSING_PARAMETER', async () => {
    const client = new SmartClient('s5', storage, openConfig(), freshOptions())
    await expect(client.launch({ iss: ehr.iss } as never)).rejects.toMatchObject({ code: 'MISSING_PARAMETER', status: 400 })
    await expect(client.launch({ launch: 'abc' } as never)).rejects.toMatchObject({ code: 'MISSING_PARAMETER', status: 400 })
  })

  it('discovery is cached per issuer and concurrent look-ups share one request', async () => {
    const options = freshOptions()
    const before = ehr.stats.discoveryFetches
    await Promise.all(Array.from({ length: 5 }, (_, i) => new SmartClient(`c${i}`, storage, openConfig(), options).launch(ehrLaunch(ehr, context))))
    await new SmartClient('c9', storage, openConfig(), options).launch(ehrLaunch(ehr, context))
    expect(ehr.stats.discoveryFetches).toBe(before + 1)
  })

  it('a discovered document is reused for discoveryCacheSeconds, then fetched again', async () => {
    const clock = testClock()
    const options = freshOptions({ now: clock.now, discoveryCacheSeconds: 60 })
    const launch = () => new SmartClient('cache', storage, openConfig(), options).launch(ehrLaunch(ehr, context))
    const before = ehr.stats.discoveryFetches
    await launch()
    clock.advance(59_999)
    await launch()
    expect(ehr.stats.discoveryFetches).toBe(before + 1)
    clock.advance(1)
    await launch()
    expect(ehr.stats.discoveryFetches).toBe(before + 2)
  })

  it('S2 a document accepted with allowNonHttpsLaunch is never served from the cache to a client without it', async () => {
    const doc = { authorization_endpoint: 'https://ehr.example/authorize', token_endpoint: 'https://ehr.example/token', jwks_uri: 'http://ehr.example/jwks' }
    const shared: typeof fetch = async () => Response.json(doc)
    const lenient = new SmartClient('s2e', storage, openConfig(), { fetch: shared, allowNonHttpsLaunch: true })
    await expect(lenient.launch({ iss: 'https://ehr.example/fhir', launch: 'x' })).resolves.toHaveProperty('redirectUrl')
    const strict = new SmartClient('s2f', storage, openConfig(), { fetch: shared })
    await expect(strict.launch({ iss: 'https://ehr.example/fhir', launch: 'x' })).rejects.toMatchObject(discoveryFailed('"jwks_uri" is not https (allowNonHttpsLaunch is off)'))
  })

  it.each([
    ['500', 'the server answered 500'],
    ['malformed', 'the document is not valid JSON'],
    ['hang', 'no answer within 300 ms'],
  ] as const)('a discovery fault (%s) is DISCOVERY_FAILED (%s), and not cached', async (fault, why) => {
    const options = freshOptions({ httpTimeoutMs: 300 })
    ehr.faults.discovery = fault
    try {
      await expect(new SmartClient('f', storage, openConfig(), options).launch(ehrLaunch(ehr, context))).rejects.toMatchObject(discoveryFailed(why))
    } finally {
      delete ehr.faults.discovery
    }
    await expect(new SmartClient('f', storage, openConfig(), options).launch(ehrLaunch(ehr, context))).resolves.toHaveProperty('redirectUrl')
  })
})

describe('S3 S4 discovery documents from misbehaving servers', () => {
  async function launchAgainst(answer: Parameters<typeof startServer>[0]) {
    const server = await startServer(answer)
    try {
      const client = new SmartClient('s3', storage, openConfig(), freshOptions({ httpTimeoutMs: 500 }))
      return await client.launch({ iss: `${server.url}/fhir`, launch: 'l' }).catch((err: unknown) => err)
    } finally {
      await server.close()
    }
  }
  const endpoints = (url: string) => ({ authorization_endpoint: `${url}/authorize`, token_endpoint: `${url}/token` })

  it('S3 a document without token_endpoint is refused', async () => {
    expect(await launchAgainst((_req, res) => json(res, 200, { authorization_endpoint: 'http://127.0.0.1/authorize' }))).toMatchObject(discoveryFailed('"token_endpoint" is missing'))
  })

  it('S3 a document without authorization_endpoint is refused', async () => {
    expect(await launchAgainst((req, res) => json(res, 200, { token_endpoint: `http://${req.headers.host}/token` }))).toMatchObject(discoveryFailed('"authorization_endpoint" is missing'))
  })

  it.each([
    ['an array', () => [], 'the document is not a JSON object'],
    ['null', () => null, 'the document is not a JSON object'],
    ['a number jwks_uri', (url: string) => ({ ...endpoints(url), jwks_uri: 42 }), '"jwks_uri" is not a string'],
    ['a relative token_endpoint', (url: string) => ({ ...endpoints(url), token_endpoint: '/token' }), '"token_endpoint" is not an absolute URL'],
    ['a number issuer', (url: string) => ({ ...endpoints(url), issuer: 42 }), '"issuer" is not a string'],
    ['PKCE methods that are not a list', (url: string) => ({ ...endpoints(url), code_challenge_methods_supported: 'S256' }), 'the server does not support PKCE S256'],
  ])('S3 a document with %s is refused, and the error says what is wrong', async (_what, doc, why) => {
    expect(await launchAgainst((req, res) => json(res, 200, doc(`http://${req.headers.host}`)))).toMatchObject(discoveryFailed(why))
  })

  it('S3 optional fields may be absent', async () => {
    const result = await launchAgainst((req, res) => json(res, 200, endpoints(`http://${req.headers.host}`)))
    expect(result).toHaveProperty('redirectUrl')
  })

  it('S3 a redirect is not followed', async () => {
    const result = await launchAgainst((_req, res) => {
      res.writeHead(302, { location: `${ehr.iss}/.well-known/smart-configuration` })
      res.end()
    })
    expect(result).toMatchObject(discoveryFailed('the server answered 302'))
  })

  it('S3 an oversized document is refused', async () => {
    const result = await launchAgainst((req, res) => json(res, 200, { ...endpoints(`http://${req.headers.host}`), padding: 'x'.repeat(1 << 20) }))
    expect(result).toMatchObject(discoveryFailed('response larger than 262144 bytes'))
  })

  it('S3 regression: an endpoint too long for a Location header (found by the issue 9 property) is DISCOVERY_FAILED, not a redirect no client can read', async () => {
    const long = (req: { headers: { host?: string } }) => ({ ...endpoints(`http://${req.headers.host}`), authorization_endpoint: `http://${req.headers.host}/${'a'.repeat(100_000)}` })
    expect(await launchAgainst((req, res) => json(res, 200, long(req)))).toMatchObject(discoveryFailed('"authorization_endpoint" is longer than 2048 characters'))
    const limit = (req: { headers: { host?: string } }) => {
      const base = `http://${req.headers.host}/`
      return { ...endpoints(`http://${req.headers.host}`), authorization_endpoint: `${base}${'a'.repeat(2048 - base.length)}` }
    }
    expect(await launchAgainst((req, res) => json(res, 200, limit(req)))).toHaveProperty('redirectUrl')
  })

  it('S3 a compressed document is capped at its decompressed size, whatever the Content-Length of the compressed bytes', async () => {
    // 1 MB of JSON in about 1 KB of gzip: the declared length is far below the cap, what fetch decompresses is not.
    const body = gzipSync(JSON.stringify({ ...endpoints('http://placeholder'), padding: 'x'.repeat(1 << 20) }))
    const result = await launchAgainst((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': String(body.length) })
      res.end(body)
    })
    expect(body.length).toBeLessThan(262144)
    expect(result).toMatchObject(discoveryFailed('response larger than 262144 bytes'))
  })

  it('S3 a document that declares more than 256 KB is refused at once, without waiting for its body', async () => {
    // The body never comes: reading it would end in the timeout, not in this refusal.
    const result = await launchAgainst((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) })
      res.write('{"padding":"')
    })
    expect(result).toMatchObject(discoveryFailed('response larger than 262144 bytes'))
  })

  it('S3 a server that cannot be reached: the transport failure, nothing more', async () => {
    const client = new SmartClient('s3-refused', storage, openConfig(), freshOptions({ httpTimeoutMs: 2000 }))
    await expect(client.launch({ iss: 'http://127.0.0.1:1/fhir', launch: 'l' })).rejects.toMatchObject(discoveryFailed('request failed'))
  })

  it('S3 a server that never answers times out', async () => {
    const started = Date.now()
    expect(await launchAgainst(() => undefined)).toMatchObject(discoveryFailed('no answer within 500 ms'))
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('S4 PKCE S256 is used even when code_challenge_methods_supported is absent', async () => {
    const result = (await launchAgainst((req, res) => json(res, 200, endpoints(`http://${req.headers.host}`)))) as { redirectUrl: string }
    expect(new URL(result.redirectUrl).searchParams.get('code_challenge_method')).toBe('S256')
  })

  it('S4 a server offering only plain PKCE is refused', async () => {
    const result = await launchAgainst((req, res) => json(res, 200, { ...endpoints(`http://${req.headers.host}`), code_challenge_methods_supported: ['plain'] }))
    expect(result).toMatchObject(discoveryFailed('the server does not support PKCE S256'))
  })

  it('S7 the code_verifier is 43-128 unreserved characters and S6 the state carries 256 bits', async () => {
    const verifiers: string[] = []
    const recording = { ...storage, set: (key: string, value: unknown, ttl?: number) => (key.startsWith('pending:') && verifiers.push((value as { secrets: { codeVerifier: string } }).secrets.codeVerifier), storage.set(key, value, ttl)) }
    const { redirectUrl } = await new SmartClient('s7', recording, openConfig(), freshOptions()).launch(ehrLaunch(ehr, context))
    expect(verifiers[0]).toMatch(/^[A-Za-z0-9\-._~]{43,128}$/)
    expect(Buffer.from(new URL(redirectUrl).searchParams.get('state')!, 'base64url').length).toBeGreaterThanOrEqual(32)
    // S4: the challenge is S256 of this launch's verifier, exactly as openid-client computes it.
    expect(new URL(redirectUrl).searchParams.get('code_challenge')).toBe(await calculatePKCECodeChallenge(verifiers[0]))
  })

  it('S10 redirect_uri comes from configuration only', async () => {
    const { redirectUrl } = await new SmartClient('s10', storage, openConfig({ callbackUrl: 'https://configured.example/cb' }), freshOptions()).launch(ehrLaunch(ehr, context))
    expect(new URL(redirectUrl).searchParams.get('redirect_uri')).toBe('https://configured.example/cb')
  })
})
