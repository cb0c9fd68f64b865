/** What the orchestrator (run.ts) and its child processes (app.ts, load.ts) tell each other. */

/** The express-session store an app process runs on: MemoryStore, connect-redis or connect-pg-simple. */
export type StoreKind = 'memory' | 'redis' | 'postgres'

/** How logs and RESULTS.md name each store. */
export const STORE_NAMES: Record<StoreKind, string> = { memory: 'MemoryStore', redis: 'Redis', postgres: 'PostgreSQL' }

/** The app process's settings, passed as JSON in BENCH_APP. */
export interface AppSettings {
  /** The mock EHR's FHIR base (the only known FHIR server). */
  iss: string
  store: StoreKind
  redisUrl?: string
  /** connect-redis key prefix; processes sharing one prefix share their sessions. */
  redisPrefix?: string
  databaseUrl?: string
  /** connect-pg-simple's session table (made by the orchestrator); processes sharing one table share their sessions. */
  pgTable?: string
  sessionSecret: string
  encryptionKey?: string
  /** The library's `now` option reads a clock the orchestrator can move forward (the refresh herd). */
  adjustableClock?: boolean
}

export interface AppHello { port: number; pid: number }

export interface HeapReport {
  heapUsed: number
  /** Entries of the MemoryStore (null over Redis or PostgreSQL). */
  storeEntries: number | null
}

export interface AppErrors { count: number; first: string[] }

/** One timed round of one route, measured by the load process. */
export interface RoundResult {
  responses: number
  seconds: number
  rps: number
  /** Exact, from autocannon's per-response times (ms). */
  p50: number
  p99: number
  statusCodes: Record<string, number>
  errors: number
  timeouts: number
}

export interface RoundRequest {
  url: string
  headers?: Record<string, string>
  seconds: number
  connections: number
}

export interface HerdRequest {
  urls: string[]
  cookie: string
  /** Requests in all, sent at once, spread round-robin over `urls`. */
  total: number
}

export interface HerdResult {
  statusCodes: Record<string, number>
  ok: number
  errors: string[]
  latenciesMs: number[]
}
