// App instances as real processes (app-process.ts) on one Redis or PostgreSQL, for tests that kill one mid-request:
//
//   const apps = useAppProcesses()                 // every instance is killed in afterAll
//   const [a, b] = await apps.start(2, { REDIS_URL, KEY_PREFIX, ISS: ehr.iss })
//   const [c, d] = await apps.start(2, { DATABASE_URL, PG_TABLE, ISS: ehr.iss })   // PostgreSQL: a table the test made
//   await apps.explain(async () => { ...; await a.kill('SIGKILL'); ... })   // a failure shows their stderr
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { ProcessReport } from './app-process'

const ROOT = join(__dirname, '..', '..')
const APP_PROCESS = join(__dirname, 'app-process.ts')
/** Generous: two instances starting at once on the two shared cores took up to 5 s. */
const READY_TIMEOUT_MS = 30_000
const STDERR_KEPT = 64 * 1024

/** The shared store: a Redis or a Redis Cluster with a key prefix, or a PostgreSQL session table (connect-pg-simple's table.sql). */
export type StoreEnv =
  | { REDIS_URL: string; REDIS_CLUSTER_NODES?: undefined; DATABASE_URL?: undefined; KEY_PREFIX: string; PG_TABLE?: undefined }
  | { REDIS_CLUSTER_NODES: string; REDIS_URL?: undefined; DATABASE_URL?: undefined; KEY_PREFIX: string; PG_TABLE?: undefined }
  | { DATABASE_URL: string; PG_TABLE: string; REDIS_URL?: undefined; REDIS_CLUSTER_NODES?: undefined; KEY_PREFIX?: undefined }

export type AppEnv = StoreEnv & {
  /** The mock EHR's FHIR base: the only issuer allowed to launch. Several (a list, or comma-separated): all of them are. */
  ISS: string | readonly string[]
  HTTP_TIMEOUT_MS?: number
  ENABLE_MULTI_LAUNCH?: boolean
  REFRESH_LEEWAY_SECONDS?: number
}

export interface StartOptions {
  /** Arguments for node before the script, e.g. `['--expose-gc']`. */
  nodeArgs?: string[]
  /** Names for the instances (error messages); default `app-1`, `app-2`, … */
  names?: string[]
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface AppInstance {
  readonly name: string
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  readonly pid: number
  /** Settles when the process has ended, however it ended. */
  readonly exited: Promise<Exit>
  /** How it ended, or null while it runs. */
  ended(): Exit | null
  /** What the process wrote to stderr so far (the last 64 KiB). */
  stderr(): string
  /** Sends `signal` (default SIGKILL) and resolves once the process has ended. */
  kill(signal?: NodeJS.Signals): Promise<Exit>
  /** Its counters and memory (`GET /__process`). */
  report(): Promise<ProcessReport>
}

/** Every child still running, whichever AppProcesses started it: killed if the test process exits first. */
const live = new Set<ChildProcess>()
let exitHook = false
function killLiveOnExit(): void {
  if (exitHook) return
  exitHook = true
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL')
  })
}

function storeEnvOf(env: StoreEnv): Record<string, string> {
  if (env.DATABASE_URL !== undefined) return { DATABASE_URL: env.DATABASE_URL, PG_TABLE: env.PG_TABLE }
  return { ...(env.REDIS_URL !== undefined ? { REDIS_URL: env.REDIS_URL } : { REDIS_CLUSTER_NODES: env.REDIS_CLUSTER_NODES }), KEY_PREFIX: env.KEY_PREFIX }
}

function envOf(env: AppEnv): Record<string, string> {
  return {
    ...storeEnvOf(env),
    ISS: typeof env.ISS === 'string' ? env.ISS : env.ISS.join(','),
    ...(env.HTTP_TIMEOUT_MS !== undefined ? { HTTP_TIMEOUT_MS: String(env.HTTP_TIMEOUT_MS) } : {}),
    ...(env.ENABLE_MULTI_LAUNCH ? { ENABLE_MULTI_LAUNCH: '1' } : {}),
    ...(env.REFRESH_LEEWAY_SECONDS !== undefined ? { REFRESH_LEEWAY_SECONDS: String(env.REFRESH_LEEWAY_SECONDS) } : {}),
  }
}

