// The randomized race test (SECURITY S34, S35): two app processes on one Redis (helpers/app-process.ts, multi-launch,
// both EHRs known), two mock EHRs with the same patient ids, several browsers × tabs driven by helpers/chaos.ts —
// lost and reordered callback answers, concurrent launches, relaunches, logouts, refreshes (2-second access
// tokens, and revocations), an attacker planting its session cookie — for a few fixed seeds of a few seconds each.
// Every answer is checked against the EHR and patient its tab launched: no wrong-patient answer, nothing leaked
// to the attacker, no 500. `npm run chaos` runs the same driver longer with random seeds.
import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { processDelta, refusalCount, runChaos, summarize, summarizeProcesses, type ChaosReport } from '../helpers/chaos'
import { useAppProcesses, type AppEnv, type AppInstance } from '../helpers/processes'

jest.setTimeout(120_000)

const SEEDS = [1, 2, 3]
const SECONDS_PER_SEED = 8
/** Short-lived access tokens: the library refreshes at half their lifetime, so launches refresh every second or so. */
const ACCESS_TOKEN_TTL_SECONDS = 2

const apps = useAppProcesses()
let ehrs: MockEhr[] = []
let redisUrl: string
let env: AppEnv
let instances: AppInstance[]

beforeAll(async () => {
  const url = process.env.REDIS_URL
  if (!url) throw new Error('REDIS_URL is not set: the chaos test needs a redis-server (see __tests__/helpers/global-setup.ts)')
  redisUrl = url
  ehrs = await Promise.all([createMockEhr({ accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS }), createMockEhr({ accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS })])
  env = { REDIS_URL: url, KEY_PREFIX: `test:chaos:${randomBytes(6).toString('hex')}:`, ISS: ehrs.map((ehr) => ehr.iss), ENABLE_MULTI_LAUNCH: true }
  instances = await apps.start(2, env, { names: ['A', 'B'] })
})

afterAll(async () => {
  await Promise.all(ehrs.map((ehr) => ehr.close()))
  if (!redisUrl) return
  const redis = createClient({ url: redisUrl })
  await redis.connect()
  for await (const keys of redis.scanIterator({ MATCH: `${env.KEY_PREFIX}*`, COUNT: 500 })) if (keys.length) await redis.del(keys)
  await redis.close()
})

describe('chaos: browsers × tabs × two EHRs × two processes, with lost and reordered answers', () => {
  it.each(SEEDS)('S35 seed %i: no answer for another tab\'s patient, nothing to the attacker, no 500', (seed) => apps.explain(async () => {
    const before = await Promise.all(instances.map((app) => app.report()))
    const report: ChaosReport = await runChaos({
      seed,
      durationMs: SECONDS_PER_SEED * 1000,
      apps: instances,
      ehrs: [{ name: 'ehrA', ehr: ehrs[0] }, { name: 'ehrB', ehr: ehrs[1] }],
    })
    const processes = processDelta(before, await Promise.all(instances.map((app) => app.report())))
    console.log(`chaos ${summarize(report)}\n${summarizeProcesses(processes)}${report.incidents.length ? `\n\n${report.incidents.slice(0, 5).join('\n\n')}` : ''}`)
    const { counts } = report
    expect({ wrong: counts.wrong, leaked: counts.leaked, serverErrors: counts.serverErrors, networkErrors: counts.networkErrors, incidents: report.incidents.slice(0, 3) })
      .toEqual({ wrong: 0, leaked: 0, serverErrors: 0, networkErrors: 0, incidents: [] })
    // Not vacuous: launches completed, answers checked, refusals met, each fault injected, attacks made.
    expect(counts.launchesCompleted).toBeGreaterThanOrEqual(20)
    expect(counts.ok).toBeGreaterThanOrEqual(100)
    expect(refusalCount(counts)).toBeGreaterThan(0)
    expect(counts.faults.callbacksDropped).toBeGreaterThan(0)
    expect(counts.faults.callbacksHeld).toBeGreaterThan(0)
    expect(counts.faults.heldAppliedAfterAnother).toBeGreaterThan(0)
    expect(counts.relaunches + counts.bursts).toBeGreaterThan(0)
    expect(counts.logouts).toBeGreaterThan(0)
    expect(counts.attacksLaunched).toBeGreaterThan(0)
  }))
})
