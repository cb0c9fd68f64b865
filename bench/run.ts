/**
 * `npm run bench [-- options]`: the library's hot paths against baselines, with the app and the load
 * generator in separate processes. Writes bench/results.json and bench/RESULTS.md (full runs only).
 *
 *   --quick            a smoke test (~1 min): short rounds, few sessions; asserts counts, never timings
 *   --only a,b         scenarios (default: all): protected (requireSmartContext vs the session-read floor and vs
 *                      fhirclient 2.6.3), launch (smartLaunch vs session-write), fhir (a FHIR read through
 *                      req.smart.request() vs the same fetch()), herd (the refresh herd over two processes),
 *                      footprint (stored bytes in Redis, the app's heap per session over MemoryStore and over
 *                      Redis); a, c, d, e, f also work
 *   --stores a,b       stores of the throughput comparisons and the herd (default: memory,redis,cluster,postgres)
 *   --profile          run the app processes under node --cpu-prof; after each comparison print, per route and
 *                      per request, where the app's CPU went (by package; our package's functions by self and
 *                      total time) and what ours costs more than its baseline. Use with --only and --stores,
 *                      e.g. `npm run bench -- --profile --only protected --stores memory`. Writes no results
 *                      unless --out is given (the profiler slows the app down).
 *   --rounds N         rounds per comparison (12)          --seconds S   seconds per route and round (2.5)
 *   --warmup S         warm-up seconds per route (2.5)    --connections N   autocannon connections (10)
 *   --rate R|auto|off  offered load of the timed rounds: R requests/s per route, or auto (60 % of the slowest
 *                      route's warm-up rate: every route at the same load, below saturation); default off (each
 *                      route as fast as the app answers)
 *   --sessions N       sessions to launch for the heap per session over MemoryStore (10000; over Redis half as many)
 *   --out DIR          where results go (default bench/; --quick and --profile write nothing unless given)
 *
 * Stores: MemoryStore, a throwaway redis-server of its own, a throwaway three-master Redis Cluster of its own, and
 * PostgreSQL: the one DATABASE_URL names (the bench makes its tables there and drops them), else a throwaway
 * cluster of its own (initdb + pg_ctl).
 *
 * The app processes load the library from a copy of dist/ made at the start, so that a rebuild during the run
 * (npm run build removes dist/ first) changes nothing under measurement.
 *
 * Exits non-zero when a count check fails (a route answered anything unexpected, the herd saw other than
 * one refresh grant or a request failed, a launch failed).
 */
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type * as Testing from 'express-smart-on-fhir/testing'
import { startRedisCluster, stopRedisCluster, type RunningCluster } from '../__tests__/helpers/redis-cluster'
import { findOnPath, startRedis, stopRedis, type RunningRedis } from '../__tests__/helpers/redis-server'
import { BenchContext, SCENARIOS, SCENARIO_ALIASES, type BenchOptions, type Scenario } from './context'
import { memoryFootprint, redisFootprint } from './footprint'
import { refreshHerd, type SharedStore } from './herd'
import { startChild } from './ipc'
import { openPostgres, type BenchPostgres } from './postgres'
import { describeCommit, describeMachine, resultsJson, resultsMarkdown, type Measurements } from './report'
import { fhirComparison, launchComparison, protectedComparison } from './throughput'
import { STORE_KINDS, type StoreKind } from './types'

