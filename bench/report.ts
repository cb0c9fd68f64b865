/**
 * The bench's results: bench/results.json (headline numbers under stable keys, everything else under
 * `detail`) and bench/RESULTS.md (tables, method, machine).
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import type { BenchOptions, Check } from './context'
import type { MemoryFootprint, RedisFootprint } from './footprint'
import type { HerdResults } from './herd'
import type { Comparison, PairStats } from './compare'
import type { LaunchComparison, ProtectedComparison } from './throughput'
import { STORE_NAMES, type StoreKind } from './types'

export interface Measurements {
  protectedMemory?: ProtectedComparison
  protectedRedis?: ProtectedComparison
  protectedPostgres?: ProtectedComparison
  launchMemory?: LaunchComparison
  launchRedis?: LaunchComparison
  launchPostgres?: LaunchComparison
  herdRedis?: HerdResults
  herdPostgres?: HerdResults
  bytesPlain?: RedisFootprint
  bytesSealed?: RedisFootprint
  memory?: MemoryFootprint
}

export interface Machine {
  nproc: number
  cpuModel: string
  node: string
  os: string
  totalMemoryBytes: number
  loadAverageAtStart: number[]
  loadAverageAtEnd: number[]
  date: string
  commit: string
  durationSeconds: number
}

export function describeMachine(startedAt: Date, loadAtStart: number[]): Machine {
  let commit = 'unknown'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    if (execFileSync('git', ['status', '--porcelain', '--', 'lib'], { encoding: 'utf8' }).trim()) commit += ' (lib/ modified)'
  } catch {
    // not a git checkout
  }
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    os: `${process.platform} ${release()}`,
    totalMemoryBytes: totalmem(),
    loadAverageAtStart: loadAtStart.map((x) => Number(x.toFixed(2))),
    loadAverageAtEnd: loadavg().map((x) => Number(x.toFixed(2))),
    date: startedAt.toISOString(),
    commit,
    durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
  }
}

const round3 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? null : Number(x.toFixed(3)))

const STORES: StoreKind[] = ['memory', 'redis', 'postgres']
type PairRun = { routes: Comparison; stats: PairStats }

interface Pair {
  /** The results.json key of the pair's ratio. */
  key: string
  store: StoreKind
  label: string
  a: string
  b: string
  of: (m: Measurements) => PairRun | undefined
}

function overEveryStore(key: string, label: string, a: string, b: string, of: (m: Measurements, store: StoreKind) => PairRun | undefined): Pair[] {
  return STORES.map((store) => ({ key, label, a, b, store, of: (m: Measurements) => of(m, store) }))
}

const protectedRun = (m: Measurements, store: StoreKind) => ({ memory: m.protectedMemory, redis: m.protectedRedis, postgres: m.protectedPostgres })[store]
const launchRun = (m: Measurements, store: StoreKind) => ({ memory: m.launchMemory, redis: m.launchRedis, postgres: m.launchPostgres })[store]

/** The pairs of the issue, ours (a) first, each over MemoryStore, Redis and PostgreSQL. */
const PAIRS: Pair[] = [
  ...overEveryStore('protected_vs_session_baseline', 'protected vs session-read', 'protected', 'session-read',
    (m, store) => { const run = protectedRun(m, store); return run && { routes: run.routes, stats: run.vsSessionRead } }),
  ...overEveryStore('protected_vs_fhirclient', 'protected vs fhirclient 2.6.3', 'protected', 'fhirclient',
    (m, store) => { const run = protectedRun(m, store); return run && { routes: run.routes, stats: run.vsFhirclient } }),
  ...overEveryStore('launch_vs_session_write_baseline', 'smartLaunch vs session-write', 'launch', 'session-write',
    (m, store) => { const run = launchRun(m, store); return run && { routes: run.routes, stats: run.vsSessionWrite } }),
]

/** `{ key: { memory, redis, postgres } }` of one figure of every pair. */
function byPair(m: Measurements, figure: (stats: PairStats) => number): Record<string, Record<string, number | null>> {
  const out: Record<string, Record<string, number | null>> = {}
  for (const pair of PAIRS) {
    const found = pair.of(m)
    ;(out[pair.key] ??= {})[pair.store] = found ? round3(figure(found.stats)) : null
  }
  return out
}

