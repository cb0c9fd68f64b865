/** What the orchestrator (run.ts) and its child processes (app.ts, load.ts) tell each other. */

/** The express-session store an app process runs on: MemoryStore, connect-redis (one server or a Cluster) or connect-pg-simple. */
export type StoreKind = 'memory' | 'redis' | 'cluster' | 'postgres'

export const STORE_KINDS: StoreKind[] = ['memory', 'redis', 'cluster', 'postgres']

/** How logs and RESULTS.md name each store. */
export const STORE_NAMES: Record<StoreKind, string> = { memory: 'MemoryStore', redis: 'Redis', cluster: 'Redis Cluster', postgres: 'PostgreSQL' }

/** The app process's settings, passed as JSON in BENCH_APP. */
export interface AppSettings {
  /** Where the app loads the library from: the bench's snapshot of dist/ (see run.ts), else the package itself. */
  lib?: string
  /** The mock EHR's FHIR base (the only known FHIR server). */
  iss: string
  store: StoreKind
  redisUrl?: string
  /** `host:port,host:port,…` of the Redis Cluster's masters. */
  clusterNodes?: string
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
  /** Entries of the MemoryStore (null over the other stores). */
  storeEntries: number | null
  /** Characters of the MemoryStore's JSON strings (absent over the other stores). */
  storeChars?: number
}

export interface AppErrors { count: number; first: string[] }

/** The app process's clock readings around a round (the `cpu` command). */
export interface CpuReading {
  /** CPU time (user + system) the process has used, µs. */
  cpuUs: number
  /** process.hrtime() in µs: the clock of V8's CPU profile timestamps, to cut a profile into rounds. */
  monoUs: number
  /** Store and backend calls so far, by `store.get`, `redis.set`, `pg.query`, … (see app.ts). */
  calls: Record<string, number>
}

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
  /** Requests per second, evenly spaced over at most `connections` connections (load.ts pacedRound); absent: autocannon as fast as the app answers. */
  rate?: number
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
