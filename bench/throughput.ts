/**
 * Throughput comparisons, each in one app process over one store (MemoryStore, Redis, Redis Cluster or
 * PostgreSQL), measured by the load process:
 *   protected  requireSmartContext vs a route that only reads req.session (the floor), and vs fhirclient 2.6.3's ready();
 *   launch     smartLaunch (discovery cached) vs a route that writes one session value;
 *   fhir       one FHIR read through req.smart.request() vs the same fetch() with a fixed token.
 */
import type { BenchContext, RunningApp } from './context'
import { compareRoutes, pairStats, type Comparison, type PairStats, type Route } from './compare'
import { FHIRCLIENT_ROUTES, OUR_ROUTES, checkSession, launchSession } from './launch'
import { STORE_NAMES, type StoreKind } from './types'

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

export interface FhirComparison {
  store: StoreKind
  routes: Comparison
  vsFetch: PairStats
  /** What the mock EHR saw, warm-up included: one FHIR read per response, no token grant. */
  ehrCalls: { fhir: number; token: number; responses: number }
}

function checkRoutes(ctx: BenchContext, label: string, routes: Comparison): void {
  for (const [name, result] of Object.entries(routes)) {
    ctx.check(`${label}: every ${name} request answered as expected`, result.unexpected === 0 && result.responses > 0,
      `${result.responses} responses, ${result.unexpected} unexpected (${JSON.stringify(result.statusCodes)})`)
  }
}

function summary(routes: Comparison): string {
  const perRoute = Object.entries(routes).map(([name, r]) => `${name} ${r.medianCpuUsPerRequest.toFixed(0)} µs CPU/req ${r.medianRps.toFixed(0)} req/s p99 ${r.medianP99Ms.toFixed(2)} ms`).join(' | ')
  const calls = Object.entries(routes).map(([name, r]) => `${name} ${Object.entries(r.callsPerRequest).map(([key, n]) => `${key} ${n}`).join(', ') || 'none'}`).join(' | ')
  return `${perRoute}\n  store calls per request: ${calls}`
}

function tokenCalls(ctx: BenchContext): number {
  return ctx.ehr.stats.codeGrants + ctx.ehr.stats.refreshGrants
}

async function started(ctx: BenchContext, label: string, name: string, store: StoreKind): Promise<RunningApp> {
  ctx.log(`\n${label}`)
  return ctx.startApp(`${name}-${store}`, await ctx.storeSettings(store, name))
}

export async function protectedComparison(ctx: BenchContext, store: StoreKind): Promise<ProtectedComparison> {
  const label = `protected vs session-read vs fhirclient (${STORE_NAMES[store]})`
  const app = await started(ctx, label, 'protected', store)
  let results: Comparison | null = null
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
    const before = { fhir: ctx.ehr.stats.fhirRequests, token: tokenCalls(ctx) }
    results = await compareRoutes(ctx.load, app.handle, routes, ctx.opts, (line) => ctx.log(line))
    const calls = { fhir: ctx.ehr.stats.fhirRequests - before.fhir, token: tokenCalls(ctx) - before.token }
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
    await ctx.finish(app, results, [{ a: 'protected', b: 'session-read' }, { a: 'protected', b: 'fhirclient' }])
  }
}

export async function launchComparison(ctx: BenchContext, store: StoreKind): Promise<LaunchComparison> {
  const label = `smartLaunch vs session-write (${STORE_NAMES[store]})`
  const app = await started(ctx, label, 'launch', store)
  let results: Comparison | null = null
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
    results = await compareRoutes(ctx.load, app.handle, routes, ctx.opts, (line) => ctx.log(line))
    const discoveries = ctx.ehr.stats.discoveryFetches - before
    checkRoutes(ctx, label, results)
    ctx.check(`${label}: discovery stayed cached during the rounds`, discoveries === 0, `${discoveries} discovery fetches`)
    ctx.log(`  medians: ${summary(results)}`)
    return { store, routes: results, vsSessionWrite: pairStats(results, 'launch', 'session-write'), discoveryFetchesDuringRounds: discoveries }
  } finally {
    await ctx.finish(app, results, [{ a: 'launch', b: 'session-write' }])
  }
}

/**
 * One FHIR read, `req.smart.request('Patient/patient-1')` behind requireSmartContext, vs a route that sends the same
 * GET (same URL, same accept header, a bearer token of the same launch) with fetch() and no requireSmartContext.
 * Both requests carry the same session cookie, so express-session loads the same session for both: the
 * difference is requireSmartContext and the library's request path. Both call globalThis.fetch (the app gives the
 * library no `fetch` option), so both share undici's one global dispatcher and its keep-alive connections to the
 * mock EHR. The mock EHR (in the orchestrator) serves only these reads during the rounds; its CPU is not the app's.
 */
export async function fhirComparison(ctx: BenchContext, store: StoreKind): Promise<FhirComparison> {
  const label = `FHIR read: req.smart.request() vs fetch() (${STORE_NAMES[store]})`
  const app = await started(ctx, label, 'fhir', store)
  let results: Comparison | null = null
  try {
    const cookie = await launchSession(app.base, ctx.ehr, OUR_ROUTES)
    await checkSession(app.base, OUR_ROUTES, cookie)
    // The launch's access token, as the FHIR server saw it on one read through the library.
    const read = await fetch(`${app.base}/fhir`, { headers: { cookie } })
    if (read.status !== 200) throw new Error(`GET /fhir answered ${read.status}: ${(await read.text()).slice(0, 300)}`)
    await read.body?.cancel()
    const token = ctx.ehr.fhirLog.at(-1)?.accessToken
    if (!token) throw new Error('the mock EHR logged no access token for GET /fhir')
    await app.handle.call('fixedToken', { token })
    const routes: Route[] = [
      { name: 'fhir-read', url: `${app.base}/fhir`, headers: { cookie }, expectStatus: 200 },
      { name: 'fhir-fetch', url: `${app.base}/fhir-fetch`, headers: { cookie }, expectStatus: 200 },
    ]
    const before = { fhir: ctx.ehr.stats.fhirRequests, token: tokenCalls(ctx) }
    // The mock EHR logs every FHIR request: emptied after each round, so the log does not grow the orchestrator's heap.
    results = await compareRoutes(ctx.load, app.handle, routes, ctx.opts, (line) => ctx.log(line), { afterRound: () => void (ctx.ehr.fhirLog.length = 0) })
    const responses = Object.values(results).reduce((sum, r) => sum + r.responses, 0)
    const calls = { fhir: ctx.ehr.stats.fhirRequests - before.fhir, token: tokenCalls(ctx) - before.token, responses }
    checkRoutes(ctx, label, results)
    // autocannon may leave a request in flight at the end of a round (answered after it, not counted): a few more FHIR reads than responses.
    const slack = ctx.opts.connections * (ctx.opts.rounds + 1) * routes.length
    ctx.check(`${label}: one FHIR read per response, no token call`, calls.token === 0 && calls.fhir >= responses && calls.fhir <= responses + slack, JSON.stringify(calls))
    ctx.log(`  medians: ${summary(results)}`)
    return { store, routes: results, vsFetch: pairStats(results, 'fhir-read', 'fhir-fetch'), ehrCalls: calls }
  } finally {
    await ctx.finish(app, results, [{ a: 'fhir-read', b: 'fhir-fetch' }])
  }
}
