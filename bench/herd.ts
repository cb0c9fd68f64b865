/**
 * d. The refresh herd: one launched session, two app processes on one shared store (Redis, then PostgreSQL),
 * N requests of that session at once, split over both processes. Twice per store:
 *   expired  the access token has just expired as the app sees it (both processes' clocks, the library's
 *            `now` option, move past its expiry): requireSmartContext's ready() refreshes before use;
 *   revoked  the mock EHR invalidates every access token (ehr.expireAccessTokens()) and the route reads
 *            FHIR: the 401 makes the request refresh and retry.
 * Either way the EHR should see exactly one refresh grant, and every request should answer 200.
 */
import type { BenchContext } from './context'
import { OUR_ROUTES, checkSession, launchSession } from './launch'
import { percentile } from './stats'
import { STORE_NAMES, type HerdResult, type StoreKind } from './types'

export interface HerdOutcome {
  requests: number
  refresh_grants: number
  ok: number
  p99Ms: number
  maxMs: number
  statusCodes: Record<string, number>
  errors: string[]
}

export interface HerdResults {
  store: SharedStore
  expired: HerdOutcome
  revoked: HerdOutcome & { fhirRequests: number }
}

/** The stores two app processes can share. */
export type SharedStore = Exclude<StoreKind, 'memory'>

/** The mock EHR's access tokens live 3600 s; past that (and the 60 s refresh leeway) ready() must refresh. */
const CLOCK_JUMP_SECONDS = 3600

export async function refreshHerd(ctx: BenchContext, store: SharedStore): Promise<HerdResults> {
  ctx.log(`\nrefresh herd: ${ctx.opts.herdRequests} concurrent requests of one session over two app processes on one ${STORE_NAMES[store]}`)
  const settings = { ...(await ctx.storeSettings(store, 'herd')), adjustableClock: true }
  const apps = await Promise.all([ctx.startApp(`herd-${store}-a`, settings), ctx.startApp(`herd-${store}-b`, settings)])
  try {
    const cookie = await launchSession(apps[0].base, ctx.ehr, OUR_ROUTES)
    for (const app of apps) await checkSession(app.base, OUR_ROUTES, cookie)

    async function herd(name: string, path: string): Promise<HerdOutcome> {
      const grantsBefore = ctx.ehr.stats.refreshGrants
      const result = await ctx.load.call<HerdResult>('herd', { urls: apps.map((app) => `${app.base}${path}`), cookie, total: ctx.opts.herdRequests })
      const outcome: HerdOutcome = {
        requests: ctx.opts.herdRequests,
        refresh_grants: ctx.ehr.stats.refreshGrants - grantsBefore,
        ok: result.ok,
        p99Ms: percentile(result.latenciesMs, 99),
        maxMs: Math.max(...result.latenciesMs),
        statusCodes: result.statusCodes,
        errors: result.errors.slice(0, 5),
      }
      ctx.check(`refresh herd (${store}, ${name}): exactly one refresh grant`, outcome.refresh_grants === 1, `${outcome.refresh_grants} refresh grants`)
      ctx.check(`refresh herd (${store}, ${name}): every request answered 200`, outcome.ok === outcome.requests,
        `${outcome.ok}/${outcome.requests} 200s ${JSON.stringify(outcome.statusCodes)}${outcome.errors.length ? `, errors: ${outcome.errors.join('; ')}` : ''}`)
      ctx.log(`  ${name}: ${outcome.refresh_grants} refresh grant(s), ${outcome.ok}/${outcome.requests} ok, p99 ${outcome.p99Ms.toFixed(1)} ms, max ${outcome.maxMs.toFixed(1)} ms`)
      return outcome
    }

    for (const app of apps) await app.handle.call('advanceClock', { seconds: CLOCK_JUMP_SECONDS })
    const expired = await herd('expired', '/protected')

    ctx.ehr.expireAccessTokens()
    const fhirBefore = ctx.ehr.stats.fhirRequests
    const revoked = await herd('revoked', '/fhir')
    return { store, expired, revoked: { ...revoked, fhirRequests: ctx.ehr.stats.fhirRequests - fhirBefore } }
  } finally {
    for (const app of apps) await app.stop()
  }
}
