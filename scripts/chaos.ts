// npm run chaos — the race test of __tests__/chaos/chaos.test.ts run longer: two app processes on one Redis,
// two mock EHRs with the same patient ids (2-second access tokens), simulated browsers × tabs with lost and
// reordered callback answers, concurrent launches, relaunches, logouts, refreshes and an attacker planting its
// session cookie (__tests__/helpers/chaos.ts). Prints each round's counts and a table; exits 1 on any
// wrong-patient answer, anything leaked to the attacker, a 500 or a request left without an answer.
//
//   CHAOS_SECONDS=60     seconds per round (default 60)
//   CHAOS_ROUNDS=3       rounds, each with its own seed (default 3)
//   CHAOS_SEED=<n>       replay: round i uses seed n + i (default: random seeds, printed)
//   CHAOS_BROWSERS=4     browsers at the start of a round (default 4; the attacker's victims add up to 8)
//   CHAOS_VERBOSE=1      also print the first refusals of tabs whose launch should have been live, with what
//                        Redis holds for the browser's session id then
//   CHAOS_TRACE=40       steps of the browser shown with each finding
//   REDIS_URL            a Redis to use (default: a redis-server from PATH, started for the run)
import { randomBytes, randomInt } from 'node:crypto'
import { createClient } from 'redis'
import { createMockEhr, type MockEhr } from '../lib/testing'
import { processDelta, runChaos, summarize, summarizeProcesses, total, type ChaosReport, type ProcessDelta } from '../__tests__/helpers/chaos'
import { AppProcesses, type AppInstance } from '../__tests__/helpers/processes'
import { findOnPath, startRedis, stopRedis, type RunningRedis } from '../__tests__/helpers/redis-server'

const ACCESS_TOKEN_TTL_SECONDS = 2

