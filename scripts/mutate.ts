// `npm run mutate [-- <stryker run options>]`: Stryker (stryker.config.mjs) over lib/client, lib/session, lib/fhir, lib/oauth,
// lib/middleware and lib/storage, with the Redis the tests need started once for the whole run.
//
// Stryker's jest runner calls Jest's runCLI once per mutant, and every call runs the suite's globalSetup and
// globalTeardown: left to them, each mutant would start and stop a redis-server and a three-master cluster.
// Here they are started once (as __tests__/helpers/global-setup.ts does) and handed down as REDIS_URL and
// REDIS_CLUSTER_NODES, which global-setup then uses as they are and global-teardown leaves alone. They are
// stopped when Stryker ends, however it ends (Ctrl-C included). PROPERTY_RUNS (default 100 here) sets the
// cases per property test.
import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import { join } from 'node:path'
import { startRedisCluster, stopRedisCluster, type RunningCluster } from '../__tests__/helpers/redis-cluster'
import { findOnPath, startRedis, stopRedis, type RunningRedis } from '../__tests__/helpers/redis-server'

const ROOT = join(__dirname, '..')
const STRYKER = join(ROOT, 'node_modules', '@stryker-mutator', 'core', 'bin', 'stryker.js')

function binary(name: string): string {
  const found = findOnPath(name)
  if (!found) throw new Error(`${name} was not found on PATH (Debian/Ubuntu: apt-get install -y redis-server), or set REDIS_URL and REDIS_CLUSTER_NODES`)
  return found
}

async function main(): Promise<number> {
  let redis: RunningRedis | undefined
  let cluster: RunningCluster | undefined
  // A safety net should this process die of an uncaught error between start and stop.
  process.once('exit', () => {
    for (const child of [redis?.child, ...(cluster?.children ?? [])]) if (child && child.exitCode === null) child.kill('SIGKILL')
  })
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, PROPERTY_RUNS: process.env.PROPERTY_RUNS ?? '100' }
    const [single, clustered] = await Promise.allSettled([
      env.REDIS_URL ? undefined : startRedis(binary('redis-server')),
      env.REDIS_CLUSTER_NODES ? undefined : startRedisCluster(binary('redis-server'), binary('redis-cli')),
    ])
    if (single.status === 'fulfilled') redis = single.value
    if (clustered.status === 'fulfilled') cluster = clustered.value
    if (single.status === 'rejected') throw single.reason
    if (clustered.status === 'rejected') throw clustered.reason
    if (redis) env.REDIS_URL = redis.url
    if (cluster) env.REDIS_CLUSTER_NODES = cluster.nodes
    console.log(`[mutate] redis-server ${env.REDIS_URL}, Redis Cluster ${env.REDIS_CLUSTER_NODES}, PROPERTY_RUNS=${env.PROPERTY_RUNS}`)

    // Its own process group, so that a signal reaches its worker processes too: Stryker leaves them running
    // when it is killed itself.
    const stryker = spawn(process.execPath, [STRYKER, 'run', ...process.argv.slice(2)], { cwd: ROOT, env, stdio: 'inherit', detached: true })
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        process.kill(-stryker.pid!, signal)
      } catch {
        // the group is gone already
      }
    }
    // Ctrl-C reaches this process only (Stryker's group is not the terminal's): pass it on, and any kill.
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => signalGroup(signal))
    const code = await new Promise<number>((resolve) => {
      stryker.once('error', (err) => {
        console.error(`[mutate] could not start Stryker: ${err.message}`)
        resolve(1)
      })
      stryker.once('exit', (exitCode, signal) => resolve(exitCode ?? 128 + (signal ? constants.signals[signal] : 0)))
    })
    // Whatever of Stryker's workers outlived it.
    signalGroup('SIGKILL')
    return code
  } finally {
    await Promise.all([redis && stopRedis(redis), cluster && stopRedisCluster(cluster)])
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('[mutate]', err)
    process.exit(1)
  },
)