/** The library's own route of a comparison (protected, launch) over each store: req/s, p99, CPU per request. */
function routesByStore(m: Measurements): Record<string, Record<string, Record<string, number | null> | null>> {
  const figures = (run: { routes: Comparison } | undefined, route: string) => {
    const r = run?.routes[route]
    return r ? { rps: round3(r.medianRps), p99_ms: round3(r.medianP99Ms), cpu_us_per_request: round3(r.medianCpuUsPerRequest) } : null
  }
  return {
    protected: Object.fromEntries(STORES.map((store) => [store, figures(protectedRun(m, store), 'protected')])),
    launch: Object.fromEntries(STORES.map((store) => [store, figures(launchRun(m, store), 'launch')])),
  }
}

const herdSummary = (h: HerdResults | undefined) => h ? { requests: h.expired.requests, refresh_grants: h.expired.refresh_grants, ok: h.expired.ok, p99_ms: round3(h.expired.p99Ms) } : null

export function resultsJson(m: Measurements, opts: BenchOptions, machine: Machine, checks: Check[]): Record<string, unknown> {
  const ratios = byPair(m, (stats) => stats.ratioOfMedians)
  return {
    protected_vs_session_baseline: ratios.protected_vs_session_baseline,
    protected_vs_fhirclient: ratios.protected_vs_fhirclient.memory,
    protected_vs_fhirclient_redis: ratios.protected_vs_fhirclient.redis,
    protected_vs_fhirclient_postgres: ratios.protected_vs_fhirclient.postgres,
    launch_vs_session_write_baseline: ratios.launch_vs_session_write_baseline.memory,
    launch_vs_session_write_baseline_redis: ratios.launch_vs_session_write_baseline.redis,
    launch_vs_session_write_baseline_postgres: ratios.launch_vs_session_write_baseline.postgres,
    routes_by_store: routesByStore(m),
    refresh_herd: herdSummary(m.herdRedis),
    refresh_herd_postgres: herdSummary(m.herdPostgres),
    stored_bytes_per_session: m.bytesPlain?.strlen ?? null,
    memory_bytes_per_session: m.memory ? Math.round(m.memory.bytesPerSession) : null,
    detail: {
      ratio_of_medians: ratios,
      per_round_ratio_median: byPair(m, (stats) => stats.perRoundRatio.median),
      cpu_per_request_ratio: byPair(m, (stats) => stats.cpuRatio),
      refresh_herd_expired: m.herdRedis?.expired ?? null,
      refresh_herd_revoked: m.herdRedis?.revoked ?? null,
      refresh_herd_postgres_expired: m.herdPostgres?.expired ?? null,
      refresh_herd_postgres_revoked: m.herdPostgres?.revoked ?? null,
      stored_bytes_per_session_encrypted: m.bytesSealed?.strlen ?? null,
      stored_memory_usage_per_session: { plain: m.bytesPlain?.memoryUsage ?? null, encrypted: m.bytesSealed?.memoryUsage ?? null },
      redis_keys: { plain: m.bytesPlain?.keys ?? null, encrypted: m.bytesSealed?.keys ?? null },
      memory_store: m.memory ?? null,
      comparisons: {
        protected_memory: m.protectedMemory ?? null,
        protected_redis: m.protectedRedis ?? null,
        protected_postgres: m.protectedPostgres ?? null,
        launch_memory: m.launchMemory ?? null,
        launch_redis: m.launchRedis ?? null,
        launch_postgres: m.launchPostgres ?? null,
      },
    },
    method: {
      rounds: opts.rounds,
      secondsPerRound: opts.seconds,
      warmupSecondsPerRoute: opts.warmupSeconds,
      connections: opts.connections,
      herdRequests: opts.herdRequests,
      memorySessions: opts.memorySessions,
      ratios: 'ours / baseline of the median req/s over the rounds (> 1: ours is ahead); cpu_per_request_ratio: baseline / ours of the median app CPU time per request (> 1: ours costs less)',
    },
    machine,
    checks,
  }
}

const fmt = (x: number | undefined, digits = 0) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits))

function throughputRows(m: Measurements): string[] {
  const rows: string[] = []
  for (const pair of PAIRS) {
    const found = pair.of(m)
    if (!found) continue
    const [x, y, stats] = [found.routes[pair.a], found.routes[pair.b], found.stats]
    const q = stats.perRoundRatio
    rows.push(`| ${pair.label} | ${STORE_NAMES[pair.store]} | ${fmt(x.medianRps)} | ${fmt(y.medianRps)} | **${fmt(stats.ratioOfMedians, 2)}** | `
      + `${fmt(q.median, 2)} (${fmt(q.p25, 2)}–${fmt(q.p75, 2)}) | ${fmt(x.medianP99Ms, 1)} | ${fmt(y.medianP99Ms, 1)} | `
      + `${fmt(x.medianCpuUsPerRequest)} | ${fmt(y.medianCpuUsPerRequest)} | ${fmt(stats.cpuRatio, 2)} |`)
  }
  return rows
}

