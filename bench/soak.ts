/**
 * Soak: two app processes (the tests' app-process.ts) on one Redis, the mock EHR here with 20-second access
 * tokens, and many simulated browsers (soak-browser.ts) launching, calling the API on both instances,
 * refreshing, closing patients and launching again — every answer checked against the patient its tab
 * launched. Prints requests, errors, wrong-patient answers, latency, refresh grants per token expiry and each
 * instance's memory growth; exits 1 when an error or a wrong-patient answer was seen. Not part of CI.
 *
 *   npm run soak [-- --duration 100 --browsers 50]     (REDIS_URL, or a redis-server of its own)
 *   npm run soak -- --cluster                          (REDIS_CLUSTER_NODES, or a three-master cluster of its own)
 */
import { randomBytes } from 'node:crypto'
import { createClient, createCluster } from 'redis'
import { createMockEhr } from '../lib/testing'
import { AppProcesses, type AppInstance } from '../__tests__/helpers/processes'
import type { ProcessReport } from '../__tests__/helpers/app-process'
import { startRedisCluster, stopRedisCluster, type RunningCluster } from '../__tests__/helpers/redis-cluster'
import { findOnPath, startRedis, stopRedis, type RunningRedis } from '../__tests__/helpers/redis-server'
import { Browser, Tally } from './soak-browser'

const ACCESS_TOKEN_TTL_SECONDS = 20
/** The library refreshes this long before expiry: refreshLeewaySeconds, at most half the token's lifetime. */
const REFRESH_LEAD_SECONDS = Math.min(60, ACCESS_TOKEN_TTL_SECONDS / 2)
const SAMPLE_EVERY_MS = 20_000

