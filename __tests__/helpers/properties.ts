// Shared settings and checks of the property tests (__tests__/security/properties/).
//
//   npm test       PROPERTY_RUNS cases per property (default 1000), the fixed seed, over MemoryStore.
//   npm run fuzz   many more cases, a random seed it prints (replay: FUZZ_SEED=<seed> npm run fuzz),
//                  over MemoryStore and RedisStore (scripts/fuzz.ts sets the variables below).
//
// With CI=true the seed is always the fixed one: a CI run never depends on luck.
import { Agent, createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type fc from 'fast-check'
import request from 'supertest'
import { memoryStoreKind, postgresKind, redisClusterKind, redisStoreKind, type StoreKind, type StoreKindName, type StoreKindRow } from './stores'

export const FIXED_SEED = 20261129

/** Cases per property: PROPERTY_RUNS, default 1000. */
export function propertyRuns(): number {
  const runs = Number(process.env.PROPERTY_RUNS ?? 1000)
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`PROPERTY_RUNS must be a positive integer, got ${process.env.PROPERTY_RUNS}`)
  return runs
}

/** The fixed seed, unless FUZZ_SEED is set outside CI. */
export function propertySeed(): number {
  const given = process.env.FUZZ_SEED
  if (given === undefined || given === '' || process.env.CI === 'true') return FIXED_SEED
  const seed = Number(given)
  if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got ${given}`)
  return seed
}

/** fast-check parameters of every property: seed, number of runs, and FUZZ_PATH to replay one shrunk case. */
export function propertyParameters<T>(examples: T[] = []): fc.Parameters<T> {
  const path = process.env.FUZZ_PATH
  return { seed: propertySeed(), numRuns: propertyRuns(), examples, ...(path ? { path } : {}) }
}

/** A Jest timeout for a property whose cases cost about `perCaseMs` each (generous: the machine is shared). */
export function propertyTimeout(perCaseMs: number): number {
  return Math.max(120_000, propertyRuns() * perCaseMs * 4)
}

/**
 * Stores the properties run over: PROPERTY_STORES (comma-separated kind names), default MemoryStore and
 * PostgreSQL (whose text type refuses what Redis keeps, a NUL byte: the property found a 503 there).
 */
export function propertyStores(): StoreKindRow[] {
  const names = (process.env.PROPERTY_STORES ?? 'MemoryStore,PostgreSQL').split(',').map((name) => name.trim()).filter(Boolean)
  const kinds: Record<StoreKindName, StoreKind> = { MemoryStore: memoryStoreKind, RedisStore: redisStoreKind, RedisCluster: redisClusterKind, PostgreSQL: postgresKind }
  return names.map((name): StoreKindRow => {
    if (!Object.hasOwn(kinds, name)) throw new Error(`PROPERTY_STORES: unknown store kind "${name}" (${Object.keys(kinds).join(', ')})`)
    return [name as StoreKindName, kinds[name as StoreKindName]]
  })
}

/** Status of each error code, as API.md's table fixes it (copied here, not imported: the test checks the library). */
export const API_STATUS: Readonly<Record<string, number>> = Object.freeze({
  MISSING_PARAMETER: 400,
  UNKNOWN_ISSUER: 403,
  INSECURE_ISSUER: 400,
  DISCOVERY_FAILED: 502,
  TOKEN_EXCHANGE_FAILED: 502,
  INVALID_STATE: 400,
  AUTHORIZATION_DENIED: 403,
  INVALID_ID_TOKEN: 401,
  NO_SESSION: 401,
  SESSION_EXPIRED: 401,
  UNKNOWN_PATIENT: 403,
  ACTIVE_PATIENT_REQUIRED: 400,
  ISSUER_MISMATCH: 400,
  STORAGE_UNAVAILABLE: 503,
  FHIR_REQUEST_FAILED: 502,
  FORBIDDEN_URL: 400,
})

export interface Answer {
  status: number
  headers: Record<string, unknown>
  text: string
  body: unknown
}

/**
 * The `{ code, message }` body smartErrorHandler() gives, checked against API.md: a code of `allowed`, with
 * the table's status (`statuses` names codes that may carry another documented status). Returns the code.
 */
export function errorCodeOf(res: Answer, allowed: readonly string[], statuses: Record<string, readonly number[]> = {}): string {
  const what = `${res.status} ${res.text.slice(0, 300)}`
  if (!String(res.headers['content-type'] ?? '').startsWith('application/json')) throw new Error(`not a JSON error body: ${what}`)
  const body = res.body as { code?: unknown; message?: unknown }
  if (typeof body !== 'object' || body === null || Object.keys(body).sort().join() !== 'code,message') throw new Error(`not { code, message }: ${what}`)
  if (typeof body.code !== 'string' || typeof body.message !== 'string') throw new Error(`code and message must be strings: ${what}`)
  if (!allowed.includes(body.code)) throw new Error(`code ${body.code} is not one of ${allowed.join(', ')}: ${what}`)
  const documented = statuses[body.code] ?? [API_STATUS[body.code]]
  if (!documented.includes(res.status)) throw new Error(`${body.code} answered ${res.status}, API.md says ${documented.join(' or ')}: ${what}`)
  return body.code
}

/** The Set-Cookie headers of a response. */
export function setCookiesOf(res: Answer): string[] {
  return ([] as string[]).concat((res.headers['set-cookie'] as string[] | undefined) ?? [])
}

/** Whether a response sets any cookie: the session cookie, a launch cookie (`smart-launch-…`) or the browser cookie. */
export function setsCookie(res: Answer): boolean {
  return setCookiesOf(res).length > 0
}

export interface Listening {
  server: Server
  url: string
  /** A GET through supertest over a kept-alive connection (a third of the cost of a new one), bounded in time. */
  get(path: string): request.Test
  close(): Promise<void>
}

/**
 * An app on a real listening server (one per test file, not one per request), with a hook that sees every
 * request as Node parsed it, before Express does: what the property's oracle reasons about.
 */
export async function listening(app: RequestListener, observe: (req: IncomingMessage) => void = () => undefined): Promise<Listening> {
  const server = createServer((req, res) => {
    observe(req)
    app(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}`
  const agent = new Agent({ keepAlive: true })
  return {
    server,
    url,
    get: (path) => request(url).get(path).agent(agent).timeout(REQUEST_TIMEOUT),
    close: () => new Promise((resolve) => {
      agent.destroy()
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

/** The raw query string of a request (what Express's query parser gets). */
export function rawQueryOf(req: IncomingMessage): string {
  const url = req.url ?? ''
  const at = url.indexOf('?')
  return at === -1 ? '' : url.slice(at + 1)
}

/** Each request of a property is bounded: a hang is a failure, not a stuck suite. */
export const REQUEST_TIMEOUT = { response: 10_000, deadline: 15_000 }

/**
 * Counts the outcomes of a property's cases, so that the test can require each kind of answer to have
 * happened (a generator that never reaches the success path proves nothing), and shows them with
 * PROPERTY_STATS=1 (npm run fuzz sets it).
 */
export class Outcomes {
  readonly #counts = new Map<string, number>()

  add(label: string): void {
    this.#counts.set(label, (this.#counts.get(label) ?? 0) + 1)
  }

  /** Cases whose label starts with `prefix`. */
  count(prefix: string): number {
    let total = 0
    for (const [label, n] of this.#counts) if (label.startsWith(prefix)) total += n
    return total
  }

  /** Each of `kinds` happened (checked from 1000 runs on: rarer kinds may not come up in a short run). */
  expectReached(kinds: readonly string[]): void {
    if (propertyRuns() < 1000) return
    for (const kind of kinds) if (this.count(kind) === 0) throw new Error(`no case reached "${kind}": the generators no longer cover it`)
  }

  report(title: string): void {
    if (process.env.PROPERTY_STATS !== '1') return
    const lines = [...this.#counts].sort((a, b) => b[1] - a[1]).map(([label, n]) => `  ${String(n).padStart(7)}  ${label}`)
    console.log(`${title} (seed ${propertySeed()}, ${propertyRuns()} runs)\n${lines.join('\n')}`)
  }
}