function routesByStoreRows(m: Measurements): string[] {
  const rows: string[] = []
  for (const [route, run] of [['protected', protectedRun], ['launch', launchRun]] as const) {
    for (const store of STORES) {
      const r = run(m, store)?.routes[route]
      if (r) rows.push(`| ${route} | ${STORE_NAMES[store]} | ${fmt(r.medianRps)} | ${fmt(r.medianP99Ms, 1)} | ${fmt(r.medianCpuUsPerRequest)} |`)
    }
  }
  return rows
}

function herdLines(m: Measurements, opts: BenchOptions): string[] {
  const herds = [m.herdRedis, m.herdPostgres].filter((h) => h !== undefined)
  if (herds.length === 0) return []
  const lines = ['## Refresh herd', '',
    `${opts.herdRequests} requests of one session at once, split over two app processes on one shared store: Redis, then PostgreSQL.`, '',
    '| case | store | requests | refresh grants at the EHR | 200s | p99 ms | max ms |', '|---|---|---:|---:|---:|---:|---:|']
  for (const [name, of] of [['access token expired (ready() refreshes)', (h: HerdResults) => h.expired], ['access tokens revoked at the EHR (401, refresh, retry)', (h: HerdResults) => h.revoked]] as const) {
    for (const herd of herds) {
      const h = of(herd)
      lines.push(`| ${name} | ${STORE_NAMES[herd.store]} | ${h.requests} | ${h.refresh_grants} | ${h.ok} | ${fmt(h.p99Ms, 1)} | ${fmt(h.maxMs, 1)} |`)
    }
  }
  const fhirRequests = herds.map((h) => `${h.revoked.fhirRequests} on ${STORE_NAMES[h.store]}`).join(', ')
  lines.push('', `In the second case every request also reads FHIR, and again after a 401 (FHIR requests in all: ${fhirRequests}), so its`,
    'latency is mostly the mock EHR\'s (one process, in the orchestrator); the first case measures the library and the store.', '')
  return lines
}

export function resultsMarkdown(m: Measurements, opts: BenchOptions, machine: Machine): string {
  const lines = [
    '# Benchmark results',
    '',
    `Measured ${machine.date} at commit ${machine.commit} by \`npm run bench\` (${machine.durationSeconds} s). Figures are **medians**:`,
    `the machine is shared (${machine.nproc} cores, other engineers run tests on it; load average ${machine.loadAverageAtStart.join(' / ')} at the start,`,
    `${machine.loadAverageAtEnd.join(' / ')} at the end), so single rounds vary; compare ratios, which are measured in the same rounds.`,
    '',
  ]
  const rows = throughputRows(m)
  if (rows.length > 0) {
    lines.push('## Throughput', '',
      `${opts.rounds} rounds × ${opts.seconds} s per route, ${opts.connections} connections. A is ours; every ratio > 1 means A is ahead.`,
      '**A/B** is the ratio of the median req/s (the headline figure); *per round* is the median (and quartiles) of A/B within each',
      'round, where A and B ran seconds apart; *CPU* is the app process\'s CPU time per request (median over the rounds), the figure',
      'least moved by other work on the machine, and *CPU B/A* its ratio.', '',
      '| comparison (A vs B) | store | A req/s | B req/s | A/B | per round A/B (quartiles) | A p99 ms | B p99 ms | A CPU µs/req | B CPU µs/req | CPU B/A |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|', ...rows, '')
  }
  const byStore = routesByStoreRows(m)
  if (byStore.length > 0) {
    lines.push('## The library\'s routes by store', '',
      'The A routes of the comparisons above, over each store. Each store\'s app process ran in rounds of its own, at another',
      'time than the others: compare CPU per request before req/s.', '',
      '| route | store | req/s | p99 ms | CPU µs/req |', '|---|---|---:|---:|---:|', ...byStore, '')
  }
  lines.push(...herdLines(m, opts))
  if (m.bytesPlain || m.bytesSealed) {
    lines.push('## Stored bytes per launched session (Redis)', '', 'Every key one launch left behind; STRLEN is the value size, MEMORY USAGE what Redis spends on the key.', '',
      '| key | TTL s | STRLEN plain | STRLEN with encryptionKey | MEMORY USAGE plain | MEMORY USAGE with encryptionKey |', '|---|---:|---:|---:|---:|---:|')
    const kinds = (f?: RedisFootprint) => new Map((f?.keys ?? []).map((k) => [k.kind, k]))
    const [plain, sealed] = [kinds(m.bytesPlain), kinds(m.bytesSealed)]
    for (const kind of new Set([...plain.keys(), ...sealed.keys()])) {
      const [p, s] = [plain.get(kind), sealed.get(kind)]
      lines.push(`| \`${kind}\` | ${p?.ttlSeconds ?? s?.ttlSeconds} | ${p?.strlen ?? '–'} | ${s?.strlen ?? '–'} | ${p?.memoryUsage ?? '–'} | ${s?.memoryUsage ?? '–'} |`)
    }
    lines.push(`| **total** | | **${m.bytesPlain?.strlen ?? '–'}** | **${m.bytesSealed?.strlen ?? '–'}** | **${m.bytesPlain?.memoryUsage ?? '–'}** | **${m.bytesSealed?.memoryUsage ?? '–'}** |`, '')
  }
  if (m.memory) {
    const mem = m.memory
    lines.push('## Memory per launched session (MemoryStore)', '',
      `${mem.sessions} sessions launched for real through \`smartLaunch\`/\`smartCallback\` against the mock EHR (none synthesized), ${fmt(mem.launchSeconds)} s.`,
      `Heap after full GCs (\`--expose-gc\`) went from ${fmt(mem.heapBefore / 1e6, 1)} MB to ${fmt(mem.heapAfter / 1e6, 1)} MB: **${fmt(mem.bytesPerSession)} bytes per session**`,
      `(${fmt(mem.bytesPerSession * 10_000 / 1e6, 1)} MB per 10,000 sessions), ${mem.storeEntriesPerSession} MemoryStore entries per session — the same keys as`,
      'in Redis above, the short-lived ones (`used`, the forward of the pre-callback session id) included.', '')
  }
  lines.push(...METHOD, '', '## Machine', '',
    `- nproc: ${machine.nproc}`, `- CPU: ${machine.cpuModel}`, `- Node: ${machine.node}`, `- OS: ${machine.os}`,
    `- memory: ${fmt(machine.totalMemoryBytes / 2 ** 30, 1)} GiB`, '')
  return lines.join('\n')
}

