// Generators of hostile query strings for the property tests. A generated query is a template: values may
// refer to genuine values (the EHR's iss, a real state or code) that the test fills in per case, as they
// are or altered. Queries are sent through supertest as they are rendered; supertest passes the URL
// through the WHATWG URL parser, as a browser would (raw spaces, controls and non-ASCII arrive
// percent-encoded; tabs and newlines are dropped).
import fc from 'fast-check'

/** How a genuine value is written into the query (most spellings decode to the genuine value, some do not). */
export const ALTERATIONS = [
  'encoded', 'raw', 'every-byte', 'lower-hex', 'double-encoded', 'upper', 'truncated', 'leading-space', 'trailing-nul',
  'trailing-slash', 'trailing-plus', 'suffixed', 'unicode-suffix', 'empty-prefix-dup', 'scheme-swapped', 'scheme-ftp',
] as const
export type Alteration = (typeof ALTERATIONS)[number]

export type ValueTemplate = { ref: string; alter: Alteration } | { text: string }
/** One `key=value` of the query; `value: null` is a key without `=`. */
export interface EntryTemplate {
  key: string
  value: ValueTemplate | null
}
export interface QueryTemplate {
  entries: EntryTemplate[]
  separator: string
}

const hex = (byte: number) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`

/** Percent-encodes the UTF-8 of `text` (lone surrogates become U+FFFD, as Buffer writes them), unreserved characters kept. */
export function pct(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((byte) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : hex(byte))).join('')
}

const everyByte = (text: string) => [...Buffer.from(text, 'utf8')].map(hex).join('')

export function alter(value: string, how: Alteration): string {
  switch (how) {
    case 'encoded': return encodeURIComponent(value)
    case 'raw': return value
    case 'every-byte': return everyByte(value)
    case 'lower-hex': return everyByte(value).toLowerCase()
    case 'double-encoded': return encodeURIComponent(encodeURIComponent(value))
    case 'upper': return encodeURIComponent(value.toUpperCase())
    case 'truncated': return encodeURIComponent(value.slice(0, -1))
    case 'leading-space': return `%20${encodeURIComponent(value)}`
    case 'trailing-nul': return `${encodeURIComponent(value)}%00`
    case 'trailing-slash': return encodeURIComponent(`${value}/`)
    case 'trailing-plus': return `${encodeURIComponent(value)}+`
    case 'suffixed': return `${encodeURIComponent(value)}x`
    case 'unicode-suffix': return `${encodeURIComponent(value)}%E2%80%8B`
    // the value with an empty-key twin before it: `=<value>`, as some broken links carry
    case 'empty-prefix-dup': return `${encodeURIComponent(value)}&=${encodeURIComponent(value)}`
    case 'scheme-swapped': return encodeURIComponent(value.startsWith('https:') ? value.replace('https:', 'http:') : value.replace(/^http:/, 'https:'))
    case 'scheme-ftp': return encodeURIComponent(value.replace(/^https?:/, 'ftp:'))
  }
}

// Text as it may appear in a query: broken escapes, escapes of controls, overlong and invalid UTF-8,
// separators, brackets, scheme-like strings, numbers-ish.
const SPECIALS = [
  '', '%', '%%', '%0', '%zz', '%G0', '%00', '%0A', '%0D%0A', '%09', '%7F', '%FF', '%FE%FF', '%C0%AF', '%C0%80', '%E2%82', '%ED%A0%80',
  '%EF%BF%BF', '%F0%9F%92%A9', '%F4%90%80%80', '%u0041', '%2F', '%2E%2E', '%26', '%3D', '%23', '%5B%5D', '..', '../../', '[', ']', '[]',
  '{', '}', '|', '\\', '^', '`', '"', "'", '<script>', '+', '++', '=', '==', ';', ',', 'null', 'undefined', 'true', '0', '-1', '1e999',
  'NaN', '__proto__', 'constructor', 'https://evil.example/fhir', 'http://127.0.0.1/fhir', 'javascript:alert(1)', 'data:,x',
  '//evil.example', 'file:///etc/passwd', ' ', '%20', '\t', 'ÿ', '€', '\u202e', '\u{1f4a9}', 'launch_', 'launch_AAAA',
]

const noFragment = (text: string) => text.replaceAll('#', '%23')

/** Hostile text, as written into the URL. */
export function hostileText(): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...SPECIALS) },
    { weight: 3, arbitrary: fc.array(fc.constantFrom(...SPECIALS), { minLength: 2, maxLength: 6 }).map((parts) => parts.join('')) },
    // Raw text: a raw '#' would only cut the query short on the client side.
    { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }).map(noFragment) },
    { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }).map(pct) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }).map(pct) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 24 }).map(noFragment) },
    // Around the 4096-character parameter limit, and beyond; a few KB of UTF-8.
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(1, 4095, 4096, 4097, 6000), fc.constantFrom('a', '~', '-')).map(([n, c]) => c.repeat(n)) },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 1200 }).map((n) => 'é'.repeat(n)) },
  )
}

