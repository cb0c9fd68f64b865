// Starting and stopping a throwaway redis-server for the test run. Used by global-setup.ts and
// global-teardown.ts (Jest runs both in its parent process and shares `globalThis` between them).
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { globalSlot } from './global-slot'

/** How long we wait for a freshly started redis-server to answer PING. */
export const READY_TIMEOUT_MS = 5000

export interface RunningRedis {
  url: string
  port: number
  pid: number
  child: ChildProcess
  dir: string
}

/** Where global-setup leaves the running server for global-teardown. */
const slot = globalSlot<RunningRedis>('__expressSmartOnFhirTestRedis__')
export const rememberRedis = (redis: RunningRedis | undefined): void => slot.remember(redis)
export const recallRedis = (): RunningRedis | undefined => slot.recall()

/** Absolute path of an executable named `name` on PATH, or undefined. */
export function findOnPath(name: string, pathEnv: string = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      srv.close(() => (port ? resolve(port) : reject(new Error('could not determine a free port'))))
    })
  })
}

/** One PING over a raw socket; resolves true on +PONG. */
export function ping(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    let answer = ''
    const socket = createConnection({ port, host })
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('utf8')
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'))
    })
  })
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-15).join('\n')
  } catch {
    return ''
  }
}

/** A redis-server that did not come up; `portTaken` when it exited at once (most likely a lost race for the port). */
export class RedisStartError extends Error {
  constructor(message: string, readonly portTaken: boolean) {
    super(message)
  }
}

export interface RedisNodeOptions {
  port: number
  /** Its working directory (`--dir`), where its log files go too. */
  dir: string
  /** Names its log files, so that several servers can share one directory. */
  name: string
  /** More command-line arguments, e.g. the cluster settings. */
  extraArgs?: string[]
}

/**
 * Spawns `redis-server` on 127.0.0.1:`port` with persistence off and waits until it answers PING (at
 * most READY_TIMEOUT_MS). The child is unref'd so it never keeps Jest alive; it stays in Jest's process
 * group so Ctrl-C reaches it too. On failure the child is stopped and a RedisStartError says why.
 */
export async function spawnRedisNode(binary: string, opts: RedisNodeOptions): Promise<ChildProcess> {
  const { port, dir, name } = opts
  const logFile = join(dir, `${name}.log`)
  // stdout/stderr go to a file (not a pipe, which would keep Jest alive): errors redis prints
  // before it opens its --logfile, e.g. about bad arguments, end up there.
  const outFile = join(dir, `${name}.stdout.log`)
  const outFd = openSync(outFile, 'w')
  const child = spawn(
    binary,
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--logfile', logFile,
      ...(opts.extraArgs ?? []),
    ],
    { stdio: ['ignore', outFd, outFd] },
  )
  closeSync(outFd)
  child.unref()
  let exited: string | undefined
  let spawnError: Error | undefined
  child.once('exit', (code, signal) => (exited = `exited with ${signal ?? `code ${code}`}`))
  child.once('error', (err) => (spawnError = err))

  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline && !exited && !spawnError) {
    if (await ping(port)) return child
    await sleep(50)
  }
  const why = spawnError
    ? `could not be started: ${spawnError.message}`
    : exited
      ? `${exited} before answering PING`
      : `did not answer PING on port ${port} within ${READY_TIMEOUT_MS} ms`
  const output = [readLog(outFile), readLog(logFile)].filter(Boolean).join('\n') || '(nothing)'
  const portTaken = exited !== undefined
  await stopProcess(child)
  throw new RedisStartError(`redis-server (${binary}) ${why}.\nIts last output:\n${output}`, portTaken)
}

/**
 * Starts `redis-server` on a free port of 127.0.0.1 in a directory of its own and returns it.
 * Stop it with stopRedis().
 */
export async function startRedis(binary: string): Promise<RunningRedis> {
  const attempts = 3
  let lastError: Error | undefined
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'esof-redis-'))
    try {
      const child = await spawnRedisNode(binary, { port, dir, name: 'redis' })
      return { url: `redis://127.0.0.1:${port}`, port, pid: child.pid ?? -1, child, dir }
    } catch (err) {
      rmSync(dir, { recursive: true, force: true })
      lastError = err as Error
      // A lost race for the port makes redis exit at once: try another port. Anything else: give up.
      if (!(err instanceof RedisStartError && err.portTaken)) break
    }
  }
  throw lastError ?? new Error('redis-server could not be started')
}

/** SIGTERM, then SIGKILL after 3 s; resolves when the process is gone. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await gone
  clearTimeout(timer)
}

/** Stops a server started by startRedis(): SIGTERM, then SIGKILL after 3 s; removes its directory. */
export async function stopRedis(redis: RunningRedis): Promise<void> {
  await stopProcess(redis.child)
  rmSync(redis.dir, { recursive: true, force: true })
}