function options(argv: string[]): { durationS: number; browsers: number; cluster: boolean } {
  const value = (name: string, fallback: number) => {
    const at = argv.indexOf(name)
    if (at < 0) return fallback
    const number = Number(argv[at + 1])
    if (!Number.isFinite(number) || number <= 0) throw new Error(`${name} needs a positive number`)
    return number
  }
  const known = new Set(['--duration', '--browsers', '--cluster'])
  const unknown = argv.filter((arg, i) => arg.startsWith('--') && !known.has(arg) && !known.has(argv[i - 1]))
  if (unknown.length > 0) throw new Error(`unknown option ${unknown[0]} (known: ${[...known].join(', ')})`)
  return { durationS: value('--duration', 100), browsers: value('--browsers', 50), cluster: argv.includes('--cluster') }
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}
const ms = (value: number) => `${value.toFixed(1)} ms`
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`
const signedMb = (bytes: number) => `${bytes >= 0 ? '+' : ''}${mb(bytes)}`

/**
 * Refresh grants per token expiry, per launch: a grant sent sooner than the refresh point of the token before
 * it (issued after the callback was sent, or after the previous grant was sent) is a second grant for the
 * same expiry. Both times are lower bounds of the token's issue, so no grant is taken for early wrongly.
 */
function grantsPerExpiry(tally: Tally, reports: ProcessReport[]) {
  const byLabel = new Map<string, Array<{ at: number; status: number }>>()
  for (const report of reports) for (const [label, grants] of Object.entries(report.refreshGrants.byLabel)) byLabel.set(label, [...(byLabel.get(label) ?? []), ...grants])
  let grants = 0, refused = 0, duplicates = 0, launchesRefreshed = 0, maxPerLaunch = 0
  let shortestGap = Infinity
  for (const launch of tally.launches) {
    const own = (byLabel.get(launch.label) ?? []).sort((a, b) => a.at - b.at)
    if (own.length > 0) launchesRefreshed++
    let issuedAt = launch.callbackSentAt
    let expiries = 0
    for (const grant of own) {
      grants++
      if (grant.status !== 200) refused++
      const gap = grant.at - issuedAt
      shortestGap = Math.min(shortestGap, gap)
      if (gap < (ACCESS_TOKEN_TTL_SECONDS - REFRESH_LEAD_SECONDS) * 1000) duplicates++
      else expiries++
      issuedAt = grant.at
    }
    if (expiries > 0) maxPerLaunch = Math.max(maxPerLaunch, own.length / expiries)
  }
  return { grants, refused, duplicates, launchesRefreshed, maxPerLaunch, shortestGap, perExpiry: grants / Math.max(1, grants - duplicates) }
}

async function main(): Promise<number> {
  const { durationS, browsers, cluster } = options(process.argv.slice(2))
  let ownRedis: RunningRedis | undefined
  let ownCluster: RunningCluster | undefined
  let redisUrl = process.env.REDIS_URL
  let clusterNodes = process.env.REDIS_CLUSTER_NODES
  const binary = findOnPath('redis-server')
  if (cluster && !clusterNodes) {
    const cli = findOnPath('redis-cli')
    if (!binary || !cli) throw new Error('Set REDIS_CLUSTER_NODES or install redis-server and redis-cli (apt-get install -y redis-server)')
    ownCluster = await startRedisCluster(binary, cli)
    clusterNodes = ownCluster.nodes
  } else if (!cluster && !redisUrl) {
    if (!binary) throw new Error('Set REDIS_URL or install redis-server (apt-get install -y redis-server)')
    ownRedis = await startRedis(binary)
    redisUrl = ownRedis.url
  }
  const redisEnv = cluster ? { REDIS_CLUSTER_NODES: clusterNodes! } : { REDIS_URL: redisUrl! }
  const ehr = await createMockEhr({ accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS })
  const apps = new AppProcesses()
  const prefix = `soak:${randomBytes(6).toString('hex')}:`
  try {
    const instances = await apps.start(2, { ...redisEnv, KEY_PREFIX: prefix, ISS: ehr.iss, ENABLE_MULTI_LAUNCH: true }, { nodeArgs: ['--expose-gc'], names: ['A', 'B'] })
    console.log(`soak: ${browsers} browsers, ${durationS} s, app instances ${instances.map((app) => `${app.name} (pid ${app.pid})`).join(' and ')}, ` +
      `${cluster ? `Redis Cluster ${clusterNodes}` : `Redis ${redisUrl}`}${ownRedis || ownCluster ? ' (started for the soak)' : ''}, access tokens ${ACCESS_TOKEN_TTL_SECONDS} s (refreshed ${REFRESH_LEAD_SECONDS} s before expiry)`)
    const tally = new Tally()
    const started = Date.now()
    const until = started + durationS * 1000
    const running = Array.from({ length: browsers }, (_, id) => new Browser(id + 1, instances, ehr, tally).run(until))
    // The baseline once every browser has launched and the processes' caches and pools are warm.
    const warmUpMs = Math.min(20_000, (durationS * 1000) / 4)
    await new Promise((resolve) => setTimeout(resolve, warmUpMs))
    // null: the instance does not answer (it died: reported as an error).
    const measure = () => Promise.all(instances.map((app) => app.report().catch(() => null)))
    // Memory after GC: after the warm-up, every SAMPLE_EVERY_MS under load, and at the end (the trend, not only two points).
    const samples = [await measure()]
    let finished = false
    const done = Promise.all(running).then(() => (finished = true))
    while (!finished) {
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS))])
      if (!finished) samples.push(await measure())
    }
    samples.push(await measure())
    const elapsedS = (Date.now() - started) / 1000
    return report({ tally, instances, samples, elapsedS, ehrGrants: ehr.stats.refreshGrants, warmUpS: warmUpMs / 1000, apps })
  } finally {
    await apps.stopAll()
    await ehr.close()
    if (ownRedis) await stopRedis(ownRedis)
    else if (ownCluster) await stopRedisCluster(ownCluster)
    else if (cluster) await removeClusterKeys(clusterNodes!, prefix)
    else await removeKeys(redisUrl!, prefix)
  }
}

async function removeClusterKeys(nodes: string, prefix: string): Promise<void> {
  const redis = createCluster({ rootNodes: nodes.split(',').map((node) => ({ url: `redis://${node.trim()}` })) })
  await redis.connect()
  for (const master of redis.masters) {
    const node = await redis.nodeClient(master)
    // One key at a time: a cluster refuses a DEL of keys in several slots.
    for await (const keys of node.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) for (const key of keys) await redis.unlink(key)
  }
  await redis.close()
}

