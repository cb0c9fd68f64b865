// Generators of misbehaving EHRs for the property tests: smart-configuration documents, token responses and
// JWKS documents with wrong types, missing fields, huge strings, nested junk, non-JSON bodies, wrong content
// types, odd status codes, and no answer at all. An answer is a template: URLs and the id_token are filled
// in per case (each case is an EHR of its own, at https://ehr-<n>.fuzz.test).
import fc from 'fast-check'

/** A URL a document may name, relative to the case's EHR. */
export const URL_KINDS = [
  'same-origin', 'same-origin', 'other-as', 'http', 'relative', 'javascript', 'userinfo', 'unicode-host', 'padded', 'query-fragment',
  'backslashes', 'empty', 'huge',
] as const
export type UrlKind = (typeof URL_KINDS)[number]

export type Junk = { delete: true } | { json: unknown } | { url: UrlKind }
export interface Edit {
  field: string
  value: Junk
}

export type Body =
  | { kind: 'document'; edits: Edit[] }
  | { kind: 'json'; value: unknown }
  | { kind: 'text'; text: string }
  | { kind: 'empty' }
  | { kind: 'hang' }
  /** The well-formed document padded past every size cap (1.1 MB). */
  | { kind: 'oversized' }

export interface Served {
  status: number
  contentType: string | null
  /** A WWW-Authenticate header (token endpoint 401s carry one). */
  challenge: string | null
  body: Body
}

/** What the token response's id_token is. */
export const ID_TOKENS = ['none', 'none', 'none', 'valid', 'valid', 'valid', 'valid', 'wrong-nonce', 'wrong-aud', 'wrong-iss', 'expired', 'other-key', 'alg-none', 'hs256', 'garbage'] as const
export type IdTokenKind = (typeof ID_TOKENS)[number]

export interface Scenario {
  discovery: Served
  token: Served
  jwks: Served
  idToken: IdTokenKind
}

export const DISCOVERY_FIELDS = [
  'issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri', 'revocation_endpoint', 'code_challenge_methods_supported',
  'authorization_response_iss_parameter_supported', 'capabilities', 'scopes_supported', '__proto__', 'constructor', 'toString',
]
export const TOKEN_FIELDS = [
  'access_token', 'token_type', 'expires_in', 'scope', 'patient', 'encounter', 'refresh_token', 'id_token', 'need_patient_banner',
  'fhirContext', 'intent', 'smart_style_url', 'error', 'error_description', '__proto__', 'toString',
]
export const JWKS_FIELDS = ['keys', 'keys.0', 'keys.0.kty', 'keys.0.kid', 'keys.0.alg', 'keys.0.use', 'keys.0.x', 'keys.0.crv', 'keys.0.key_ops', '__proto__']

const junkJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1e308, Number.MAX_SAFE_INTEGER + 2, '', ' ', 'null', 'true', '0'),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom(5_000, 50_000).map((n) => 'x'.repeat(n)),
)

/**
 * Plausible but wrong values of the fields that matter, tried more often than junk: other token types
 * (openid-client itself accepts DPoP), near-bearer spellings, expiries, non-FHIR patient ids, PKCE lists.
 */
const PLAUSIBLE: Record<string, readonly unknown[]> = {
  token_type: ['DPoP', 'dpop', 'mac', 'N_A', 'BEARER', 'Bearer ', ' bearer', 'bearer\u0000', 'Bearer', 'bearer'],
  access_token: ['', ' ', 0, null, [], {}, 'x'.repeat(10_000)],
  expires_in: ['3600', -1, 0, 1e308, Number.NaN, 'soon', null, { seconds: 1 }],
  patient: ['patient/1', '../Patient/x', 'a'.repeat(65), 'patient 1', '\u0000', 'Patient/patient-1', '', 7, ['patient-1']],
  encounter: ['', 7, {}, 'Encounter/1'],
  scope: ['', 7, ['openid'], 'openid\u0000'],
  refresh_token: ['', 7, {}],
  need_patient_banner: ['false', 'yes', 1, null],
  fhirContext: ['Patient/1', [null, 1, 'x', { reference: 7 }], { reference: 'Patient/1' }],
  issuer: ['', 'https://evil.example', 7, null, ['x']],
  code_challenge_methods_supported: [['plain'], 'S256', [], ['s256'], [null], ['S256', 'plain']],
  authorization_response_iss_parameter_supported: ['true', 1, false, null],
  keys: [[], {}, null, [null], [{}], [{ kty: 'oct', k: 'c2VjcmV0' }]],
  'keys.0.kty': ['RSA', 'oct', '', null],
  'keys.0.alg': ['none', 'HS256', 'RS256', 'ES384', ''],
  'keys.0.use': ['enc', '', 'sig '],
  'keys.0.crv': ['P-384', 'P-521', ''],
}

function edits(fields: readonly string[]): fc.Arbitrary<Edit[]> {
  const valueFor = (field: string): fc.Arbitrary<Junk> => fc.oneof(
    { weight: 2, arbitrary: fc.constant({ delete: true as const }) },
    { weight: 2, arbitrary: junkJson.map((json) => ({ json })) },
    // Own fields only: "toString" and "__proto__" are field names here too.
    { weight: Object.hasOwn(PLAUSIBLE, field) ? 4 : 0, arbitrary: fc.constantFrom(...(Object.hasOwn(PLAUSIBLE, field) ? PLAUSIBLE[field] : [null])).map((json) => ({ json })) },
    { weight: 2, arbitrary: fc.constantFrom(...URL_KINDS).map((url) => ({ url })) },
  )
  const field = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...fields) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) })
  return fc.array(field.chain((name) => valueFor(name).map((value): Edit => ({ field: name, value }))), { minLength: 1, maxLength: 4 })
}