function describeExit(exit: Exit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`
}

/** Spawns one instance and resolves once it printed its port; on failure, rejects with its stderr. */
async function spawnApp(name: string, env: AppEnv, nodeArgs: string[]): Promise<AppInstance> {
  const child = spawn(process.execPath, [...nodeArgs, '-r', 'esbuild-register', APP_PROCESS], {
    cwd: ROOT,
    // Only the store the test names: global-setup exports all three variables, and app-process.ts prefers the cluster.
    env: { ...process.env, REDIS_URL: undefined, REDIS_CLUSTER_NODES: undefined, DATABASE_URL: undefined, ...envOf(env) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(child)
  killLiveOnExit()
  let stderr = ''
  let ended: Exit | null = null
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT)
  })
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child)
      ended = { code, signal }
      resolve(ended)
    })
  })
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    return exited
  }

  let port: number
  try {
    port = await new Promise<number>((resolve, reject) => {
      let stdout = ''
      const timer = setTimeout(() => reject(new Error(`printed no port within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS)
      child.once('error', reject)
      void exited.then((exit) => reject(new Error(`${describeExit(exit)} before printing its port`)))
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk
        const line = stdout.split('\n')
        if (line.length < 2) return
        clearTimeout(timer)
        const printed = JSON.parse(line[0]) as { port?: unknown }
        if (typeof printed.port === 'number') resolve(printed.port)
        else reject(new Error(`printed ${line[0]} instead of its port`))
      })
    })
  } catch (err) {
    await kill('SIGKILL')
    throw new Error(`app process ${name} ${(err as Error).message}. Its stderr:\n${stderr || '(nothing)'}`)
  }
  const url = `http://127.0.0.1:${port}`
  return {
    name,
    url,
    pid: child.pid!,
    exited,
    ended: () => ended,
    stderr: () => stderr,
    kill,
    async report() {
      const res = await fetch(`${url}/__process`)
      if (res.status !== 200) throw new Error(`${name}: /__process answered ${res.status}`)
      return (await res.json()) as ProcessReport
    },
  }
}

/** The app instances one test file (or the soak) started: started together, explained on failure, stopped together. */
export class AppProcesses {
  readonly #started: AppInstance[] = []

  /** Starts `count` instances with the same environment, in parallel; resolves when all of them listen. */
  async start(count: number, env: AppEnv, opts: StartOptions = {}): Promise<AppInstance[]> {
    const first = this.#started.length
    const names = Array.from({ length: count }, (_, i) => opts.names?.[i] ?? `app-${first + i + 1}`)
    const settled = await Promise.allSettled(names.map((name) => spawnApp(name, env, opts.nodeArgs ?? [])))
    const started = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
    this.#started.push(...started)
    const failed = settled.find((result) => result.status === 'rejected')
    if (failed) throw failed.reason
    return started
  }

  /** Each instance's end (or that it still runs) and its stderr: what a failure message needs. */
  logs(): string {
    return this.#started.map((app) => {
      const ended = app.ended()
      return `--- ${app.name} (pid ${app.pid}, ${ended ? describeExit(ended) : 'running'}) stderr:\n${app.stderr() || '(nothing)'}`
    }).join('\n')
  }

  /** Runs `work`; if it throws, the error carries every instance's stderr. */
  async explain<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      if (err instanceof Error) err.message += `\n\nApp processes:\n${this.logs()}`
      throw err
    }
  }

  /** Kills every instance still running (SIGKILL: they hold nothing that needs flushing). */
  async stopAll(): Promise<void> {
    await Promise.all(this.#started.map((app) => app.kill('SIGKILL')))
  }
}

/** For a Jest test file: an AppProcesses whose instances are all stopped in afterAll. */
export function useAppProcesses(): AppProcesses {
  const apps = new AppProcesses()
  afterAll(() => apps.stopAll())
  return apps
}
