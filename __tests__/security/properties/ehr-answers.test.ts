// Issue 9, property (d): an EHR that answers badly. Each case is an EHR of its own (https://ehr-<n>.fuzz.test,
// served by a fetch of the test) whose smart-configuration, token response and JWKS fast-check generates.
// The launch is a 302 or 502 DISCOVERY_FAILED; the callback a 302 or TOKEN_EXCHANGE_FAILED /
// INVALID_ID_TOKEN / ISSUER_MISMATCH with API.md's status — never a 500 or an unhandled rejection (Jest
// fails the test on one), nothing stored on failure, no request to a URL the EHR did not name, and an
// id_token accepted only when signed by a key of the EHR's JWKS.
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import type { Store } from 'express-session'
import { base64url, exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose'
import { expressSessionStorage } from '../../../lib'
import { recordingStorage, testApp, withCookies } from '../../helpers/app'
import { applyEdits, scenario, urlOf, type Scenario, type Served } from '../../helpers/ehr-fuzz'
import {
  errorCodeOf, listening, Outcomes, propertyParameters, propertyRuns, propertyStores, propertyTimeout, setsCookie, type Answer, type Listening,
} from '../../helpers/properties'

const KID = 'fuzz-key'
let signer: CryptoKey
let impostor: CryptoKey
let publicJwk: JWK
beforeAll(async () => {
  const own = await generateKeyPair('ES256', { extractable: true })
  signer = own.privateKey
  publicJwk = { ...(await exportJWK(own.publicKey)), kid: KID, alg: 'ES256', use: 'sig' }
  impostor = (await generateKeyPair('ES256')).privateKey
})

/** What one case's EHR serves, rendered from its scenario. */
interface Ehr {
  n: number
  origin: string
  iss: string
  scenario: Scenario
  /** The discovery document as served (when it parses as a JSON object), to know which URLs it names. */
  document: Record<string, unknown> | null
  discoveryText: string
  idToken: string | null
  nonce: string | null
}

const baseDocument = (origin: string) => ({
  issuer: `${origin}/oauth`,
  authorization_endpoint: `${origin}/oauth/authorize`,
  token_endpoint: `${origin}/oauth/token`,
  jwks_uri: `${origin}/oauth/jwks`,
  revocation_endpoint: `${origin}/oauth/revoke`,
  code_challenge_methods_supported: ['S256'],
  authorization_response_iss_parameter_supported: true,
  capabilities: ['launch-ehr', 'client-public'],
})

function render(answer: Served, base: Record<string, unknown>, ehr: Ehr, path: string): string | null {
  const { body } = answer
  switch (body.kind) {
    case 'document': return JSON.stringify(applyEdits(base, body.edits, (kind, field) => urlOf(kind, ehr.origin, ehr.n, `${path}-${field}`)))
    case 'oversized': return JSON.stringify({ ...base, padding: 'x'.repeat(1_100_000) })
    case 'json': return JSON.stringify(body.value)
    case 'text': return body.text
    case 'empty':
    case 'hang': return null
  }
}

async function respond(answer: Served, text: string | null, signal: AbortSignal | null | undefined): Promise<Response> {
  if (answer.body.kind === 'hang') {
    // No answer until the caller gives up (its timeout aborts the signal); without a signal, never.
    return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }))
  }
  const headers: Record<string, string> = {}
  if (answer.contentType !== null) headers['content-type'] = answer.contentType
  if (answer.challenge !== null) headers['www-authenticate'] = answer.challenge
  const nullBody = [204, 205, 304].includes(answer.status)
  return new Response(nullBody ? null : text, { status: answer.status, headers })
}