async function removeKeys(url: string, prefix: string): Promise<void> {
  const redis = createClient({ url })
  await redis.connect()
  for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) if (keys.length) await redis.del(keys)
  await redis.close()
}

function report(run: {
  tally: Tally; instances: AppInstance[]; samples: Array<Array<ProcessReport | null>>; elapsedS: number; ehrGrants: number; warmUpS: number; apps: AppProcesses
}): number {
  const { tally, instances, samples } = run
  const final = samples.at(-1)!.filter((r): r is ProcessReport => r !== null)
  const all = [...tally.latencyMs.api, ...tally.latencyMs.other]
  const grants = grantsPerExpiry(tally, final)
  const sent = samples.at(-1)!.map((r) => r?.refreshGrants.sent ?? 'unknown')
  const died = instances.filter((app, i) => app.ended() !== null || samples.some((sample) => sample[i] === null))
  for (const app of died) tally.errors.push(`${app.name} ended or stopped answering during the soak`)
  const { actions } = tally
  const lines = [
    `requests:          ${tally.requests} to the app in ${run.elapsedS.toFixed(0)} s (${(tally.requests / run.elapsedS).toFixed(0)}/s; the EHR's authorization pages not counted)`,
    `errors:            ${tally.errors.length} (unexpected non-2xx or failed requests)`,
    `wrong patient:     ${tally.wrongPatient.length}`,
    `expected refusals: ${tally.expectedRefusals} (a closed patient's value: 401/403)`,
    `latency:           p50 ${ms(percentile(all, 50))}, p99 ${ms(percentile(all, 99))} (all); API calls p50 ${ms(percentile(tally.latencyMs.api, 50))}, p99 ${ms(percentile(tally.latencyMs.api, 99))}`,
    `actions:           ${actions.launches} launches (${actions.twoTabLaunches} two-tab callbacks at once, ${actions.relaunches} relaunches), ${actions.apiCalls} API calls, ${actions.logouts} patients closed, ${actions.logoutsAll} full logouts`,
    `refresh grants:    ${run.ehrGrants} at the EHR; sent ${sent.join(' + ')} (${instances.map((app) => app.name).join(' + ')}); ${grants.refused} refused; ${grants.launchesRefreshed} launches refreshed`,
    `per token expiry:  ${grants.perExpiry.toFixed(2)} grants per launch and expiry (max ${grants.maxPerLaunch.toFixed(2)}; ${grants.duplicates} early grants; shortest gap ${(grants.shortestGap / 1000).toFixed(1)} s, refresh point ${ACCESS_TOKEN_TTL_SECONDS - REFRESH_LEAD_SECONDS} s)`,
    `memory:            after GC${final.every((r) => r.gc) ? '' : ' (NOT: --expose-gc missing)'}, from ${run.warmUpS.toFixed(0)} s (after the warm-up) to the end, every ${SAMPLE_EVERY_MS / 1000} s`,
    ...instances.flatMap((app, i) => {
      if (died.includes(app)) return [`  ${app.name}: ended or stopped answering`]
      const series = samples.map((sample) => sample[i]!.memory)
      const growth = (field: keyof NodeJS.MemoryUsage) => `${series.map((m) => (m[field] / 2 ** 20).toFixed(1)).join(' -> ')} MB (${signedMb(series.at(-1)![field] - series[0][field])})`
      return [`  ${app.name} rss:         ${growth('rss')}`, `  ${app.name} heap used:   ${growth('heapUsed')}`, `  ${app.name} heap total:  ${growth('heapTotal')}`, `  ${app.name} external:    ${growth('external')}`]
    }),
  ]
  console.log(lines.join('\n'))
  for (const message of tally.errors.slice(0, 10)) console.log(`  error: ${message}`)
  for (const message of tally.wrongPatient.slice(0, 10)) console.log(`  wrong patient: ${message}`)
  const failed = tally.errors.length > 0 || tally.wrongPatient.length > 0
  if (failed) console.log(`\nApp processes:\n${run.apps.logs()}`)
  return failed ? 1 : 0
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(err)
  process.exit(1)
})
