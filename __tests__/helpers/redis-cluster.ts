// Starting and stopping a throwaway three-master Redis Cluster on loopback for the test run. Used by
// global-setup.ts and global-teardown.ts, beside the single redis-server of redis-server.ts.
import { execFile, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort, RedisStartError, spawnRedisNode, stopProcess } from './redis-server'
import { globalSlot } from './global-slot'

const run = promisify(execFile)

/** How long we wait, after `redis-cli --cluster create`, for every node to report `cluster_state:ok`. */
export const CLUSTER_READY_TIMEOUT_MS = 15_000

const MASTERS = 3

export interface RunningCluster {
  /** What REDIS_CLUSTER_NODES holds: `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`. */
  nodes: string
  ports: number[]
  children: ChildProcess[]
  /** The one temporary directory of every node (cluster config files and logs). */
  dir: string
}

/** Where global-setup leaves the running Redis Cluster for global-teardown. */
const slot = globalSlot<RunningCluster>('__expressSmartOnFhirTestRedisCluster__')
export const rememberCluster = (cluster: RunningCluster | undefined): void => slot.remember(cluster)
export const recallCluster = (): RunningCluster | undefined => slot.recall()

/** `count` ports of 127.0.0.1 that were free a moment ago, all different. */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}

/**
 * One cluster-enabled redis-server. Its cluster bus port is chosen free too (`--cluster-port`): the
 * default, port + 10000, may be taken or lie beyond 65535 for a port of the ephemeral range.
 */
async function startNode(binary: string, dir: string): Promise<{ port: number; child: ChildProcess }> {
  let lastError: unknown
  for (let attempt = 1; attempt <= 3; attempt++) {
    const [port, busPort] = await freePorts(2)
    const extraArgs = [
      '--cluster-enabled', 'yes',
      '--cluster-port', String(busPort),
      '--cluster-config-file', join(dir, `nodes-${port}.conf`),
    ]
    try {
      return { port, child: await spawnRedisNode(binary, { port, dir, name: `redis-${port}`, extraArgs }) }
    } catch (err) {
      lastError = err
      if (!(err instanceof RedisStartError && err.portTaken)) break
    }
  }
  throw lastError
}

async function clusterStates(cli: string, ports: number[]): Promise<string[]> {
  return Promise.all(
    ports.map(async (port) => {
      const { stdout } = await run(cli, ['-h', '127.0.0.1', '-p', String(port), 'CLUSTER', 'INFO'], { timeout: 2000 })
      return /cluster_state:(\w+)/.exec(stdout)?.[1] ?? 'unknown'
    }),
  )
}

/**
 * Starts three cluster-enabled redis-servers on free ports of 127.0.0.1 sharing one temporary
 * directory, joins them with `redis-cli --cluster create … --cluster-replicas 0` and waits until every
 * node reports `cluster_state:ok`. On any failure the nodes are stopped and the directory removed.
 */
export async function startRedisCluster(binary: string, cli: string): Promise<RunningCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'esof-redis-cluster-'))
  const started = await Promise.allSettled(Array.from({ length: MASTERS }, () => startNode(binary, dir)))
  const nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  const cluster: RunningCluster = {
    nodes: nodes.map(({ port }) => `127.0.0.1:${port}`).join(','),
    ports: nodes.map(({ port }) => port),
    children: nodes.map(({ child }) => child),
    dir,
  }
  try {
    const failed = started.find((s) => s.status === 'rejected')
    if (failed) throw failed.reason
    const addresses = cluster.nodes.split(',')
    try {
      await run(cli, ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 })
    } catch (err) {
      const { stdout = '', stderr = '', message } = err as { stdout?: string; stderr?: string; message: string }
      throw new Error(`redis-cli --cluster create ${addresses.join(' ')} failed: ${message}\n${stdout}${stderr}`)
    }
    const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS
    let states = await clusterStates(cli, cluster.ports)
    while (states.some((state) => state !== 'ok')) {
      if (Date.now() >= deadline) {
        throw new Error(`Redis Cluster ${cluster.nodes} not ready within ${CLUSTER_READY_TIMEOUT_MS} ms: cluster_state ${states.join(', ')}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
      states = await clusterStates(cli, cluster.ports)
    }
    return cluster
  } catch (err) {
    await stopRedisCluster(cluster)
    throw err
  }
}

/** Stops every node of a cluster started by startRedisCluster() and removes its directory. */
export async function stopRedisCluster(cluster: RunningCluster): Promise<void> {
  await Promise.all(cluster.children.map((child) => stopProcess(child)))
  rmSync(cluster.dir, { recursive: true, force: true })
}
