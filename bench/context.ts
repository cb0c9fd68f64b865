/**
 * What every scenario of the bench shares: the options, the mock EHR (in the orchestrator), the Redis and
 * the PostgreSQL, the load process, app processes to start, and the count checks that `--quick` asserts.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { MockEhr } from 'express-smart-on-fhir/testing'
import { startChild, type ChildHandle } from './ipc'
import type { BenchPostgres } from './postgres'
import type { AppErrors, AppHello, AppSettings, StoreKind } from './types'

export interface BenchOptions {
  quick: boolean
  profile: boolean
  rounds: number
  seconds: number
  warmupSeconds: number
  connections: number
  herdRequests: number
  /** Sessions launched for the MemoryStore heap measurement. */
  memorySessions: number
  /** Scenarios to run: a (protected vs session-read and fhirclient), c (launch), d (herd), e (footprint). */
  only: Set<string>
  /** Where results.json and RESULTS.md go (null: not written). */
  outDir: string | null
}

export interface RunningApp {
  name: string
  base: string
  handle: ChildHandle<AppHello>
  /** Fails the run's checks when the app answered any request with an unexpected error. */
  stop(): Promise<void>
}

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
    readonly postgres: BenchPostgres,
    readonly load: ChildHandle<unknown>,
    readonly profileDir: string,
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
    if (store === 'redis') return { store, redisPrefix: `bench-${name}-${process.pid}:` }
    if (store === 'postgres') return { store, pgTable: await this.postgres.createTable(name) }
    return { store }
  }

  /** Starts the app process (bench/app.ts); under --profile with --cpu-prof, one profile per app. */
  async startApp(name: string, settings: Partial<AppSettings> & Pick<AppSettings, 'store'>, nodeFlags: string[] = []): Promise<RunningApp> {
    const full: AppSettings = { iss: this.ehr.iss, redisUrl: this.redisUrl, databaseUrl: this.postgres.url, sessionSecret: this.sessionSecret, ...settings }
    const flags = [...nodeFlags]
    if (this.opts.profile) {
      flags.push('--cpu-prof', '--cpu-prof-dir', this.profileDir, '--cpu-prof-name', `${name}.cpuprofile`)
      this.profiles.push(join(this.profileDir, `${name}.cpuprofile`))
    }
    const handle = await startChild<AppHello>(join(__dirname, 'app.ts'), { env: { BENCH_APP: JSON.stringify(full) }, nodeFlags: flags })
    const check = (what: string, ok: boolean, detail: string) => this.check(what, ok, detail)
    return {
      name,
      base: `http://127.0.0.1:${handle.hello.port}`,
      handle,
      async stop() {
        const errors = await handle.call<AppErrors>('errors')
        check(`${name}: no unexpected error in the app`, errors.count === 0, `${errors.count} errors${errors.first.length ? `, first: ${errors.first[0]}` : ''}`)
        await handle.stop()
      },
    }
  }
}
