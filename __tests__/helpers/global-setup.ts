// Jest globalSetup: make Redis and PostgreSQL available to the tests, as
//  - process.env.REDIS_URL: one redis-server,
//  - process.env.REDIS_CLUSTER_NODES: a three-master Redis Cluster (`127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`), and
//  - process.env.DATABASE_URL: a PostgreSQL cluster of its own (initdb + pg_ctl, postgres-server.ts).
// For each: already set → used as is; otherwise started on free ports (stopped by global-teardown.ts):
// Redis from PATH, PostgreSQL from PATH or Debian's /usr/lib/postgresql/<version>/bin. The cluster needs
// redis-cli too (`redis-cli --cluster create`). A binary missing: with CI=true the run fails; elsewhere a
// warning, and the variants of the tests over that store are left out (see stores.ts). A server that is
// there but does not start fails the run.
import { findPostgresBinDir, killPostgres, recallPostgres, rememberPostgres, startPostgres, stopPostgres, type RunningPostgres } from './postgres-server'
import { recallCluster, rememberCluster, startRedisCluster, stopRedisCluster, type RunningCluster } from './redis-cluster'
import { findOnPath, recallRedis, rememberRedis, startRedis, stopRedis, type RunningRedis } from './redis-server'

const EXIT_HOOK = '__expressSmartOnFhirTestRedisExitHook__'

/** Safety net if Jest exits without running globalTeardown (installed once, also in watch mode). */
function killOnExit(): void {
  const g = globalThis as typeof globalThis & { [EXIT_HOOK]?: true }
  if (g[EXIT_HOOK]) return
  g[EXIT_HOOK] = true
  process.once('exit', () => {
    for (const child of [recallRedis()?.child, ...(recallCluster()?.children ?? [])]) {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    const pg = recallPostgres()
    if (pg) killPostgres(pg)
  })
}

/** The binaries needed, or undefined after a warning (outside CI) / an error (CI=true) naming what is missing. */
function binaries(what: string, names: string[]): string[] | undefined {
  const found = names.map((name) => findOnPath(name))
  const missing = names.filter((_, i) => !found[i])
  if (missing.length === 0) return found as string[]
  const help =
    `${missing.join(' and ')} ${missing.length > 1 ? 'were' : 'was'} not found on PATH. Install them (Debian/Ubuntu: ` +
    '`apt-get update && apt-get install -y redis-server`, which brings redis-tools with redis-cli) ' +
    `or set ${what === 'Redis Cluster' ? 'REDIS_CLUSTER_NODES' : 'REDIS_URL'} to a ${what} the tests may use.`
  if (process.env.CI === 'true') throw new Error(`CI=true: the tests need ${what}. ${help}`)
  console.warn(`\n[express-smart-on-fhir tests] WARNING: ${help} Tests over ${what === 'Redis Cluster' ? 'RedisCluster' : 'RedisStore'} are SKIPPED.\n`)
  return undefined
}

/** Where initdb and pg_ctl are, or undefined after a warning (outside CI) / an error (CI=true). */
function postgresBinDir(): string | undefined {
  const found = findPostgresBinDir()
  if (found) return found
  const help =
    'initdb and pg_ctl were found neither on PATH nor under /usr/lib/postgresql/<version>/bin. Install them ' +
    '(Debian/Ubuntu: `apt-get update && apt-get install -y postgresql`) or set DATABASE_URL to a PostgreSQL the tests may use.'
  if (process.env.CI === 'true') throw new Error(`CI=true: the tests need PostgreSQL. ${help}`)
  console.warn(`\n[express-smart-on-fhir tests] WARNING: ${help} Tests over PostgreSQL are SKIPPED.\n`)
  return undefined
}

export default async function globalSetup(): Promise<void> {
  // Set already, or still running from the previous run in watch mode.
  const needRedis = !process.env.REDIS_URL && !recallRedis()
  const needCluster = !process.env.REDIS_CLUSTER_NODES && !recallCluster()
  const needPostgres = !process.env.DATABASE_URL && !recallPostgres()
  const redisBinaries = needRedis ? binaries('Redis', ['redis-server']) : undefined
  const clusterBinaries = needCluster ? binaries('Redis Cluster', ['redis-server', 'redis-cli']) : undefined
  const postgresBin = needPostgres ? postgresBinDir() : undefined

  // All at once: the cluster takes a second or two to agree on its slots, initdb about as long.
  const [redis, cluster, postgres] = await Promise.allSettled([
    redisBinaries ? startRedis(redisBinaries[0]) : undefined,
    clusterBinaries ? startRedisCluster(clusterBinaries[0], clusterBinaries[1]) : undefined,
    postgresBin ? startPostgres(postgresBin) : undefined,
  ])
  const [startedRedis, startedCluster, startedPostgres] = [started(redis), started(cluster), started(postgres)]
  const failed = [redis, cluster, postgres].find((result) => result.status === 'rejected')
  if (failed) {
    // Stop whichever did start: nothing would stop it later.
    if (startedRedis) await stopRedis(startedRedis)
    if (startedCluster) await stopRedisCluster(startedCluster)
    if (startedPostgres) await stopPostgres(startedPostgres)
    throw failed.reason
  }
  // Set before Jest spawns its workers, so they inherit them (and --runInBand shares this process).
  if (startedRedis) exportRedis(startedRedis)
  if (startedCluster) exportCluster(startedCluster)
  if (startedPostgres) exportPostgres(startedPostgres)
}

function started<T>(result: PromiseSettledResult<T | undefined>): T | undefined {
  return result.status === 'fulfilled' ? result.value : undefined
}

function exportRedis(redis: RunningRedis): void {
  rememberRedis(redis)
  killOnExit()
  process.env.REDIS_URL = redis.url
}

function exportCluster(cluster: RunningCluster): void {
  rememberCluster(cluster)
  killOnExit()
  process.env.REDIS_CLUSTER_NODES = cluster.nodes
}

function exportPostgres(pg: RunningPostgres): void {
  rememberPostgres(pg)
  killOnExit()
  process.env.DATABASE_URL = pg.url
}
