/** Checks of single configuration fields: each failure is a TypeError that names the field (config.ts). */

export function fail(field: string, problem: string): never {
  throw new TypeError(`express-smart-on-fhir: ${field} ${problem}`)
}

/** Levenshtein distance, for "did you mean" hints on misspelt keys. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1))
      prev = row[j]
      row[j] = next
    }
  }
  return row[b.length]
}

export function rejectUnknownKeys(where: string, value: object, known: string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue
    const nearest = known.reduce((best, k) => (distance(key, k) < distance(key, best) ? k : best))
    const hint = distance(key, nearest) <= 3 ? ` (did you mean "${nearest}"?)` : ''
    fail(`${where}.${key}`, `is not a known setting${hint}`)
  }
}

export function requireString(where: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') fail(where, 'must be a non-empty string')
  return value
}

export function requireUrl(where: string, value: unknown): string {
  const text = requireString(where, value)
  let url: URL
  try {
    url = new URL(text)
  } catch {
    fail(where, `must be an absolute URL, got "${text}"`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(where, 'must be an http(s) URL')
  return text
}

export function optionalPositive(where: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(where, 'must be a positive number')
  return value
}

export function optionalIdleTimeout(value: unknown): number | null {
  if (value === undefined || value === false) return null
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail('options.idleTimeoutSeconds', 'must be a positive number of seconds, or false')
  return value
}

export function optionalBoolean(where: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') fail(where, 'must be true or false')
  return value
}