function options(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      sessions: { type: 'string' },
      only: { type: 'string' },
      stores: { type: 'string' },
      out: { type: 'string' },
    },
  })
  const quick = values.quick
  const number = (name: string, value: string | undefined, fallback: number) => {
    const parsed = value === undefined ? fallback : Number(value)
    if (!Number.isFinite(parsed) || parsed <= 0) throw new TypeError(`--${name} must be a positive number`)
    return parsed
  }
  const list = <T extends string>(name: string, value: string | undefined, known: readonly T[], aliases: Record<string, T> = {}): T[] => {
    if (value === undefined) return [...known]
    return value.split(',').map((item) => item.trim()).filter(Boolean).map((item) => {
      const found = aliases[item] ?? (known.includes(item as T) ? (item as T) : undefined)
      if (!found) throw new TypeError(`--${name}: unknown ${JSON.stringify(item)} (one of ${known.join(', ')})`)
      return found
    })
  }
  return {
    quick,
    profile: values.profile,
    rounds: number('rounds', values.rounds, quick ? 2 : 12),
    seconds: number('seconds', values.seconds, quick ? 0.5 : 2.5),
    warmupSeconds: number('warmup', values.warmup, quick ? 0.25 : 2.5),
    connections: number('connections', values.connections, 10),
    rate: values.rate === undefined || values.rate === 'off' ? null : values.rate === 'auto' ? 'auto' : number('rate', values.rate, 0),
    herdRequests: 100,
    memorySessions: number('sessions', values.sessions, quick ? 30 : 10_000),
    only: new Set(list('only', values.only, SCENARIOS, SCENARIO_ALIASES)),
    stores: [...new Set(list('stores', values.stores, STORE_KINDS, { redisstore: 'redis', 'redis-cluster': 'cluster', pg: 'postgres', postgresql: 'postgres', memorystore: 'memory' } as Record<string, StoreKind>))],
    outDir: values.out ? resolve(values.out) : quick || values.profile ? null : __dirname,
  }
}

async function scenarios(ctx: BenchContext): Promise<Measurements> {
  const m: Measurements = { protected: {}, launch: {}, fhir: {}, herd: {} }
  const { only, stores } = ctx.opts
  const timed = async <T>(run: () => Promise<T>): Promise<T> => {
    const started = Date.now()
    const result = await run()
    ctx.log(`  (${((Date.now() - started) / 1000).toFixed(1)} s)`)
    return result
  }
  for (const store of stores) if (only.has('protected')) m.protected[store] = await timed(() => protectedComparison(ctx, store))
  for (const store of stores) if (only.has('launch')) m.launch[store] = await timed(() => launchComparison(ctx, store))
  for (const store of stores) if (only.has('fhir')) m.fhir[store] = await timed(() => fhirComparison(ctx, store))
  for (const store of stores) if (only.has('herd') && store !== 'memory') m.herd[store] = await timed(() => refreshHerd(ctx, store as SharedStore))
  if (only.has('footprint')) {
    ctx.log('\nstored bytes per launched session')
    m.bytesPlain = await timed(() => redisFootprint(ctx, false))
    m.bytesSealed = await timed(() => redisFootprint(ctx, true))
    m.memory = await timed(() => memoryFootprint(ctx))
    // What the app process keeps per session besides the store (the sessions are in Redis): half as many launches.
    m.memoryOverRedis = await timed(() => memoryFootprint(ctx, 'redis', Math.max(1, Math.round(ctx.opts.memorySessions / 2))))
  }
  return m
}

/**
 * A copy of dist/ for the app processes (under node_modules/.cache, so that the library's dependencies resolve
 * from the repository's node_modules). dist/ may be missing for a moment while someone else rebuilds it: waits.
 */
async function snapshotDist(): Promise<{ entry: string; remove: () => void }> {
  const root = join(__dirname, '..')
  const dist = join(root, 'dist')
  const target = join(root, 'node_modules', '.cache', 'express-smart-on-fhir-bench', String(process.pid))
  for (let attempt = 1; ; attempt++) {
    const complete = ['index.js', 'testing/index.js'].every((file) => existsSync(join(dist, file)))
    if (complete) {
      rmSync(target, { recursive: true, force: true })
      cpSync(dist, join(target, 'dist'), { recursive: true })
      if (['index.js', 'testing/index.js'].every((file) => existsSync(join(target, 'dist', file)))) break
    }
    if (attempt >= 24) throw new Error(`${dist} stayed incomplete for 2 minutes (is a build failing?); run npm run build`)
    await new Promise((resolve) => setTimeout(resolve, 5000))
  }
  return { entry: join(target, 'dist', 'index.js'), remove: () => rmSync(target, { recursive: true, force: true }) }
}

