/**
 * `npm run bench [-- options]`: the library's hot paths against baselines, with the app and the load
 * generator in separate processes. Writes bench/results.json and bench/RESULTS.md (full runs only).
 *
 *   --quick            a smoke test (< 1 min): short rounds, few sessions; asserts counts, never timings
 *   --profile          run every app process under node --cpu-prof; prints where the profiles went
 *   --rounds N         rounds per comparison (15)          --seconds S   seconds per route and round (3)
 *   --warmup S         warm-up seconds per route (3)      --connections N   autocannon connections (10)
 *   --sessions N       MemoryStore sessions to launch (10000)
 *   --only a,c,d,e     scenarios: a = protected vs session-read and vs fhirclient (the issue's a and b, one set of
 *                      rounds), c = launch (a and c over MemoryStore, Redis and PostgreSQL), d = refresh herd (over
 *                      Redis, then PostgreSQL), e = stored bytes and memory per session
 *   --out DIR          where results go (default bench/; --quick writes nothing unless given)
 *
 * Stores: MemoryStore, a throwaway redis-server of its own, and PostgreSQL: the one DATABASE_URL names (the bench
 * makes its tables there and drops them), else a throwaway cluster of its own (initdb + pg_ctl).
 *
 * Exits non-zero when a count check fails (a route answered anything unexpected, the herd saw other than
 * one refresh grant or a request failed, a launch failed).
 */
import '../__tests__/helpers/quiet-runtime-warning'
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { createMockEhr } from 'express-smart-on-fhir/testing'
import { findOnPath, startRedis, stopRedis, type RunningRedis } from '../__tests__/helpers/redis-server'
import { BenchContext, type BenchOptions } from './context'
import { memoryFootprint, redisFootprint } from './footprint'
import { refreshHerd } from './herd'
import { startChild } from './ipc'
import { openPostgres, type BenchPostgres } from './postgres'
import { describeMachine, resultsJson, resultsMarkdown, type Measurements } from './report'
import { launchComparison, protectedComparison } from './throughput'

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
      sessions: { type: 'string' },
      only: { type: 'string' },
      out: { type: 'string' },
    },
  })
  const quick = values.quick
  const number = (name: string, value: string | undefined, fallback: number) => {
    const parsed = value === undefined ? fallback : Number(value)
    if (!Number.isFinite(parsed) || parsed <= 0) throw new TypeError(`--${name} must be a positive number`)
    return parsed
  }
  return {
    quick,
    profile: values.profile,
    rounds: number('rounds', values.rounds, quick ? 2 : 15),
    seconds: number('seconds', values.seconds, quick ? 0.5 : 3),
    warmupSeconds: number('warmup', values.warmup, quick ? 0.25 : 3),
    connections: number('connections', values.connections, 10),
    herdRequests: 100,
    memorySessions: number('sessions', values.sessions, quick ? 30 : 10_000),
    only: new Set((values.only ?? 'a,c,d,e').split(',').map((s) => s.trim())),
    outDir: values.out ? resolve(values.out) : quick ? null : __dirname,
  }
}

async function scenarios(ctx: BenchContext): Promise<Measurements> {
  const m: Measurements = {}
  const { only } = ctx.opts
  const timed = async <T>(run: () => Promise<T>): Promise<T> => {
    const started = Date.now()
    const result = await run()
    ctx.log(`  (${((Date.now() - started) / 1000).toFixed(1)} s)`)
    return result
  }
  if (only.has('a')) {
    m.protectedMemory = await timed(() => protectedComparison(ctx, 'memory'))
    m.protectedRedis = await timed(() => protectedComparison(ctx, 'redis'))
    m.protectedPostgres = await timed(() => protectedComparison(ctx, 'postgres'))
  }
  if (only.has('c')) {
    m.launchMemory = await timed(() => launchComparison(ctx, 'memory'))
    m.launchRedis = await timed(() => launchComparison(ctx, 'redis'))
    m.launchPostgres = await timed(() => launchComparison(ctx, 'postgres'))
  }
  if (only.has('d')) {
    m.herdRedis = await timed(() => refreshHerd(ctx, 'redis'))
    m.herdPostgres = await timed(() => refreshHerd(ctx, 'postgres'))
  }
  if (only.has('e')) {
    ctx.log('\nstored bytes per launched session')
    m.bytesPlain = await timed(() => redisFootprint(ctx, false))
    m.bytesSealed = await timed(() => redisFootprint(ctx, true))
    m.memory = await timed(() => memoryFootprint(ctx))
  }
  return m
}

async function main(): Promise<number> {
  const opts = options(process.argv.slice(2))
  const startedAt = new Date()
  const loadAtStart = loadavg()
  const binary = findOnPath('redis-server')
  if (!binary) throw new Error('redis-server is not on PATH (Debian: apt-get install -y redis-server)')
  const profileDir = join(__dirname, 'profiles', startedAt.toISOString().replace(/[:.]/g, '-'))
  if (opts.profile) mkdirSync(profileDir, { recursive: true })

  let redis: RunningRedis | undefined
  let postgres: BenchPostgres | undefined
  const ehr = await createMockEhr()
  const load = await startChild<unknown>(join(__dirname, 'load.ts'))
  try {
    // Both at once (initdb takes a second or two); whichever started is stopped below, even if the other failed.
    const [startedRedis, openedPostgres] = await Promise.allSettled([startRedis(binary), openPostgres()])
    if (startedRedis.status === 'fulfilled') redis = startedRedis.value
    if (openedPostgres.status === 'fulfilled') postgres = openedPostgres.value
    if (startedRedis.status === 'rejected') throw startedRedis.reason
    if (openedPostgres.status === 'rejected') throw openedPostgres.reason
    const ctx = new BenchContext(opts, ehr, startedRedis.value.url, openedPostgres.value, load, profileDir)
    ctx.log(`bench: ${opts.quick ? 'quick smoke test' : 'full run'}, ${opts.rounds} rounds × ${opts.seconds} s, ${opts.connections} connections, scenarios ${[...opts.only].join(',')}`)
    const measurements = await scenarios(ctx)
    const machine = describeMachine(startedAt, loadAtStart)
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
    if (postgres) await postgres.close()
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