async function idTokenFor(ehr: Ehr): Promise<string | null> {
  const now = Math.floor(Date.now() / 1000)
  const claims: JWTPayload = { iss: `${ehr.origin}/oauth`, sub: 'practitioner-1', aud: 'mock-app', nonce: ehr.nonce ?? undefined, iat: now, exp: now + 300 }
  const sign = (payload: JWTPayload, key = signer) => new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: KID, typ: 'JWT' }).sign(key)
  switch (ehr.scenario.idToken) {
    case 'none': return null
    case 'valid': return sign(claims)
    case 'wrong-nonce': return sign({ ...claims, nonce: 'another-launch' })
    case 'wrong-aud': return sign({ ...claims, aud: 'another-app' })
    case 'wrong-iss': return sign({ ...claims, iss: 'https://evil.example' })
    case 'expired': return sign({ ...claims, iat: now - 7200, exp: now - 3600 })
    case 'other-key': return sign(claims, impostor)
    case 'alg-none': return `${base64url.encode(JSON.stringify({ alg: 'none', kid: KID }))}.${base64url.encode(JSON.stringify(claims))}.`
    case 'hs256': return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: KID }).sign(new TextEncoder().encode('a shared secret of 32 bytes......'))
    case 'garbage': return 'not.a.jwt'
  }
}