const TEXT_BODIES = [
  '', ' ', 'null', '[]', '"text"', '{', '{"a":', '<html><body>Login</body></html>', '\ufeff{}', '{"token_endpoint":"https://x"}garbage',
  `${'['.repeat(5000)}${']'.repeat(5000)}`, '{"__proto__":{"authorization_endpoint":"https://evil.example/a","token_endpoint":"https://evil.example/t"}}',
]
const CONTENT_TYPES = ['text/html', 'text/plain', 'application/xml', 'application/jwk-set+json', 'application/json; charset=utf-16', 'application/json, text/html', '']
const STATUSES = [200, 201, 202, 203, 204, 206, 301, 302, 304, 307, 400, 401, 403, 404, 409, 418, 429, 500, 502, 503, 599]

/**
 * One answer of one endpoint: the well-formed one (about half of the time), or a broken variant of it
 * (edits of the document), or junk, or an odd status, or a wrong content type, or no answer.
 */
export function served(fields: readonly string[]): fc.Arbitrary<Served> {
  const ok = (body: fc.Arbitrary<Body>, weight: number): fc.WeightedArbitrary<Served> => ({
    weight,
    arbitrary: body.map((b): Served => ({ status: 200, contentType: 'application/json', challenge: null, body: b })),
  })
  return fc.oneof(
    ok(fc.constant({ kind: 'document', edits: [] }), 480),
    ok(edits(fields).map((e) => ({ kind: 'document', edits: e })), 240),
    ok(fc.jsonValue({ maxDepth: 3 }).map((value) => ({ kind: 'json', value })), 40),
    ok(fc.oneof(fc.constantFrom(...TEXT_BODIES), fc.string({ maxLength: 50 })).map((text) => ({ kind: 'text', text })), 40),
    ok(fc.constant({ kind: 'empty' }), 40),
    // Rare: each costs the app's whole timeout.
    ok(fc.constant({ kind: 'hang' }), 1),
    ok(fc.constant({ kind: 'oversized' }), 8),
    {
      weight: 80,
      arbitrary: fc.record({
        status: fc.constantFrom(...STATUSES),
        contentType: fc.option(fc.constantFrom('application/json', ...CONTENT_TYPES), { nil: null }),
        challenge: fc.option(fc.constantFrom('Bearer error="invalid_token"', 'Bearer', 'DPoP error=', 'Basic realm="x", Bearer error="invalid_grant"', '"', ','), { nil: null }),
        body: fc.oneof(
          fc.constant<Body>({ kind: 'document', edits: [] }),
          fc.constantFrom('invalid_grant', 'invalid_client', 'server_error', 'x y', '').map((error): Body => ({ kind: 'json', value: { error, error_description: 'no' } })),
          fc.constantFrom(...TEXT_BODIES).map((text): Body => ({ kind: 'text', text })),
        ),
      }),
    },
    {
      weight: 40,
      arbitrary: fc.constantFrom(...CONTENT_TYPES).map((contentType): Served => ({ status: 200, contentType, challenge: null, body: { kind: 'document', edits: [] } })),
    },
  )
}

export function scenario(): fc.Arbitrary<Scenario> {
  return fc.record({
    discovery: served(DISCOVERY_FIELDS),
    token: served(TOKEN_FIELDS),
    jwks: served(JWKS_FIELDS),
    idToken: fc.constantFrom(...ID_TOKENS),
  })
}

/** `kind` as a URL of the EHR at `origin` (n: the case number, for other hosts of the same EHR). */
export function urlOf(kind: UrlKind, origin: string, n: number, path: string): string {
  const host = new URL(origin).host
  switch (kind) {
    case 'same-origin': return `${origin}/oauth2/${path}`
    case 'other-as': return `https://as-${n}.fuzz.test/${path}`
    case 'http': return `http://${host}/${path}`
    case 'relative': return `/${path}`
    case 'javascript': return 'javascript:alert(1)'
    case 'userinfo': return `https://user:secret@${host}/${path}`
    case 'unicode-host': return `https://\u0435\u0445\u0440-${n}.fuzz.test/${path}`
    case 'padded': return ` ${origin}/${path}\n`
    case 'query-fragment': return `${origin}/${path}?a=1&b=%zz#frag`
    case 'backslashes': return `https:\\\\${host}\\${path}`
    case 'empty': return ''
    case 'huge': return `${origin}/${'p'.repeat(100_000)}`
  }
}

/** `base` with `edits` applied: deleted, replaced by junk, by a URL; `a.0.b` paths reach into arrays. */
export function applyEdits(base: Record<string, unknown>, list: Edit[], url: (kind: UrlKind, path: string) => string): Record<string, unknown> {
  const doc = structuredClone(base)
  for (const { field, value } of list) {
    const path = field.split('.')
    let target: Record<string, unknown> = doc
    for (const step of path.slice(0, -1)) {
      const next = target[step]
      if (typeof next !== 'object' || next === null) break
      target = next as Record<string, unknown>
    }
    const last = path[path.length - 1]
    const replacement = 'delete' in value ? undefined : 'json' in value ? value.json : url(value.url, last)
    // defineProperty: a "__proto__" field becomes an own property, as JSON.parse makes it.
    if (replacement === undefined) delete target[last]
    else Object.defineProperty(target, last, { value: replacement, enumerable: true, configurable: true, writable: true })
  }
  return doc
}
