/**
 * Throughput comparisons, each in one app process over one store (MemoryStore, Redis or PostgreSQL),
 * measured by the load process:
 *   a/b. the protected route vs a route that only reads req.session, and vs fhirclient 2.6.3's ready();
 *   c.   smartLaunch (discovery cached) vs a route that writes one session value.
 */
import type { BenchContext } from './context'
import { compareRoutes, pairStats, type Comparison, type PairStats, type Route } from './compare'
import { FHIRCLIENT_ROUTES, OUR_ROUTES, checkSession, launchSession } from './launch'
import type { StoreKind } from './types'

export interface ProtectedComparison {
  store: StoreKind
  routes: Comparison
  vsSessionRead: PairStats
  vsFhirclient: PairStats
  /** Calls the mock EHR saw during the rounds (expected none: the hot path is local). */
  ehrCallsDuringRounds: { fhir: number; token: number }
}

export interface LaunchComparison {
  store: StoreKind
  routes: Comparison
  vsSessionWrite: PairStats
  discoveryFetchesDuringRounds: number
}

function checkRoutes(ctx: BenchContext, label: string, routes: Comparison): void {
  for (const [name, result] of Object.entries(routes)) {
    ctx.check(`${label}: every ${name} request answered as expected`, result.unexpected === 0 && result.responses > 0,
      `${result.responses} responses, ${result.unexpected} unexpected (${JSON.stringify(result.statusCodes)})`)
  }
}

function summary(routes: Comparison): string {
  return Object.entries(routes).map(([name, r]) => `${name} ${r.medianRps.toFixed(0)} req/s p99 ${r.medianP99Ms.toFixed(2)} ms ${r.medianCpuUsPerRequest.toFixed(0)} µs CPU/req`).join(' | ')
}

export async function protectedComparison(ctx: BenchContext, store: StoreKind): Promise<ProtectedComparison> {
  const label = `protected vs session-read vs fhirclient (${store})`
  ctx.log(`\n${label}`)
  const app = await ctx.startApp(`protected-${store}`, await ctx.storeSettings(store, 'protected'))
  try {
    const ours = await launchSession(app.base, ctx.ehr, OUR_ROUTES)
    await checkSession(app.base, OUR_ROUTES, ours)
    const theirs = await launchSession(app.base, ctx.ehr, FHIRCLIENT_ROUTES)
    await checkSession(app.base, FHIRCLIENT_ROUTES, theirs)
    const routes: Route[] = [
      { name: 'protected', url: `${app.base}/protected`, headers: { cookie: ours }, expectStatus: 200 },
      { name: 'session-read', url: `${app.base}/session-read`, headers: { cookie: ours }, expectStatus: 200 },
      { name: 'fhirclient', url: `${app.base}/fc/protected`, headers: { cookie: theirs }, expectStatus: 200 },
    ]
    const before = { ...ctx.ehr.stats }
    const results = await compareRoutes(ctx.load, app.handle, routes, ctx.opts, (line) => ctx.log(line))
    const calls = { fhir: ctx.ehr.stats.fhirRequests - before.fhirRequests, token: ctx.ehr.stats.codeGrants + ctx.ehr.stats.refreshGrants - before.codeGrants - before.refreshGrants }
    checkRoutes(ctx, label, results)
    ctx.check(`${label}: no FHIR or token call during the rounds`, calls.fhir === 0 && calls.token === 0, JSON.stringify(calls))
    ctx.log(`  medians: ${summary(results)}`)
    return {
      store,
      routes: results,
      vsSessionRead: pairStats(results, 'protected', 'session-read'),
      vsFhirclient: pairStats(results, 'protected', 'fhirclient'),
      ehrCallsDuringRounds: calls,
    }
  } finally {
    await app.stop()
  }
}

export async function launchComparison(ctx: BenchContext, store: StoreKind): Promise<LaunchComparison> {
  const label = `smartLaunch vs session-write (${store})`
  ctx.log(`\n${label}`)
  const app = await ctx.startApp(`launch-${store}`, await ctx.storeSettings(store, 'launch'))
  try {
    // One whole launch first: discovery is cached from then on.
    await checkSession(app.base, OUR_ROUTES, await launchSession(app.base, ctx.ehr, OUR_ROUTES))
    // Each request comes without a cookie, like a browser's first visit: both routes create a session.
    const launchUrl = new URL(ctx.ehr.launchUrl(`${app.base}/launch`, { patient: 'patient-1' }))
    const routes: Route[] = [
      { name: 'launch', url: launchUrl.href, expectStatus: 302 },
      { name: 'session-write', url: `${app.base}/session-write`, expectStatus: 200 },
    ]
    const before = ctx.ehr.stats.discoveryFetches
    const results = await compareRoutes(ctx.load, app.handle, routes, ctx.opts, (line) => ctx.log(line))
    const discoveries = ctx.ehr.stats.discoveryFetches - before
    checkRoutes(ctx, label, results)
    ctx.check(`${label}: discovery stayed cached during the rounds`, discoveries === 0, `${discoveries} discovery fetches`)
    ctx.log(`  medians: ${summary(results)}`)
    return { store, routes: results, vsSessionWrite: pairStats(results, 'launch', 'session-write'), discoveryFetchesDuringRounds: discoveries }
  } finally {
    await app.stop()
  }
}