// qs (the extended parser) reads brackets as arrays and objects, with limits (arrayLimit 20, depth 5);
// prototype names are kept by Express (allowPrototypes: true). The simple parser keeps keys as they are.
const DECORATIONS = [
  '', '', '', '', '[]', '[0]', '[1]', '[a]', '[iss]', '[__proto__]', '[constructor]', '[prototype]', '[toString]', '[valueOf]',
  '[hasOwnProperty]', '[length]', '[][]', '[0][a]', '[a][b][c][d][e][f][g]', '[21]', '[1000]', '.a', '[', ']', '%5B%5D', '%5Btostring%5D',
  '%5BtoString%5D', '[]%00',
]
const GENERIC_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'length', '0', '', 'x', '%20', '%00']

/** A key: a name of interest or a generic one, maybe decorated with brackets, maybe spelled with escapes. */
export function keyText(names: readonly string[]): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(...names, ...GENERIC_KEYS), fc.constantFrom(...DECORATIONS), fc.constantFrom('plain', 'plain', 'plain', 'escaped', 'upper', 'spaced'))
    .map(([name, decoration, spelling]) => {
      switch (spelling) {
        case 'escaped': return everyByte(name) + decoration
        case 'upper': return name.toUpperCase() + decoration
        case 'spaced': return `${name}+${decoration}`
        default: return name + decoration
      }
    })
}

function valueTemplate(refs: readonly string[]): fc.Arbitrary<ValueTemplate> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.record({ ref: fc.constantFrom(...refs), alter: fc.constantFrom(...ALTERATIONS) }) },
    { weight: 2, arbitrary: hostileText().map((text) => ({ text })) },
  )
}

function entry(names: readonly string[], refs: readonly string[]): fc.Arbitrary<EntryTemplate> {
  return fc.record({ key: keyText(names), value: fc.option(valueTemplate(refs), { freq: 8, nil: null }) })
}

/**
 * The genuine parameter `name` (its value is the ref of the same name): usually as it is, sometimes altered,
 * duplicated, made an array or object, valueless, or absent.
 */
function genuineEntries(name: string): fc.Arbitrary<EntryTemplate[]> {
  const exact: EntryTemplate = { key: name, value: { ref: name, alter: 'encoded' } }
  const options: Array<fc.WeightedArbitrary<EntryTemplate[]>> = [
    { weight: 24, arbitrary: fc.constant<EntryTemplate[]>([exact]) },
    { weight: 4, arbitrary: fc.constantFrom(...ALTERATIONS).map((how): EntryTemplate[] => [{ key: name, value: { ref: name, alter: how } }]) },
    { weight: 1, arbitrary: fc.constant<EntryTemplate[]>([exact, exact]) },
    { weight: 1, arbitrary: hostileText().map((text): EntryTemplate[] => [exact, { key: name, value: { text } }]) },
    { weight: 1, arbitrary: fc.constantFrom('[]', '[0]', '[a]', '[toString]', '[__proto__]').map((d): EntryTemplate[] => [{ key: name + d, value: exact.value }]) },
    { weight: 1, arbitrary: fc.constant<EntryTemplate[]>([{ key: name, value: null }]) },
    { weight: 1, arbitrary: fc.constant<EntryTemplate[]>([]) },
    { weight: 1, arbitrary: hostileText().map((text): EntryTemplate[] => [{ key: name, value: { text } }]) },
  ]
  return fc.oneof(...options)
}

// Mostly `&`; `;` and `&amp;` join what they separate (neither parser splits there).
const separator = fc.oneof({ weight: 30, arbitrary: fc.constant('&') }, { weight: 1, arbitrary: fc.constantFrom('&&', '&=&', '&amp;', ';') })

/**
 * Queries around a set of genuine parameters: `genuine` names are present (or tampered with, or missing) in any
 * order, among extra hostile entries; `names` are the keys of interest for those extras. Rendered URLs stay
 * under ~12 KB, below Node's header size limit (the answer must be the app's, not Node's 431).
 */
export function queryTemplate(genuine: readonly string[], names: readonly string[] = genuine): fc.Arbitrary<QueryTemplate> {
  const refs = genuine.length > 0 ? genuine : ['none']
  const around = fc
    .tuple(fc.tuple(...genuine.map(genuineEntries)), fc.array(entry(names, refs), { maxLength: 3 }))
    .chain(([own, extra]) => {
      const all = [...own.flat(), ...extra]
      return fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length })
    })
  const anything = fc.array(entry(names, refs), { maxLength: 8 })
  return fc
    .record({ entries: fc.oneof({ weight: 5, arbitrary: around }, { weight: 1, arbitrary: anything }), separator })
    .filter((template) => templateLength(template) < 11_000)
}

/** The length of `text` in a URL once the client percent-encodes it: three characters per byte that is not printable ASCII. */
const urlLength = (text: string) => [...Buffer.from(text, 'utf8')].reduce((sum, byte) => sum + (byte > 0x20 && byte < 0x7f ? 1 : 3), 0)

function templateLength(template: QueryTemplate): number {
  return template.entries.reduce((sum, { key, value }) => sum + urlLength(key) + 1 + (value === null ? 0 : 'text' in value ? urlLength(value.text) : 400), 0)
}

/** The query string (with its `?`, or empty) of `template`, genuine values filled in from `refs`. */
export function renderQuery(template: QueryTemplate, refs: Record<string, string>): string {
  const parts = template.entries.map(({ key, value }) => {
    if (value === null) return key
    const text = 'text' in value ? value.text : alter(refs[value.ref] ?? '', value.alter)
    return `${key}=${text}`
  })
  return parts.length === 0 ? '' : `?${parts.join(template.separator)}`
}