function positive(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${raw}`)
  return value
}

const sumOf = (map: Record<string, number>): number => Object.values(map).reduce((a, b) => a + b, 0)

function table(rounds: Array<{ report: ChaosReport; processes: ProcessDelta }>): string {
  const head = ['seed', 's', 'launches', 'completed', 'calls', '2xx', 'refusals', 'wrong', 'leaked', '500s', 'no answer', 'lost cb', 'held cb', 'attacks', 'refresh', 'refused refresh']
  const row = (seed: string, seconds: number, c: ChaosReport['counts'], p: ProcessDelta) => [
    seed, seconds.toFixed(0), c.launchesStarted, c.launchesCompleted, c.calls, c.ok, sumOf(c.refusals), c.wrong, c.leaked, c.serverErrors,
    c.networkErrors, c.faults.callbacksDropped, c.faults.callbacksHeld, c.attacks, p.refreshSent, p.refreshRefused,
  ].map(String)
  const rows = rounds.map(({ report, processes }) => row(String(report.seed), report.elapsedMs / 1000, report.counts, processes))
  const all = rounds.reduce<ProcessDelta>((acc, { processes }) => ({
    refreshSent: acc.refreshSent + processes.refreshSent, refreshRefused: acc.refreshRefused + processes.refreshRefused, serverErrors: {},
  }), { refreshSent: 0, refreshRefused: 0, serverErrors: {} })
  rows.push(row('total', rounds.reduce((s, { report }) => s + report.elapsedMs / 1000, 0), total(rounds.map(({ report }) => report)), all))
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]) => cells.map((cell, i) => cell.padStart(widths[i])).join(' | ')
  return [line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n')
}

async function main(): Promise<number> {
  const seconds = positive('CHAOS_SECONDS', 60)
  const roundCount = positive('CHAOS_ROUNDS', 3)
  const browsers = positive('CHAOS_BROWSERS', 4)
  const firstSeed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : undefined
  if (firstSeed !== undefined && !Number.isInteger(firstSeed)) throw new Error(`CHAOS_SEED must be an integer, got ${process.env.CHAOS_SEED}`)
  const seeds = Array.from({ length: roundCount }, (_, i) => (firstSeed !== undefined ? firstSeed + i : randomInt(2 ** 31 - 1)))

  let ownRedis: RunningRedis | undefined
  let redisUrl = process.env.REDIS_URL
  if (!redisUrl) {
    const binary = findOnPath('redis-server')
    if (!binary) throw new Error('Set REDIS_URL or install redis-server (apt-get install -y redis-server)')
    ownRedis = await startRedis(binary)
    redisUrl = ownRedis.url
  }
  const ehrs: MockEhr[] = await Promise.all([0, 1].map(() => createMockEhr({ accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS })))
  const apps = new AppProcesses()
  const prefix = `chaos:${randomBytes(6).toString('hex')}:`
  const store = process.env.CHAOS_VERBOSE ? await inspector(redisUrl, prefix) : undefined
  try {
    const instances: AppInstance[] = await apps.start(2, { REDIS_URL: redisUrl, KEY_PREFIX: prefix, ISS: ehrs.map((ehr) => ehr.iss), ENABLE_MULTI_LAUNCH: true }, { names: ['A', 'B'] })
    console.log(`chaos: ${roundCount} × ${seconds} s, seeds ${seeds.join(', ')} (replay: CHAOS_SEED=${seeds[0]} CHAOS_ROUNDS=${roundCount} CHAOS_SECONDS=${seconds} npm run chaos)`)
    console.log(`       app processes ${instances.map((app) => `${app.name} (pid ${app.pid})`).join(' and ')} on Redis ${redisUrl}${ownRedis ? ' (started for the run)' : ''}; ` +
      `EHRs ${ehrs.map((ehr) => ehr.iss).join(' and ')}; access tokens ${ACCESS_TOKEN_TTL_SECONDS} s\n`)
    const rounds: Array<{ report: ChaosReport; processes: ProcessDelta }> = []
    for (const seed of seeds) {
      const before = await Promise.all(instances.map((app) => app.report()))
      const report = await runChaos({ seed, durationMs: seconds * 1000, apps: instances, ehrs: ehrs.map((ehr, i) => ({ name: `ehr${'AB'[i]}`, ehr })), browsers, traceLines: positive('CHAOS_TRACE', 40), inspect: store?.inspect })
      const processes = processDelta(before, await Promise.all(instances.map((app) => app.report())))
      rounds.push({ report, processes })
      console.log(`${summarize(report)}\n${summarizeProcesses(processes)}`)
      for (const incident of report.incidents.slice(0, 10)) console.log(`\n${incident}`)
      if (process.env.CHAOS_VERBOSE) for (const note of report.notes) console.log(`\nnote: ${note}`)
      console.log('')
    }
    console.log(table(rounds))
    const sum = total(rounds.map(({ report }) => report))
    const failed = sum.wrong + sum.leaked + sum.serverErrors + sum.networkErrors > 0
    console.log(`\nchaos: ${failed ? 'FAILED' : 'passed'}: ${sum.wrong} wrong-patient answers, ${sum.leaked} leaked, ${sum.serverErrors} 500s, ${sum.networkErrors} unanswered requests; seeds ${seeds.join(', ')}`)
    if (failed) console.log(`\nApp processes:\n${apps.logs()}`)
    return failed ? 1 : 0
  } finally {
    await store?.close()
    await apps.stopAll()
    await Promise.all(ehrs.map((ehr) => ehr.close()))
    if (ownRedis) await stopRedis(ownRedis)
    else await removeKeys(redisUrl, prefix)
  }
}

/** What Redis holds for a session: the express-session record's SMART mark, and the SMART records along its forwards. */
async function inspector(url: string, prefix: string): Promise<{ inspect: (connectSid: string) => Promise<string>; close: () => Promise<void> }> {
  const redis = createClient({ url })
  await redis.connect()
  const short = (value: unknown) => String(value).slice(0, 6)
  const inspect = async (connectSid: string) => {
    const decoded = decodeURIComponent(connectSid)
    let sid = (decoded.startsWith('s:') ? decoded.slice(2) : decoded).split('.')[0]
    const lines: string[] = []
    const session = await redis.get(`${prefix}${sid}`)
    lines.push(`express-session ${short(sid)}: ${session === null ? 'absent' : JSON.stringify((JSON.parse(session) as { smartOnFhir?: unknown }).smartOnFhir)}`)
    for (let hop = 0; hop < 12; hop++) {
      const raw = await redis.get(`${prefix}smart:session:{${sid}}`)
      if (raw === null) {
        lines.push(`smart ${short(sid)}: absent`)
        break
      }
      const record = (JSON.parse(raw) as { smart: never }).smart as { kind: string; to?: string; at?: number; held?: string[]; browser?: string; launches?: Record<string, { selector: string; startedAt?: number; completedAt: number }>; ended?: Record<string, { reason: string; at: number }> }
      if (record.kind !== 'session') {
        lines.push(`smart ${short(sid)}: ${record.kind} to ${short(record.to)} at ${record.at} held [${(record.held ?? []).map(short).join(' ')}]`)
        sid = record.to!
        continue
      }
      const launches = Object.entries(record.launches ?? {}).map(([id, l]) => `${short(id)}=${l.selector}`).join(' ')
      const ended = Object.entries(record.ended ?? {}).map(([selector, e]) => `${selector}:${e.reason}@${e.at}`).join(' ')
      lines.push(`smart ${short(sid)}: session browser ${short(record.browser)} launches [${launches}] ended [${ended}]`)
      break
    }
    return lines.join('\n')
  }
  return { inspect, close: () => redis.close() }
}

async function removeKeys(url: string, prefix: string): Promise<void> {
  const redis = createClient({ url })
  await redis.connect()
  for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) if (keys.length) await redis.del(keys)
  await redis.close()
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(err)
  process.exit(1)
})
