/**
 * The bench's PostgreSQL: the one DATABASE_URL names, else a throwaway cluster of the orchestrator's own
 * (initdb + pg_ctl on a free port, the tests' postgres-server.ts), stopped at the end. Each scenario gets a
 * session table of its own, made with connect-pg-simple's table.sql (as a Redis scenario gets a key prefix);
 * the tables are dropped at the end, so that a DATABASE_URL of the user's keeps nothing of the bench.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'pg'
import { findPostgresBinDir, killPostgres, startPostgres, stopPostgres, type RunningPostgres } from '../__tests__/helpers/postgres-server'

export interface BenchPostgres {
  url: string
  /** Creates connect-pg-simple's session table `bench_<name>_<pid>`; resolves with its name. */
  createTable(name: string): Promise<string>
  /** Drops the tables made, closes the connections, stops the cluster if it is ours. */
  close(): Promise<void>
}

/**
 * connect-pg-simple's own table definition, for a table of another name. Its index names too (`session_pkey`,
 * `IDX_session_expire`): they are unique per schema, so two tables cannot both keep them.
 */
function sessionTableDdl(table: string): string {
  return readFileSync(join(require.resolve('connect-pg-simple'), '..', 'table.sql'), 'utf8').replaceAll('session', table)
}

/** DATABASE_URL, else a cluster of our own. */
async function database(): Promise<{ url: string; cluster?: RunningPostgres }> {
  const given = process.env.DATABASE_URL
  if (given) return { url: given }
  const binDir = findPostgresBinDir()
  if (!binDir) {
    throw new Error('initdb and pg_ctl were found neither on PATH nor under /usr/lib/postgresql/<version>/bin '
      + '(Debian: apt-get install -y postgresql); install them, or set DATABASE_URL to a PostgreSQL the bench may use')
  }
  const cluster = await startPostgres(binDir)
  return { url: cluster.url, cluster }
}

/**
 * pg_ctl detaches the server from our process group, so Ctrl-C would not reach it: on a signal or an exit
 * before close(), it gets a fast shutdown (its temporary directory stays). Returns the undo.
 */
function stopOnExit(cluster: RunningPostgres): () => void {
  const kill = () => killPostgres(cluster)
  const onSignal = (signal: NodeJS.Signals) => {
    kill()
    process.kill(process.pid, signal)
  }
  process.once('exit', kill)
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  return () => {
    process.off('exit', kill)
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

export async function openPostgres(): Promise<BenchPostgres> {
  const { url, cluster } = await database()
  const undoStopOnExit = cluster ? stopOnExit(cluster) : () => {}
  const admin = new Pool({ connectionString: url, connectionTimeoutMillis: 5000, max: 1 })
  admin.on('error', (err: Error) => console.error(`bench: postgres: ${err.message}`))
  const tables: string[] = []
  return {
    url,
    async createTable(name) {
      const table = `bench_${name}_${process.pid}`
      await admin.query(sessionTableDdl(table))
      tables.push(table)
      return table
    },
    async close() {
      try {
        for (const table of tables) await admin.query(`DROP TABLE IF EXISTS "${table}"`)
      } finally {
        await admin.end()
        if (cluster) await stopPostgres(cluster)
        undoStopOnExit()
      }
    },
  }
}