const METHOD = [
  '## Method',
  '',
  '- `npm run bench` builds the package and runs `bench/run.ts`. The app under test (`bench/app.ts`, the package from `dist/`) runs in its',
  '  own process; the load generator (`bench/load.ts`, autocannon) in another; the orchestrator holds the mock EHR and starts a',
  '  throwaway `redis-server` on a free port, and a throwaway PostgreSQL cluster (`initdb` + `pg_ctl`, fsync off) unless',
  '  `DATABASE_URL` names one. The EHR is idle during the throughput rounds (checked: no FHIR or token call).',
  '- Every app mounts one express-session (`resave: false`, `saveUninitialized: false`) over `failFastStore(MemoryStore)`,',
  '  `failFastStore(RedisStore)` (connect-redis) or `failFastStore(PGStore)` (connect-pg-simple over a `pg` pool of 10, a table of',
  '  its own per comparison made with connect-pg-simple\'s `table.sql`), and the library in single-launch mode with',
  '  `knownFhirServers` and `allowNonHttpsLaunch` (the mock EHR is http on 127.0.0.1).',
  '- Routes: `protected` = `requireSmartContext` then `res.json({ patient: req.smart.patient?.id })`; `session-read` reads',
  '  `req.session` only; `fhirclient` = fhirclient 2.6.3 `smart(req, res).ready()` then the same JSON, its session launched through',
  '  its own `authorize()`/`ready()` routes against the same EHR and stored in the same express-session store; `launch` =',
  '  `smartLaunch` with discovery cached, no cookie (a first visit); `session-write` = `req.session.x = Date.now()`, no cookie.',
  '- A comparison runs its routes in the same app process: a warm-up per route, then rounds in which every route runs once,',
  '  the order rotating each round (A B C, B C A, …). req/s = responses / round time; p99 = the exact 99th percentile of',
  '  autocannon\'s per-response times in the round; CPU = the app process\'s `process.cpuUsage()` (user + system) over the',
  '  round / responses. Reported: medians over the rounds.',
  '- Refresh herd: two app processes on one Redis (then on one PostgreSQL table) share a launched session; both processes\'',
  '  clocks (the library\'s `now` option) jump past the access token\'s expiry, then N requests with that cookie go out at once,',
  '  one connection each, alternating between the processes. Then the same after `ehr.expireAccessTokens()` on a route that',
  '  reads FHIR.',
  '- `npm run bench -- --quick` runs everything short and asserts counts only; `--profile` writes a CPU profile per app process.',
]
