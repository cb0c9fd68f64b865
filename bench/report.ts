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
import type { LaunchComparison, ProtectedComparison } from './throughput'

export interface Measurements {
  protectedMemory?: ProtectedComparison
  protectedRedis?: ProtectedComparison
  launchMemory?: LaunchComparison
  launchRedis?: LaunchComparison
  herd?: HerdResults
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

export function resultsJson(m: Measurements, opts: BenchOptions, machine: Machine, checks: Check[]): Record<string, unknown> {
  const herd = m.herd?.expired
  return {
    protected_vs_session_baseline: { memory: round3(m.protectedMemory?.ratioVsSessionRead), redis: round3(m.protectedRedis?.ratioVsSessionRead) },
    protected_vs_fhirclient: round3(m.protectedMemory?.ratioVsFhirclient),
    protected_vs_fhirclient_redis: round3(m.protectedRedis?.ratioVsFhirclient),
    launch_vs_session_write_baseline: round3(m.launchMemory?.ratio),
    refresh_herd: herd ? { requests: herd.requests, refresh_grants: herd.refresh_grants, ok: herd.ok, p99_ms: round3(herd.p99Ms) } : null,
    stored_bytes_per_session: m.bytesPlain?.strlen ?? null,
    memory_bytes_per_session: m.memory ? Math.round(m.memory.bytesPerSession) : null,
    detail: {
      launch_vs_session_write_baseline_redis: round3(m.launchRedis?.ratio),
      refresh_herd_revoked: m.herd?.revoked ?? null,
      stored_bytes_per_session_encrypted: m.bytesSealed?.strlen ?? null,
      stored_memory_usage_per_session: { plain: m.bytesPlain?.memoryUsage ?? null, encrypted: m.bytesSealed?.memoryUsage ?? null },
      redis_keys: { plain: m.bytesPlain?.keys ?? null, encrypted: m.bytesSealed?.keys ?? null },
      memory_store: m.memory ?? null,
      comparisons: {
        protected_memory: m.protectedMemory ?? null,
        protected_redis: m.protectedRedis ?? null,
        launch_memory: m.launchMemory ?? null,
        launch_redis: m.launchRedis ?? null,
      },
      herd_expired: m.herd?.expired ?? null,
    },
    method: {
      rounds: opts.rounds,
      secondsPerRound: opts.seconds,
      warmupSecondsPerRoute: opts.warmupSeconds,
      connections: opts.connections,
      herdRequests: opts.herdRequests,
      memorySessions: opts.memorySessions,
      ratios: 'protected / baseline, medians of req/s over the rounds (> 1: the protected route is ahead)',
    },
    machine,
    checks,
  }
}

const fmt = (x: number | undefined, digits = 0) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits))

function throughputRows(m: Measurements): string[] {
  const rows: string[] = []
  const add = (what: string, store: string, a: string, b: string, c: { routes: Record<string, { medianRps: number; medianP99Ms: number }> } | undefined) => {
    if (!c) return
    const [x, y] = [c.routes[a], c.routes[b]]
    rows.push(`| ${what} | ${store} | ${fmt(x.medianRps)} | ${fmt(y.medianRps)} | **${fmt(x.medianRps / y.medianRps, 2)}** | ${fmt(x.medianP99Ms, 2)} | ${fmt(y.medianP99Ms, 2)} |`)
  }
  add('protected vs session-read', 'MemoryStore', 'protected', 'session-read', m.protectedMemory)
  add('protected vs session-read', 'Redis', 'protected', 'session-read', m.protectedRedis)
  add('protected vs fhirclient 2.6.3', 'MemoryStore', 'protected', 'fhirclient', m.protectedMemory)
  add('protected vs fhirclient 2.6.3', 'Redis', 'protected', 'fhirclient', m.protectedRedis)
  add('smartLaunch vs session-write', 'MemoryStore', 'launch', 'session-write', m.launchMemory)
  add('smartLaunch vs session-write', 'Redis', 'launch', 'session-write', m.launchRedis)
  return rows
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
      `Each ratio is A/B of the median req/s (> 1: A is ahead). ${opts.rounds} rounds × ${opts.seconds} s per route, ${opts.connections} connections.`, '',
      '| comparison (A vs B) | store | A req/s | B req/s | A/B | A p99 ms | B p99 ms |', '|---|---|---:|---:|---:|---:|---:|', ...rows, '')
  }
  if (m.herd) {
    lines.push('## Refresh herd', '', `${opts.herdRequests} requests of one session at once, split over two app processes on one Redis.`, '',
      '| case | requests | refresh grants at the EHR | 200s | p99 ms | max ms |', '|---|---:|---:|---:|---:|---:|')
    for (const [name, h] of [['access token expired (ready() refreshes)', m.herd.expired], ['access tokens revoked at the EHR (401, refresh, retry)', m.herd.revoked]] as const) {
      lines.push(`| ${name} | ${h.requests} | ${h.refresh_grants} | ${h.ok} | ${fmt(h.p99Ms, 1)} | ${fmt(h.maxMs, 1)} |`)
    }
    lines.push('')
  }
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
      `(${fmt(mem.bytesPerSession * 10_000 / 1e6, 1)} MB per 10,000 sessions), ${mem.storeEntriesPerSession} MemoryStore entries per session.`, '')
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
  '  throwaway `redis-server` on a free port. The EHR is idle during the throughput rounds (checked: no FHIR or token call).',
  '- Every app mounts one express-session (`resave: false`, `saveUninitialized: false`) over `failFastStore(MemoryStore)` or',
  '  `failFastStore(RedisStore)` (connect-redis), and the library in single-launch mode with `knownFhirServers` and',
  '  `allowNonHttpsLaunch` (the mock EHR is http on 127.0.0.1).',
  '- Routes: `protected` = `requireSmartContext` then `res.json({ patient: req.smart.patient?.id })`; `session-read` reads',
  '  `req.session` only; `fhirclient` = fhirclient 2.6.3 `smart(req, res).ready()` then the same JSON, its session launched through',
  '  its own `authorize()`/`ready()` routes against the same EHR and stored in the same express-session store; `launch` =',
  '  `smartLaunch` with discovery cached, no cookie (a first visit); `session-write` = `req.session.x = Date.now()`, no cookie.',
  '- A comparison runs its routes in the same app process: a warm-up per route, then rounds in which every route runs once,',
  '  the order rotating each round (A B C, B C A, …). req/s = responses / round time; p99 = the exact 99th percentile of',
  '  autocannon\'s per-response times in the round. Reported: medians over the rounds.',
  '- Refresh herd: two app processes on one Redis share a launched session; both processes\' clocks (the library\'s `now`',
  '  option) jump past the access token\'s expiry, then N requests with that cookie go out at once, one connection each,',
  '  alternating between the processes. Then the same after `ehr.expireAccessTokens()` on a route that reads FHIR.',
  '- `npm run bench -- --quick` runs everything short and asserts counts only; `--profile` writes a CPU profile per app process.',
]