async function main(): Promise<number> {
  const opts = options(process.argv.slice(2))
  const startedAt = new Date()
  const loadAtStart = loadavg()
  const binary = findOnPath('redis-server')
  if (!binary) throw new Error('redis-server is not on PATH (Debian: apt-get install -y redis-server)')
  const storesUsed = new Set<StoreKind>([
    ...(['protected', 'launch', 'fhir', 'herd'] as Scenario[]).some((s) => opts.only.has(s)) ? opts.stores : [],
    ...(opts.only.has('footprint') ? (['redis', 'memory'] as StoreKind[]) : []),
  ])
  const cli = findOnPath('redis-cli')
  if (storesUsed.has('cluster') && !cli) throw new Error('redis-cli is not on PATH (it joins the Redis Cluster; Debian: apt-get install -y redis-tools)')
  const profileDir = join(__dirname, 'profiles', startedAt.toISOString().replace(/[:.]/g, '-'))
  if (opts.profile) mkdirSync(profileDir, { recursive: true })

  const lib = await snapshotDist()
  const commit = describeCommit()
  let redis: RunningRedis | undefined
  let cluster: RunningCluster | undefined
  let postgres: BenchPostgres | undefined
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createMockEhr } = require(join(lib.entry, '..', 'testing')) as typeof Testing
  const ehr = await createMockEhr()
  const load = await startChild<unknown>(join(__dirname, 'load.ts'))
  try {
    // All at once (initdb takes a second or two); whichever started is stopped below, even if another failed.
    const [startedRedis, startedCluster, openedPostgres] = await Promise.allSettled([
      startRedis(binary),
      storesUsed.has('cluster') ? startRedisCluster(binary, cli!) : Promise.resolve(undefined),
      storesUsed.has('postgres') ? openPostgres() : Promise.resolve(undefined),
    ])
    if (startedRedis.status === 'fulfilled') redis = startedRedis.value
    if (startedCluster.status === 'fulfilled') cluster = startedCluster.value
    if (openedPostgres.status === 'fulfilled') postgres = openedPostgres.value
    for (const started of [startedRedis, startedCluster, openedPostgres]) if (started.status === 'rejected') throw started.reason
    const ctx = new BenchContext(opts, ehr, redis!.url, cluster?.nodes ?? null, postgres ?? null, load, profileDir, lib.entry)
    ctx.log(`bench: ${opts.quick ? 'quick smoke test' : 'full run'}${opts.profile ? ' under --cpu-prof' : ''} of ${commit}, ${opts.rounds} rounds × ${opts.seconds} s, `
      + `${opts.connections} connections, scenarios ${[...opts.only].join(',')}, stores ${opts.stores.join(',')}`)
    const measurements = await scenarios(ctx)
    const machine = describeMachine(startedAt, loadAtStart, commit)
    if (opts.outDir) {
      mkdirSync(opts.outDir, { recursive: true })
      writeFileSync(join(opts.outDir, 'results.json'), `${JSON.stringify(resultsJson(measurements, opts, machine, ctx.checks), null, 2)}\n`)
      writeFileSync(join(opts.outDir, 'RESULTS.md'), resultsMarkdown(measurements, opts, machine))
      ctx.log(`\nresults: ${join(opts.outDir, 'results.json')}, ${join(opts.outDir, 'RESULTS.md')}`)
    }
    if (opts.profile) ctx.log(`\nCPU profiles of the app processes (open in Chrome DevTools or speedscope):\n${ctx.profiles.map((p) => `  ${p}`).join('\n')}`)
    const failed = ctx.checks.filter((check) => !check.ok)
    ctx.log(`\nchecks: ${ctx.checks.length - failed.length}/${ctx.checks.length} passed (${machine.durationSeconds} s)`)
    for (const check of failed) console.error(`FAILED: ${check.name}: ${check.detail}`)
    return failed.length === 0 ? 0 : 1
  } finally {
    await load.stop()
    await ehr.close()
    if (redis) await stopRedis(redis)
    if (cluster) await stopRedisCluster(cluster)
    if (postgres) await postgres.close()
    lib.remove()
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