const withoutHash = (url: string) => url.replace(/#.*$/, '')

/** The URLs a document names (as the URL parser reads them), or none. */
function namedUrls(document: Record<string, unknown> | null): Set<string> {
  const named = new Set<string>()
  for (const field of ['token_endpoint', 'jwks_uri', 'revocation_endpoint']) {
    const value = document?.[field]
    if (typeof value !== 'string') continue
    try {
      named.add(withoutHash(new URL(value).href))
    } catch {
      // not a URL: nothing may be asked of it
    }
  }
  return named
}

const parsed = (text: string | null): unknown => {
  try {
    return text === null ? null : JSON.parse(text)
  } catch {
    return null
  }
}
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const hasIdToken = (body: unknown) => isObject(body) && typeof body.id_token === 'string' && body.id_token !== ''
const wellFormed = (answer: Served) => answer.status === 200 && answer.contentType === 'application/json' && answer.body.kind === 'document' && answer.body.edits.length === 0

describe.each(propertyStores())('misbehaving EHRs over %s', (_name, kind) => {
  let store: Store
  let closeStore: () => Promise<void>
  let writes: Array<{ key: string }>
  let app: Listening
  let current: Ehr | null = null
  let n = 0
  const outbound: string[] = []
  /** The token endpoint's and the JWKS's last answers (200s only) and how many there were; only the last is kept (1 MB bodies). */
  const token = { answers: 0, body: undefined as unknown }
  const jwks = { answers: 0, text: null as string | null }

  /** The case's EHR, as the app's fetch: what the scenario says, at the URLs its discovery document names. */
  const ehrFetch: typeof fetch = async (input, init) => {
    const url = withoutHash(new URL(input instanceof Request ? input.url : String(input)).href)
    outbound.push(url)
    const ehr = current!
    if (url === `${ehr.iss}/.well-known/smart-configuration`) return respond(ehr.scenario.discovery, ehr.discoveryText, init?.signal)
    const doc = ehr.document ?? {}
    const names = (field: string) => typeof doc[field] === 'string' && namedUrls({ [field]: doc[field] }).has(url)
    if (names('token_endpoint')) {
      const base = { access_token: `at-${ehr.n}`, token_type: 'Bearer', expires_in: 3600, scope: 'openid fhirUser launch patient/*.rs', patient: 'patient-1', refresh_token: `rt-${ehr.n}`, ...(ehr.idToken ? { id_token: ehr.idToken } : {}) }
      const text = render(ehr.scenario.token, base, ehr, 'token')
      token.answers++
      token.body = ehr.scenario.token.status === 200 ? parsed(text) : undefined
      return respond(ehr.scenario.token, text, init?.signal)
    }
    if (names('jwks_uri')) {
      const text = render(ehr.scenario.jwks, { keys: [publicJwk] }, ehr, 'jwks')
      jwks.answers++
      jwks.text = ehr.scenario.jwks.status === 200 ? text : null
      return respond(ehr.scenario.jwks, text, init?.signal)
    }
    if (names('revocation_endpoint')) return new Response(null, { status: 200 })
    return new Response('not found', { status: 404 })
  }

  beforeAll(async () => {
    ;({ store, close: closeStore } = await kind.open())
    const recorded = recordingStorage(expressSessionStorage(store))
    writes = recorded.writes
    app = await listening(testApp({ store, storage: recorded.storage, jsonErrors: true, options: { allowNonHttpsLaunch: false, fetch: ehrFetch, httpTimeoutMs: 500 } }))
  })
  afterAll(async () => {
    await app.close()
    await closeStore()
  })

  const outcomes = new Outcomes()

  /** Every outbound request of the case went to its discovery URL or to a URL its document names. */
  function expectOnlyNamedUrls(ehr: Ehr, since: number): void {
    const allowed = new Set([`${ehr.iss}/.well-known/smart-configuration`, ...namedUrls(ehr.document)])
    for (const url of outbound.slice(since)) expect(allowed).toContain(url)
  }

  /** Whether the JWKS served holds the signing key itself (the only key an accepted id_token may be checked with). */
  function servedOwnKey(): boolean {
    const served = parsed(jwks.text) as { keys?: unknown } | null
    if (!isObject(served) || !Array.isArray(served.keys)) return false
    return served.keys.some((key) => isObject(key) && key.kty === publicJwk.kty && key.crv === publicJwk.crv && key.x === publicJwk.x && key.y === publicJwk.y)
  }

  async function check(sc: Scenario): Promise<void> {
    const origin = `https://ehr-${++n}.fuzz.test`
    const ehr: Ehr = { n, origin, iss: `${origin}/fhir`, scenario: sc, document: null, discoveryText: '', idToken: null, nonce: null }
    ehr.discoveryText = render(sc.discovery, baseDocument(origin), ehr, 'discovery') ?? ''
    const doc = parsed(ehr.discoveryText)
    ehr.document = sc.discovery.status === 200 && isObject(doc) ? doc : null
    current = ehr
    const [sent, wrote, asked, keysServed] = [outbound.length, writes.length, token.answers, jwks.answers]
    const launched = (await app.get(`/launch?iss=${encodeURIComponent(ehr.iss)}&launch=fuzz`)) as unknown as Answer
    let step = `launch → ${launched.status} ${launched.text.slice(0, 200)}`
    try {
      if (launched.status !== 302) {
        errorCodeOf(launched, ['DISCOVERY_FAILED'])
        expect(wellFormed(sc.discovery)).toBe(false)
        expect(writes.slice(wrote)).toEqual([])
        expect(setsCookie(launched)).toBe(false)
        expectOnlyNamedUrls(ehr, sent)
        outcomes.add('launch 502 DISCOVERY_FAILED')
        return
      }
      const location = new URL(launched.headers.location as string)
      const authorization = new URL(ehr.document!.authorization_endpoint as string)
      expect(`${location.origin}${location.pathname}`).toBe(`${authorization.origin}${authorization.pathname}`)
      expect(writes.slice(wrote).map((w) => w.key)).toEqual([expect.stringMatching(/^pending:/)])
      ehr.nonce = location.searchParams.get('nonce')
      ehr.idToken = await idTokenFor(ehr)
      const issuer = ehr.document!.issuer
      // RFC 9207: the EHR's own issuer comes back with the code (unless it is too long for a URL: Node would answer 431 itself).
      const sendsIss = typeof issuer === 'string' && issuer.length < 4000
      const query = new URLSearchParams({ code: `code-${n}`, state: location.searchParams.get('state')!, ...(sendsIss ? { iss: issuer } : {}) })
      const afterLaunch = writes.length
      const res = (await app.get(`/callback?${query}`).set('Cookie', withCookies(undefined, launched))) as unknown as Answer
      step = `callback → ${res.status} ${res.text.slice(0, 200)}`
      const tokenBody = token.answers > asked ? token.body : undefined
      const sessionWrites = writes.slice(afterLaunch).filter((w) => w.key.startsWith('session:'))
      expectOnlyNamedUrls(ehr, sent)
      if (res.status === 302) {
        // The page's selector: the patient the token response named (a FHIR id, or none), tagged with this EHR
        // (any issuer allowed: 12 characters of the issuer's SHA-256).
        const patient = isObject(tokenBody) && typeof tokenBody.patient === 'string' && tokenBody.patient !== '' ? tokenBody.patient : null
        if (patient !== null) expect(patient).toMatch(/^[A-Za-z0-9\-.]{1,64}$/)
        expect(res.headers.location).toBe(`/app?patient=${patient ?? ''}_${createHash('sha256').update(ehr.iss).digest('base64url').slice(0, 12)}`)
        expect(sessionWrites.length).toBeGreaterThan(0)
        // S16: a bearer access token came with a 200; S19: an id_token only when signed by the EHR's own key, for this launch.
        expect(isObject(tokenBody) && typeof tokenBody.access_token === 'string' && tokenBody.access_token !== '').toBe(true)
        expect(String((tokenBody as Record<string, unknown>).token_type).toLowerCase()).toBe('bearer')
        // An empty id_token is no id_token (S16: it may be absent): nothing is taken from it.
        const withIdToken = hasIdToken(tokenBody)
        if (withIdToken) {
          expect((tokenBody as Record<string, unknown>).id_token).toBe(ehr.idToken)
          expect(sc.idToken).toBe('valid')
          expect(issuer).toBe(`${origin}/oauth`)
          expect(jwks.answers).toBeGreaterThan(keysServed)
          expect(servedOwnKey()).toBe(true)
        }
        outcomes.add(`callback 302 ${withIdToken ? 'with' : 'without'} an id_token`)
        return
      }
      const code = errorCodeOf(res, ['TOKEN_EXCHANGE_FAILED', 'INVALID_ID_TOKEN', 'ISSUER_MISMATCH'], { TOKEN_EXCHANGE_FAILED: [400, 502] })
      expect(wellFormed(sc.discovery) && wellFormed(sc.token) && wellFormed(sc.jwks) && ['none', 'valid'].includes(sc.idToken)).toBe(false)
      expect(sessionWrites).toEqual([])
      if (code === 'ISSUER_MISMATCH') expect(sendsIss).toBe(false)
      if (code === 'TOKEN_EXCHANGE_FAILED' && res.status === 400) expect(sc.token.status).not.toBe(200)
      if (code === 'INVALID_ID_TOKEN') expect(hasIdToken(tokenBody)).toBe(true)
      outcomes.add(`callback ${res.status} ${code}`)
    } catch (err) {
      throw new Error(`EHR ${ehr.n}: ${step}\ndiscovery: ${ehr.discoveryText.slice(0, 300)}\n${(err as Error).message}`)
    }
  }

  it('property: launch and callback end in a 302 or a documented 4xx/502, nothing stored on failure, no request to URLs the EHR did not name', async () => {
    const fine: Served = { status: 200, contentType: 'application/json', challenge: null, body: { kind: 'document', edits: [] } }
    await fc.assert(
      fc.asyncProperty(scenario(), check),
      propertyParameters<[Scenario]>([
        [{ discovery: fine, token: fine, jwks: fine, idToken: 'valid' }],
        [{ discovery: fine, token: fine, jwks: { ...fine, body: { kind: 'hang' } }, idToken: 'valid' }],
      ]),
    )
    outcomes.report('misbehaving EHRs')
    outcomes.expectReached(['launch 502', 'callback 302 with an id_token', 'callback 302 without an id_token', 'callback 502 TOKEN_EXCHANGE_FAILED', 'callback 400 TOKEN_EXCHANGE_FAILED', 'callback 401 INVALID_ID_TOKEN', 'callback 400 ISSUER_MISMATCH'])
    expect(outcomes.count('callback 302')).toBeGreaterThan(propertyRuns() / 50)
  }, propertyTimeout(60))
})
