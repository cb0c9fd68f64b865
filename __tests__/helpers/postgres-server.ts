// A throwaway PostgreSQL cluster for the test run: `initdb` in a temporary directory, `pg_ctl start` on a
// free port of 127.0.0.1, `pg_ctl stop` at the end. Used by global-setup.ts and global-teardown.ts (which
// share `globalThis`), and by tests that need a database of their own to stop and start again.
//
// initdb and the server refuse to run as root: as root, they run as the `postgres` user (Debian's package
// creates it), else as `nobody`, in a directory that user owns. Debian keeps the binaries off PATH, under
// /usr/lib/postgresql/<version>/bin; PATH is searched first.
import { execFile } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findOnPath, freePort } from './redis-server'
import { globalSlot } from './global-slot'

export interface RunningPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication, local only). */
  url: string
  port: number
  /** The directory holding the cluster (`data/`), its socket and its log. */
  dir: string
  /** Where initdb, pg_ctl and postgres are. */
  binDir: string
  /** The postmaster's PID, for the exit hook of global-setup.ts. */
  pid: number
}

/** Where global-setup leaves the running PostgreSQL for global-teardown. */
const slot = globalSlot<RunningPostgres>('__expressSmartOnFhirTestPostgres__')
export const rememberPostgres = (pg: RunningPostgres | undefined): void => slot.remember(pg)
export const recallPostgres = (): RunningPostgres | undefined => slot.recall()

/** The directory with initdb and pg_ctl: PATH, else Debian's /usr/lib/postgresql/<highest version>/bin. */
export function findPostgresBinDir(): string | undefined {
  const initdb = findOnPath('initdb')
  if (initdb && findOnPath('pg_ctl')) return join(initdb, '..')
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
  return versions.map((v) => join(root, v, 'bin')).find((dir) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')))
}

/** The uid and gid to run PostgreSQL as: none when not root, else `postgres`, else `nobody`. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const users = new Map(readFileSync('/etc/passwd', 'utf8').split('\n').map((line) => {
    const [name, , uid, gid] = line.split(':')
    return [name, { uid: Number(uid), gid: Number(gid) }] as const
  }))
  const user = users.get('postgres') ?? users.get('nobody')
  if (!user) throw new Error('running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as')
  return user
}

function run(binary: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { ...runAs(), timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${binary} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`.trim()))
      else resolve(stdout)
    })
  })
}

function logTail(dir: string): string {
  try {
    return readFileSync(join(dir, 'postgres.log'), 'utf8').trim().split('\n').slice(-15).join('\n')
  } catch {
    return '(no log)'
  }
}

/** `pg_ctl start`, waiting until the server accepts connections; its output and log when it does not. */
export async function startServer(pg: Pick<RunningPostgres, 'binDir' | 'dir'>): Promise<number> {
  const data = join(pg.dir, 'data')
  try {
    await run(join(pg.binDir, 'pg_ctl'), ['-D', data, '-l', join(pg.dir, 'postgres.log'), '-w', '-t', '30', 'start'])
  } catch (err) {
    throw new Error(`${(err as Error).message}\nIts log:\n${logTail(pg.dir)}`)
  }
  return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
}

/** `pg_ctl stop -m fast`: disconnects every client and waits until the server is gone. */
export async function stopServer(pg: Pick<RunningPostgres, 'binDir' | 'dir'>): Promise<void> {
  await run(join(pg.binDir, 'pg_ctl'), ['-D', join(pg.dir, 'data'), '-m', 'fast', '-w', '-t', '30', 'stop'])
}

/**
 * Creates a cluster in a new temporary directory and starts it on a free port (another on a lost race for
 * the port). Fast and unsafe on purpose: no fsync, nothing survives a crash. Stop it with stopPostgres().
 */
export async function startPostgres(binDir: string): Promise<RunningPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'esof-postgres-'))
  try {
    const owner = runAs()
    if (owner) chownSync(dir, owner.uid, owner.gid)
    const data = join(dir, 'data')
    await run(join(binDir, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '--no-locale', '-E', 'UTF8'], 60_000)
    let lastError: Error | undefined
    for (let attempt = 1; attempt <= 3; attempt++) {
      const port = await freePort()
      writeFileSync(join(data, 'postgresql.auto.conf'), [
        `port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`,
        'max_connections = 200', 'fsync = off', 'synchronous_commit = off', 'full_page_writes = off', '',
      ].join('\n'))
      try {
        const pid = await startServer({ binDir, dir })
        return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, dir, binDir, pid }
      } catch (err) {
        lastError = err as Error
        if (!/could not bind|Address already in use/i.test(lastError.message)) break
      }
    }
    throw lastError ?? new Error('PostgreSQL could not be started')
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

/** Stops a cluster started by startPostgres() and removes its directory. */
export async function stopPostgres(pg: RunningPostgres): Promise<void> {
  try {
    if (existsSync(join(pg.dir, 'data', 'postmaster.pid'))) await stopServer(pg)
  } finally {
    rmSync(pg.dir, { recursive: true, force: true })
  }
}

/** For the exit hook: a fast shutdown without waiting (SIGINT to the postmaster), if it still runs. */
export function killPostgres(pg: RunningPostgres): void {
  try {
    process.kill(pg.pid, 'SIGINT')
  } catch {
    // already gone
  }
}
