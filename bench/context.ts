/**
 * What every scenario of the bench shares: the options, the mock EHR (in the orchestrator), the Redis, the
 * Redis Cluster and the PostgreSQL, the load process, app processes to start, and the count checks that
 * `--quick` asserts.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MockEhr } from 'express-smart-on-fhir/testing'
import { startChild, type ChildHandle } from './ipc'
import type { Comparison } from './compare'
import type { BenchPostgres } from './postgres'
import { printProfile } from './profile'
import type { AppErrors, AppHello, AppSettings, StoreKind } from './types'

/** The scenarios, by name (`--only protected,fhir`); the letters of issue 22 still work (a, c, d, e). */
export const SCENARIOS = ['protected', 'launch', 'fhir', 'herd', 'footprint'] as const
export type Scenario = (typeof SCENARIOS)[number]
export const SCENARIO_ALIASES: Record<string, Scenario> = { a: 'protected', b: 'protected', c: 'launch', d: 'herd', e: 'footprint', f: 'fhir' }

export interface BenchOptions {
  quick: boolean
  /** Run the app processes under node --cpu-prof and print, per route, where their CPU went (our package's functions first). */
  profile: boolean
  rounds: number
  seconds: number
  warmupSeconds: number
  connections: number
  /**
   * Offered load of the timed rounds: null, as fast as the app answers (closed loop at saturation); a number, that
   * many requests per second for every route; 'auto', 60 % of the slowest route's warm-up rate. At one offered
   * load every route gets the same request rate, so CPU per request compares work, not how well the event loop
   * batches at saturation (the faster route batches more and looks cheaper still).
   */
  rate: number | 'auto' | null
  herdRequests: number
  /** Sessions launched for the MemoryStore heap measurement. */
  memorySessions: number
  /** The scenarios to run. */
  only: Set<Scenario>
  /** The stores the throughput comparisons run over (the herd: those of them two processes can share). */
  stores: StoreKind[]
  /** Where results.json and RESULTS.md go (null: not written). */
  outDir: string | null
}

export interface RunningApp {
  name: string
  base: string
  handle: ChildHandle<AppHello>
  /** Where its CPU profile goes (--profile), else null. */
  profile: string | null
  /** Fails the run's checks when the app answered any request with an unexpected error. */
  stop(): Promise<void>
}

/** Two routes of a comparison, ours first: the profile report sets their costs side by side. */
export interface ProfilePair { a: string; b: string }

export interface Check { name: string; ok: boolean; detail: string }

export class BenchContext {
  readonly checks: Check[] = []
  readonly profiles: string[] = []
  /** Every app process shares one session secret, so that two processes read each other's cookies. */
  readonly sessionSecret = randomBytes(24).toString('base64url')

  constructor(
    readonly opts: BenchOptions,
    readonly ehr: MockEhr,
    readonly redisUrl: string,
    /** `host:port,…` of the Redis Cluster's masters (null: no cluster in this run). */
    readonly clusterNodes: string | null,
    readonly postgres: BenchPostgres | null,
    readonly load: ChildHandle<unknown>,
    readonly profileDir: string,
    /** The library's entry point the app processes load (a snapshot of dist/). */
    readonly lib: string,
  ) {}

  log(line: string): void {
    console.log(line)
  }

  /** Records a count check (never a timing); the run fails when any is false. */
  check(name: string, ok: boolean, detail: string): void {
    this.checks.push({ name, ok, detail })
    if (!ok) console.error(`  CHECK FAILED: ${name}: ${detail}`)
  }

  /**
   * The store settings of a scenario's app processes: a Redis key prefix or a new PostgreSQL table of its own,
   * which every process started with them shares (`name` tells scenarios apart: letters, digits and `_`).
   */
  async storeSettings(store: StoreKind, name: string): Promise<Pick<AppSettings, 'store' | 'redisPrefix' | 'pgTable'>> {
    if (store === 'redis' || store === 'cluster') return { store, redisPrefix: `bench-${name}-${process.pid}:` }
    if (store === 'postgres') {
      if (!this.postgres) throw new Error('no PostgreSQL in this run')
      return { store, pgTable: await this.postgres.createTable(name) }
    }
    return { store }
  }

  /** Starts the app process (bench/app.ts); under --profile with --cpu-prof, one profile per app. */
  async startApp(name: string, settings: Partial<AppSettings> & Pick<AppSettings, 'store'>, nodeFlags: string[] = []): Promise<RunningApp> {
    const full: AppSettings = {
      lib: this.lib,
      iss: this.ehr.iss,
      redisUrl: this.redisUrl,
      ...(this.clusterNodes ? { clusterNodes: this.clusterNodes } : {}),
      ...(this.postgres ? { databaseUrl: this.postgres.url } : {}),
      sessionSecret: this.sessionSecret,
      ...settings,
    }
    const flags = [...nodeFlags]
    let profile: string | null = null
    if (this.opts.profile) {
      // 250 µs between samples (V8's default is 1 ms): a route's request costs a few hundred µs.
      flags.push('--cpu-prof', '--cpu-prof-dir', this.profileDir, '--cpu-prof-name', `${name}.cpuprofile`, '--cpu-prof-interval', '250')
      profile = join(this.profileDir, `${name}.cpuprofile`)
      this.profiles.push(profile)
    }
    const handle = await startChild<AppHello>(join(__dirname, 'app.ts'), { env: { BENCH_APP: JSON.stringify(full) }, nodeFlags: flags })
    const check = (what: string, ok: boolean, detail: string) => this.check(what, ok, detail)
    return {
      name,
      base: `http://127.0.0.1:${handle.hello.port}`,
      handle,
      profile,
      async stop() {
        const errors = await handle.call<AppErrors>('errors')
        check(`${name}: no unexpected error in the app`, errors.count === 0, `${errors.count} errors${errors.first.length ? `, first: ${errors.first[0]}` : ''}`)
        await handle.stop()
      },
    }
  }

  /** Stops a comparison's app; under --profile, prints where its CPU went per route and for each pair. */
  async finish(app: RunningApp, routes: Comparison | null, pairs: ProfilePair[]): Promise<void> {
    await app.stop()
    if (!app.profile || !routes) return
    // The rounds' windows beside the profile: `node -r esbuild-register bench/profile.ts <profile>` prints the report again.
    writeFileSync(`${app.profile}.routes.json`, JSON.stringify({ routes, pairs, lib: this.lib }))
    printProfile(app.profile, routes, pairs, this.lib, (line) => this.log(line))
  }
}
