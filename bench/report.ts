/**
 * The bench's results: bench/results.json (headline numbers and targets under stable keys, everything else
 * under `detail`) and bench/RESULTS.md (targets with met/missed, tables, method, machine).
 */
import { execFileSync } from 'node:child_process'
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os'
import type { BenchOptions, Check } from './context'
import type { MemoryFootprint, RedisFootprint } from './footprint'
import type { HerdResults } from './herd'
import type { Comparison, PairStats, RouteResult } from './compare'
import type { FhirComparison, LaunchComparison, ProtectedComparison } from './throughput'
import { STORE_KINDS, STORE_NAMES, type StoreKind } from './types'

export interface Measurements {
  protected: Partial<Record<StoreKind, ProtectedComparison>>
  launch: Partial<Record<StoreKind, LaunchComparison>>
  fhir: Partial<Record<StoreKind, FhirComparison>>
  herd: Partial<Record<StoreKind, HerdResults>>
  bytesPlain?: RedisFootprint
  bytesSealed?: RedisFootprint
  memory?: MemoryFootprint
  /** The app's heap per session over Redis: what the process keeps besides the store. */
  memoryOverRedis?: MemoryFootprint
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

/** The commit the run measured, read when dist/ was copied: `<sha> (lib/ modified)` when lib/ differs from it. */
export function describeCommit(): string {
  try {
    let commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    if (execFileSync('git', ['status', '--porcelain', '--', 'lib'], { encoding: 'utf8' }).trim()) commit += ' (lib/ modified)'
    return commit
  } catch {
    return 'unknown' // not a git checkout
  }
}

export function describeMachine(startedAt: Date, loadAtStart: number[], commit: string): Machine {
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

const round3 = (x: number | undefined | null) => (x === undefined || x === null || Number.isNaN(x) ? null : Number(x.toFixed(3)))

type PairRun = { routes: Comparison; stats: PairStats }

/** A comparison of the issue: route a (ours) against route b, over every store it ran on. */
interface Pair {
  /** The results.json key of the pair. */
  key: string
  label: string
  a: string
  b: string
  of: (m: Measurements, store: StoreKind) => PairRun | undefined
}

const PAIRS: Pair[] = [
  { key: 'protected_vs_session_baseline', label: 'protected vs session-read (the floor)', a: 'protected', b: 'session-read',
    of: (m, store) => { const run = m.protected[store]; return run && { routes: run.routes, stats: run.vsSessionRead } } },
  { key: 'protected_vs_fhirclient', label: 'protected vs fhirclient 2.6.3', a: 'protected', b: 'fhirclient',
    of: (m, store) => { const run = m.protected[store]; return run && { routes: run.routes, stats: run.vsFhirclient } } },
  { key: 'launch_vs_session_write_baseline', label: 'smartLaunch vs session-write', a: 'launch', b: 'session-write',
    of: (m, store) => { const run = m.launch[store]; return run && { routes: run.routes, stats: run.vsSessionWrite } } },
  { key: 'fhir_read_vs_fetch', label: 'FHIR read: req.smart.request() vs fetch()', a: 'fhir-read', b: 'fhir-fetch',
    of: (m, store) => { const run = m.fhir[store]; return run && { routes: run.routes, stats: run.vsFetch } } },
]

// ---------------------------------------------------------------------------------------------- targets

export interface TargetResult {
  id: string
  target: string
  store: string
  /** What `value` is. */
  figure: string
  value: number | null
  /** The bound `value` is held to, and how. */
  bound: number
  op: '>=' | '<=' | '='
  met: boolean | null
  /** Only information (not one of the issue's targets on this store). */
  informational: boolean
  /** The bound lies within the quartiles of the per-round ratios: the verdict could flip on another run. */
  borderline: boolean
  /** The same comparison by the ratio of the medians, and the per-round quartiles (throughput targets). */
  ratioOfMedians?: number | null
  quartiles?: [number | null, number | null]
}

interface ThroughputTarget {
  id: string
  target: string
  pair: string
  metric: 'cpu' | 'rps'
  min: number
  stores: StoreKind[]
  informationOn?: StoreKind[]
}

const CPU_FIGURE = 'B/A of the app\'s CPU per request, median over rounds (> 1: ours cheaper)'
const RPS_FIGURE = 'A/B of req/s, median over rounds'

const THROUGHPUT_TARGETS: ThroughputTarget[] = [
  { id: 'protected_cpu_vs_session_read', target: 'protected ≤ 1.03× the session-read floor\'s CPU per request (B/A ≥ 0.971)', pair: 'protected_vs_session_baseline', metric: 'cpu', min: 1 / 1.03, stores: STORE_KINDS },
  { id: 'protected_cpu_vs_fhirclient', target: 'protected ≥ 1.10× fhirclient 2.6.3, CPU per request', pair: 'protected_vs_fhirclient', metric: 'cpu', min: 1.1, stores: ['memory', 'redis'], informationOn: ['cluster', 'postgres'] },
  { id: 'protected_rps_vs_fhirclient', target: 'protected ≥ 1.10× fhirclient 2.6.3, req/s', pair: 'protected_vs_fhirclient', metric: 'rps', min: 1.1, stores: ['memory', 'redis'], informationOn: ['cluster', 'postgres'] },
  { id: 'launch_cpu_vs_session_write', target: 'smartLaunch ≥ 0.90× session-write, CPU per request', pair: 'launch_vs_session_write_baseline', metric: 'cpu', min: 0.9, stores: ['redis', 'postgres'], informationOn: ['cluster', 'memory'] },
  { id: 'fhir_read_cpu_vs_fetch', target: 'FHIR read ≥ 0.95× the same fetch(), CPU per request', pair: 'fhir_read_vs_fetch', metric: 'cpu', min: 0.95, stores: STORE_KINDS },
]

/** 2 KB and 4 KB as 2048 and 4096 bytes. */
const REDIS_BYTES_BOUND = 2048
const HEAP_BYTES_BOUND = 4096

export function targets(m: Measurements): TargetResult[] {
  const out: TargetResult[] = []
  for (const t of THROUGHPUT_TARGETS) {
    const pair = PAIRS.find((p) => p.key === t.pair)!
    for (const store of [...t.stores, ...(t.informationOn ?? [])]) {
      const run = pair.of(m, store)
      const q = run ? (t.metric === 'cpu' ? run.stats.perRoundCpuRatio : run.stats.perRoundRatio) : undefined
      const value = q ? q.median : null
      out.push({
        id: t.id,
        target: t.target,
        store: STORE_NAMES[store],
        figure: t.metric === 'cpu' ? CPU_FIGURE : RPS_FIGURE,
        value: round3(value),
        bound: round3(t.min)!,
        op: '>=',
        met: value === null ? null : value >= t.min,
        informational: !t.stores.includes(store),
        borderline: q !== undefined && q.p25 < t.min && t.min < q.p75,
        ratioOfMedians: run ? round3(t.metric === 'cpu' ? run.stats.cpuRatio : run.stats.ratioOfMedians) : null,
        quartiles: [round3(q?.p25), round3(q?.p75)],
      })
    }
  }
  for (const store of ['redis', 'postgres', 'cluster'] as StoreKind[]) {
    const herd = m.herd[store]
    const ok = herd ? [herd.expired, herd.revoked].every((h) => h.refresh_grants === 1 && h.ok === h.requests) : null
    out.push({
      id: 'refresh_herd', target: '100 requests over two processes → 1 refresh grant, all 200 (expired and revoked)', store: STORE_NAMES[store],
      figure: 'refresh grants at the EHR (expired / revoked)', value: herd ? Math.max(herd.expired.refresh_grants, herd.revoked.refresh_grants) : null,
      bound: 1, op: '=', met: ok, informational: store === 'cluster', borderline: false,
    })
  }
  const bytes = m.bytesPlain
  out.push({
    id: 'redis_bytes_per_session', target: '≤ 2 KB (2048 bytes) stored per launched session in Redis', store: 'Redis',
    figure: 'MEMORY USAGE of every key one launch writes (see below)',
    value: bytes ? bytes.memoryUsage : null, bound: REDIS_BYTES_BOUND, op: '<=', met: bytes ? bytes.memoryUsage <= REDIS_BYTES_BOUND : null, informational: false, borderline: false,
  })
  const heap = m.memory
  out.push({
    id: 'memory_store_heap_per_session', target: '≤ 4 KB (4096 bytes) of heap per launched session in MemoryStore', store: 'MemoryStore',
    figure: `heap per session over ${heap?.sessions ?? '–'} real launches (see below)`,
    value: heap ? Math.round(heap.bytesPerSession) : null, bound: HEAP_BYTES_BOUND, op: '<=', met: heap ? heap.bytesPerSession <= HEAP_BYTES_BOUND : null, informational: false, borderline: false,
  })
  return out
}

// ---------------------------------------------------------------------------------------------- results.json

/** `{ key: { memory, redis, cluster, postgres } }` of one figure of every pair. */
function byPair(m: Measurements, figure: (stats: PairStats) => number): Record<string, Record<string, number | null>> {
  const out: Record<string, Record<string, number | null>> = {}
  for (const pair of PAIRS) {
    out[pair.key] = {}
    for (const store of STORE_KINDS) {
      const found = pair.of(m, store)
      if (found) out[pair.key][store] = round3(figure(found.stats))
    }
  }
  return out
}

const routeFigures = (r: RouteResult | undefined) => r ? { cpu_us_per_request: round3(r.medianCpuUsPerRequest), rps: round3(r.medianRps), p99_ms: round3(r.medianP99Ms) } : null

/** Every route of every comparison over each store: CPU per request, req/s, p99 (medians). */
function routesByStore(m: Measurements): Record<string, Record<string, ReturnType<typeof routeFigures>>> {
  const out: Record<string, Record<string, ReturnType<typeof routeFigures>>> = {}
  for (const runs of [m.protected, m.launch, m.fhir]) {
    for (const store of STORE_KINDS) {
      const run = runs[store]
      if (!run) continue
      for (const [route, result] of Object.entries(run.routes)) (out[route] ??= {})[store] = routeFigures(result)
    }
  }
  return out
}

const herdSummary = (h: HerdResults | undefined) => h ? { requests: h.expired.requests, refresh_grants: h.expired.refresh_grants, ok: h.expired.ok, p99_ms: round3(h.expired.p99Ms), revoked: { refresh_grants: h.revoked.refresh_grants, ok: h.revoked.ok, p99_ms: round3(h.revoked.p99Ms) } } : null

/** Comparisons without their per-round windows (those only serve --profile). */
function withoutWindows<T extends { routes: Comparison }>(run: T | undefined): T | null {
  if (!run) return null
  return { ...run, routes: Object.fromEntries(Object.entries(run.routes).map(([name, r]) => [name, { ...r, windows: undefined }])) }
}

export function resultsJson(m: Measurements, opts: BenchOptions, machine: Machine, checks: Check[]): Record<string, unknown> {
  const rps = byPair(m, (stats) => stats.ratioOfMedians)
  const cpu = byPair(m, (stats) => stats.perRoundCpuRatio.median)
  const all = targets(m)
  const counted = all.filter((t) => !t.informational && t.met !== null)
  return {
    headline: 'cpu_ratio: baseline / ours of the app process\'s CPU time per request, median of the per-round ratios (> 1: ours costs less)',
    cpu_ratio: cpu,
    targets_met: `${counted.filter((t) => t.met).length}/${counted.length}`,
    targets: all,
    // req/s, ours / baseline of the medians (> 1: ours is ahead); the keys of issue 22.
    protected_vs_session_baseline: rps.protected_vs_session_baseline,
    protected_vs_fhirclient: rps.protected_vs_fhirclient.memory ?? null,
    protected_vs_fhirclient_redis: rps.protected_vs_fhirclient.redis ?? null,
    protected_vs_fhirclient_cluster: rps.protected_vs_fhirclient.cluster ?? null,
    protected_vs_fhirclient_postgres: rps.protected_vs_fhirclient.postgres ?? null,
    launch_vs_session_write_baseline: rps.launch_vs_session_write_baseline.memory ?? null,
    launch_vs_session_write_baseline_redis: rps.launch_vs_session_write_baseline.redis ?? null,
    launch_vs_session_write_baseline_cluster: rps.launch_vs_session_write_baseline.cluster ?? null,
    launch_vs_session_write_baseline_postgres: rps.launch_vs_session_write_baseline.postgres ?? null,
    fhir_read_vs_fetch: rps.fhir_read_vs_fetch,
    routes_by_store: routesByStore(m),
    refresh_herd: herdSummary(m.herd.redis),
    refresh_herd_postgres: herdSummary(m.herd.postgres),
    refresh_herd_cluster: herdSummary(m.herd.cluster),
    stored_bytes_per_session: m.bytesPlain?.strlen ?? null,
    stored_memory_usage_per_session: m.bytesPlain?.memoryUsage ?? null,
    memory_bytes_per_session: m.memory ? Math.round(m.memory.bytesPerSession) : null,
    memory_bytes_per_session_over_redis: m.memoryOverRedis ? Math.round(m.memoryOverRedis.bytesPerSession) : null,
    detail: {
      cpu_ratio_of_medians: byPair(m, (stats) => stats.cpuRatio),
      cpu_ratio_per_round_p25: byPair(m, (stats) => stats.perRoundCpuRatio.p25),
      cpu_ratio_per_round_p75: byPair(m, (stats) => stats.perRoundCpuRatio.p75),
      rps_ratio_per_round_median: byPair(m, (stats) => stats.perRoundRatio.median),
      p99_ratio: byPair(m, (stats) => stats.p99Ratio),
      refresh_herd: Object.fromEntries(Object.entries(m.herd).map(([store, h]) => [store, h])),
      stored_bytes: {
        strlen: { plain: m.bytesPlain?.strlen ?? null, encrypted: m.bytesSealed?.strlen ?? null },
        memory_usage: { plain: m.bytesPlain?.memoryUsage ?? null, encrypted: m.bytesSealed?.memoryUsage ?? null },
        at_rest: { plain: m.bytesPlain?.longLived ?? null, encrypted: m.bytesSealed?.longLived ?? null },
      },
      redis_keys: { plain: m.bytesPlain?.keys ?? null, encrypted: m.bytesSealed?.keys ?? null },
      memory_store: m.memory ?? null,
      memory_over_redis: m.memoryOverRedis ?? null,
      comparisons: Object.fromEntries((['protected', 'launch', 'fhir'] as const).flatMap((kind) =>
        STORE_KINDS.filter((store) => m[kind][store]).map((store) => [`${kind}_${store}`, withoutWindows(m[kind][store] as { routes: Comparison })]))),
    },
    method: {
      rounds: opts.rounds,
      secondsPerRound: opts.seconds,
      warmupSecondsPerRoute: opts.warmupSeconds,
      connections: opts.connections,
      offeredLoad: opts.rate === null ? 'saturation' : opts.rate === 'auto' ? '60% of the slowest route\'s warm-up rate' : `${opts.rate} req/s`,
      herdRequests: opts.herdRequests,
      memorySessions: opts.memorySessions,
      stores: opts.stores,
      ratios: 'cpu_ratio: baseline / ours of the app CPU time per request within each round, median over the rounds (> 1: ours costs less); '
        + 'the top-level req/s keys: ours / baseline of the median req/s (> 1: ours is ahead)',
    },
    machine,
    checks,
  }
}

// ---------------------------------------------------------------------------------------------- RESULTS.md

const fmt = (x: number | undefined | null, digits = 0) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(digits))

function verdict(t: TargetResult): string {
  if (t.met === null) return 'not measured'
  const word = t.met ? 'met' : '**missed**'
  return `${t.informational ? `(information) ${t.met ? 'met' : 'missed'}` : word}${t.borderline ? ' (borderline: the bound lies within the quartiles)' : ''}`
}

function targetLines(m: Measurements): string[] {
  const all = targets(m)
  if (all.every((t) => t.met === null)) return []
  const counted = all.filter((t) => !t.informational && t.met !== null)
  const lines = ['## Targets', '',
    `${counted.filter((t) => t.met).length} of ${counted.length} targets met. Throughput targets are judged on the app process's CPU per request:`,
    '**B/A** is the baseline\'s CPU per request over ours within each round, the median over the rounds (> 1: ours costs less);',
    'beside it the quartiles of the per-round ratios and the ratio of the two medians. Rows marked *(information)* are stores',
    'the issue sets no target on. Where a miss comes from: `npm run bench -- --profile --only <scenario> --stores <store>`;',
    'the last such analysis, with the library changes it calls for, is in [FINDINGS.md](FINDINGS.md).', '',
    '| target | store | figure | value | quartiles | ratio of medians | verdict |', '|---|---|---|---:|---:|---:|---|']
  for (const t of all) {
    const bound = `${t.op === '>=' ? '≥' : t.op === '<=' ? '≤' : '='} ${t.bound}`
    const q = t.quartiles ? `${fmt(t.quartiles[0], 3)}–${fmt(t.quartiles[1], 3)}` : ''
    const ratio = t.quartiles !== undefined
    const figure = ratio ? (t.figure.startsWith('B/A') ? 'B/A CPU per request' : 'A/B req/s') : t.figure
    lines.push(`| ${t.target} | ${t.store} | ${figure} (${bound}) | **${fmt(t.value, ratio ? 3 : 0)}** | ${q} | ${ratio ? fmt(t.ratioOfMedians, 3) : ''} | ${verdict(t)} |`)
  }
  lines.push('')
  return lines
}

function throughputRows(m: Measurements): string[] {
  const rows: string[] = []
  for (const pair of PAIRS) {
    for (const store of STORE_KINDS) {
      const found = pair.of(m, store)
      if (!found) continue
      const [x, y, stats] = [found.routes[pair.a], found.routes[pair.b], found.stats]
      const c = stats.perRoundCpuRatio
      const r = stats.perRoundRatio
      rows.push(`| ${pair.label} | ${STORE_NAMES[store]} | ${fmt(x.medianCpuUsPerRequest)} | ${fmt(y.medianCpuUsPerRequest)} | **${fmt(c.median, 3)}** (${fmt(c.p25, 2)}–${fmt(c.p75, 2)}) | `
        + `${fmt(stats.cpuRatio, 3)} | ${fmt(x.medianRps)} | ${fmt(y.medianRps)} | ${fmt(r.median, 2)} (${fmt(r.p25, 2)}–${fmt(r.p75, 2)}) | ${fmt(x.medianP99Ms, 1)} | ${fmt(y.medianP99Ms, 1)} |`)
    }
  }
  return rows
}

function routesByStoreRows(m: Measurements): string[] {
  const rows: string[] = []
  for (const [route, runs] of [['protected', m.protected], ['session-read', m.protected], ['launch', m.launch], ['session-write', m.launch], ['fhir-read', m.fhir], ['fhir-fetch', m.fhir]] as const) {
    for (const store of STORE_KINDS) {
      const r = (runs[store] as { routes: Comparison } | undefined)?.routes[route]
      const calls = Object.entries(r?.callsPerRequest ?? {}).map(([key, n]) => `${key} ${n.toFixed(2)}`).join(', ')
      if (r) rows.push(`| ${route} | ${STORE_NAMES[store]} | ${fmt(r.medianCpuUsPerRequest)} | ${fmt(r.medianRps)} | ${fmt(r.medianP99Ms, 1)} | ${calls || '–'} |`)
    }
  }
  return rows
}

function herdLines(m: Measurements, opts: BenchOptions): string[] {
  const herds = STORE_KINDS.map((store) => m.herd[store]).filter((h) => h !== undefined)
  if (herds.length === 0) return []
  const lines = ['## Refresh herd', '',
    `${opts.herdRequests} requests of one session at once, split over two app processes on one shared store.`, '',
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
    `${machine.loadAverageAtEnd.join(' / ')} at the end), so req/s and single rounds vary; the headline is the app process's CPU time`,
    'per request, and ratios of routes measured in the same rounds.',
    '',
    ...targetLines(m),
  ]
  const rows = throughputRows(m)
  if (rows.length > 0) {
    lines.push('## CPU per request, req/s and p99', '',
      `${opts.rounds} rounds × ${opts.seconds} s per route after a ${opts.warmupSeconds} s warm-up per route, ${opts.connections} connections, `
        + `${opts.rate === null ? 'each route as fast as the app answers' : opts.rate === 'auto' ? 'every route at 60 % of the slowest route\'s warm-up rate' : `every route at ${opts.rate} req/s`}; the order of the routes`,
      'rotates every round. A is ours, B the baseline. **CPU** is the app process\'s CPU time (user + system) per response;',
      '*B/A per round* the baseline\'s CPU per request over ours within each round, median (quartiles) over the rounds — the',
      'headline, > 1 means ours costs less; *B/A of medians* the same from the two medians. req/s and p99 beside them.', '',
      '| comparison (A vs B) | store | A CPU µs/req | B CPU µs/req | B/A per round (quartiles) | B/A of medians | A req/s | B req/s | A/B req/s per round | A p99 ms | B p99 ms |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|', ...rows, '')
  }
  const byStore = routesByStoreRows(m)
  if (byStore.length > 0) {
    lines.push('## Every route by store', '',
      'Each store\'s comparisons ran in an app process and rounds of their own, at another time than the others: compare CPU',
      'per request across stores before req/s. *Store calls* are counted in the app per response over the timed rounds:',
      'express-session `Store` methods (`store.get`, …, called by express-session or by the library) and the backend\'s own',
      'commands (`redis.get`, `redis.set`, … on the node-redis client, `pg.query` on the pool; the store methods issue these too).', '',
      '| route | store | CPU µs/req | req/s | p99 ms | store calls per request |', '|---|---|---:|---:|---:|---|', ...byStore, '')
  }
  lines.push(...herdLines(m, opts))
  if (m.bytesPlain || m.bytesSealed) {
    lines.push('## Stored bytes per launched session (Redis)', '',
      'Every key one launch left behind; STRLEN is the value size, MEMORY USAGE what Redis spends on the key (the figure the',
      '2 KB target is held to). *At rest* counts only the keys with a TTL above 600 s: what a launched session holds once the',
      'launch\'s stragglers (the retired pre-callback session and its forward) have expired.', '',
      '| key | TTL s | STRLEN plain | STRLEN with encryptionKey | MEMORY USAGE plain | MEMORY USAGE with encryptionKey |', '|---|---:|---:|---:|---:|---:|')
    const kinds = (f?: RedisFootprint) => new Map((f?.keys ?? []).map((k) => [k.kind, k]))
    const [plain, sealed] = [kinds(m.bytesPlain), kinds(m.bytesSealed)]
    for (const kind of new Set([...plain.keys(), ...sealed.keys()])) {
      const [p, s] = [plain.get(kind), sealed.get(kind)]
      lines.push(`| \`${kind}\` | ${p?.ttlSeconds ?? s?.ttlSeconds} | ${p?.strlen ?? '–'} | ${s?.strlen ?? '–'} | ${p?.memoryUsage ?? '–'} | ${s?.memoryUsage ?? '–'} |`)
    }
    lines.push(`| **total, right after the launch** | | **${m.bytesPlain?.strlen ?? '–'}** | **${m.bytesSealed?.strlen ?? '–'}** | **${m.bytesPlain?.memoryUsage ?? '–'}** | **${m.bytesSealed?.memoryUsage ?? '–'}** |`)
    lines.push(`| at rest (TTL > 600 s) | | ${m.bytesPlain?.longLived.strlen ?? '–'} | ${m.bytesSealed?.longLived.strlen ?? '–'} | ${m.bytesPlain?.longLived.memoryUsage ?? '–'} | ${m.bytesSealed?.longLived.memoryUsage ?? '–'} |`, '')
  }
  if (m.memory) {
    const mem = m.memory
    lines.push('## Memory per launched session (MemoryStore)', '',
      `${mem.sessions} sessions launched for real through \`smartLaunch\`/\`smartCallback\` against the mock EHR (none synthesized), ${fmt(mem.launchSeconds)} s.`,
      `Heap after full GCs (\`--expose-gc\`) went from ${fmt(mem.heapBefore / 1e6, 1)} MB to ${fmt(mem.heapAfter / 1e6, 1)} MB: **${fmt(mem.bytesPerSession)} bytes per session**`,
      `(${fmt(mem.bytesPerSession * 10_000 / 1e6, 1)} MB per 10,000 sessions), ${mem.storeEntriesPerSession} MemoryStore entries per session — the same keys as`,
      'in Redis above, the short-lived ones (the forward of the pre-callback session id) included.', '')
    if (mem.storeCharsPerSession != null) lines.push(`The MemoryStore's JSON strings hold ${fmt(mem.storeCharsPerSession)} characters per session (one byte each in V8's one-byte strings).`)
    const over = m.memoryOverRedis
    if (over) {
      lines.push(`The same measurement with the sessions in Redis (${over.sessions} launches) leaves **${fmt(over.bytesPerSession)} bytes of the app's heap per session**:`,
        'what the process keeps per session besides the store (the library\'s in-process copies of session records and other caches).')
    }
    lines.push('')
  }
  lines.push(...METHOD, '', '## Machine', '',
    `- nproc: ${machine.nproc}`, `- CPU: ${machine.cpuModel}`, `- Node: ${machine.node}`, `- OS: ${machine.os}`,
    `- memory: ${fmt(machine.totalMemoryBytes / 2 ** 30, 1)} GiB`, '')
  return lines.join('\n')
}

const METHOD = [
  '## Method',
  '',
  '- `npm run bench` builds the package and runs `bench/run.ts`, which copies `dist/` first: the app under test (`bench/app.ts`)',
  '  loads the library from that copy, in its own process; the load generator (`bench/load.ts`, autocannon) runs in another;',
  '  the orchestrator holds the mock EHR and starts a throwaway `redis-server`, a throwaway three-master Redis Cluster',
  '  (`redis-cli --cluster create`) and a throwaway PostgreSQL cluster (`initdb` + `pg_ctl`, fsync off) unless `DATABASE_URL`',
  '  names one.',
  '- Every app mounts one express-session (`resave: false`, `saveUninitialized: false`) over `failFastStore(MemoryStore)`,',
  '  `failFastStore(RedisStore)` (connect-redis over one node-redis client, or over node-redis\'s cluster client), or',
  '  `failFastStore(PGStore)` (connect-pg-simple over a `pg` pool of 10, a table of its own per comparison made with',
  '  connect-pg-simple\'s `table.sql`), and the library in single-launch mode with `knownFhirServers` and `allowNonHttpsLaunch`',
  '  (the mock EHR is http on 127.0.0.1).',
  '- Routes: `protected` = `requireSmartContext` then `res.json({ patient: req.smart.patient?.id })`; `session-read` reads',
  '  `req.session` only (the floor: express-session\'s own load of the same session, same cookie); `fhirclient` = fhirclient',
  '  2.6.3 `smart(req, res).ready()` then the same JSON, its session launched through its own `authorize()`/`ready()` routes',
  '  against the same EHR and stored in the same store; `launch` = `smartLaunch` with discovery cached, no cookie (a first',
  '  visit); `session-write` = `req.session.x = Date.now()`, no cookie.',
  '- FHIR read: `fhir-read` = `requireSmartContext` then `req.smart.request(\'Patient/patient-1\')` and `res.json({ patient: id })`;',
  '  `fhir-fetch` = `fetch(\'<iss>/Patient/patient-1\', { headers: { accept: \'application/fhir+json\', authorization: \'Bearer <token>\' } })`,',
  '  `await answer.json()` and the same JSON, with a fixed token (the same launch\'s, read from the mock EHR\'s log). Both carry',
  '  the same session cookie (express-session loads the same session for both), and both go through `globalThis.fetch`: the',
  '  app gives the library no `fetch` option, so its FHIR calls use the same global undici dispatcher and keep-alive pool.',
  '  The mock EHR\'s FHIR server runs in the orchestrator and serves only these reads during the rounds; its CPU is not counted.',
  '- A comparison runs its routes in the same app process: a warm-up per route, then rounds in which every route runs once,',
  '  the order rotating each round (A B C, B C A, …). CPU = the app process\'s `process.cpuUsage()` (user + system) over the',
  '  round / responses; req/s = responses / round time; p99 = the exact 99th percentile of autocannon\'s per-response times.',
  '  Reported: medians over the rounds, and the median of the per-round B/A ratios (the targets\' figure).',
  '- Refresh herd: two app processes on one store share a launched session; both processes\' clocks (the library\'s `now`',
  '  option) jump past the access token\'s expiry, then N requests with that cookie go out at once, one connection each,',
  '  alternating between the processes. Then the same after `ehr.expireAccessTokens()` on a route that reads FHIR.',
  '- `npm run bench -- --quick` runs everything short and asserts counts only; `--only`/`--stores` run a subset; `--profile`',
  '  runs the app under `--cpu-prof` and prints, per route and per request, where its CPU went (see bench/run.ts).',
]
