// Jest globalSetup: make Redis available to the tests, as
//  - process.env.REDIS_URL: one redis-server, and
//  - process.env.REDIS_CLUSTER_NODES: a three-master Redis Cluster (`127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`).
// For each: already set → used as is; otherwise started from PATH on free ports (stopped by
// global-teardown.ts). The cluster needs redis-cli too (`redis-cli --cluster create`). A binary
// missing: with CI=true the run fails; elsewhere a warning, and the variants of the tests over that
// Redis are left out (see stores.ts). A server that is there but does not start fails the run.
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

export default async function globalSetup(): Promise<void> {
  // Set already, or still running from the previous run in watch mode.
  const needRedis = !process.env.REDIS_URL && !recallRedis()
  const needCluster = !process.env.REDIS_CLUSTER_NODES && !recallCluster()
  const redisBinaries = needRedis ? binaries('Redis', ['redis-server']) : undefined
  const clusterBinaries = needCluster ? binaries('Redis Cluster', ['redis-server', 'redis-cli']) : undefined

  // Both at once: the cluster takes a second or two to agree on its slots.
  const [redis, cluster] = await Promise.allSettled([
    redisBinaries ? startRedis(redisBinaries[0]) : undefined,
    clusterBinaries ? startRedisCluster(clusterBinaries[0], clusterBinaries[1]) : undefined,
  ])
  if (redis.status === 'rejected' || cluster.status === 'rejected') {
    // Stop whichever did start: nothing would stop it later.
    if (redis.status === 'fulfilled' && redis.value) await stopRedis(redis.value)
    if (cluster.status === 'fulfilled' && cluster.value) await stopRedisCluster(cluster.value)
    throw redis.status === 'rejected' ? redis.reason : (cluster as PromiseRejectedResult).reason
  }
  // Set before Jest spawns its workers, so they inherit them (and --runInBand shares this process).
  if (redis.value) exportRedis(redis.value)
  if (cluster.value) exportCluster(cluster.value)
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
