/**
 * One comparison: two or more routes of the same app process, measured by the load process in
 * interleaved rounds (the order rotates every round) after a warm-up; medians per route.
 *
 * The headline figure is the app process's CPU time per response: on a shared machine req/s follows whatever
 * CPU share the app gets, while CPU per request follows the work it does. req/s and p99 are recorded beside it.
 */
import type { ChildHandle } from './ipc'
import { median, percentile } from './stats'
import type { CpuReading, RoundRequest, RoundResult } from './types'

export interface Route {
  name: string
  url: string
  headers?: Record<string, string>
  /** What every response must be (the launch route redirects). */
  expectStatus: number
}

export interface RoundsOptions {
  rounds: number
  seconds: number
  warmupSeconds: number
  connections: number
  /** See BenchOptions.rate. */
  rate: number | 'auto' | null
}

/** Where a route's timed round lay on the app process's monotonic clock (µs): cuts a CPU profile into routes. */
export interface Window { startUs: number; endUs: number; responses: number }

export interface RouteResult {
  medianRps: number
  medianP99Ms: number
  /** The app process's CPU time (user + system) per response, in microseconds. */
  medianCpuUsPerRequest: number
  rps: number[]
  p99Ms: number[]
  cpuUsPerRequest: number[]
  responses: number
  /** Responses with another status than expected, plus socket errors and timeouts, warm-up included. */
  unexpected: number
  statusCodes: Record<string, number>
  /** The timed rounds on the app's clock (warm-up excluded). */
  windows: Window[]
  /** Store and backend calls per response over the timed rounds (`store.get`, `redis.set`, `pg.query`, …). */
  callsPerRequest: Record<string, number>
}

export type Comparison = Record<string, RouteResult>

/** The offered load of the timed rounds: null (saturation), the given rate, or 60 % of the slowest route's warm-up rate. */
export function offeredRate(rate: RoundsOptions['rate'], warmupRps: number[]): number | null {
  if (rate === null) return null
  if (rate !== 'auto') return rate
  return Math.max(1, Math.floor(0.6 * Math.min(...warmupRps)))
}

export interface Quartiles { median: number; p25: number; p75: number }

/** Route a (ours) against route b (the baseline). Every ratio > 1 means a is ahead. */
export interface PairStats {
  /** b/a of the median CPU time per request (> 1: a costs less CPU per request). */
  cpuRatio: number
  /**
   * b/a of the CPU time per request within each round (a and b ran seconds apart): median and quartiles. The
   * headline: pairing the routes round by round takes out the drift of a shared machine's load.
   */
  perRoundCpuRatio: Quartiles
  /** a/b of the median req/s (> 1: a is ahead). */
  ratioOfMedians: number
  /** a/b of req/s within each round: median and quartiles. */
  perRoundRatio: Quartiles
  /** b/a of the median p99 (> 1: a answers faster). */
  p99Ratio: number
}

function quartiles(values: number[]): Quartiles {
  return { median: median(values), p25: percentile(values, 25), p75: percentile(values, 75) }
}

export function pairStats(results: Comparison, a: string, b: string): PairStats {
  const [x, y] = [results[a], results[b]]
  return {
    cpuRatio: y.medianCpuUsPerRequest / x.medianCpuUsPerRequest,
    perRoundCpuRatio: quartiles(x.cpuUsPerRequest.map((cpu, i) => y.cpuUsPerRequest[i] / cpu)),
    ratioOfMedians: x.medianRps / y.medianRps,
    perRoundRatio: quartiles(x.rps.map((rps, i) => rps / y.rps[i])),
    p99Ratio: y.medianP99Ms / x.medianP99Ms,
  }
}

/** Round i runs the routes starting at i mod n: A B C, B C A, C A B, … (two routes: A B, B A, …). */
export function rotation<T>(items: T[], round: number): T[] {
  const start = round % items.length
  return [...items.slice(start), ...items.slice(0, start)]
}

export interface CompareHooks {
  /** Runs after every round of every route, warm-up included (e.g. to empty the mock EHR's FHIR log). */
  afterRound?: () => void
}

export async function compareRoutes(
  load: ChildHandle<unknown>,
  app: ChildHandle<unknown>,
  routes: Route[],
  opts: RoundsOptions,
  log: (line: string) => void,
  hooks: CompareHooks = {},
): Promise<Comparison> {
  const results: Comparison = Object.fromEntries(routes.map((route) => [route.name, {
    medianRps: NaN, medianP99Ms: NaN, medianCpuUsPerRequest: NaN, rps: [], p99Ms: [], cpuUsPerRequest: [], responses: 0, unexpected: 0, statusCodes: {}, windows: [], callsPerRequest: {},
  } satisfies RouteResult]))
  const callTotals: Record<string, Record<string, number>> = Object.fromEntries(routes.map((route) => [route.name, {}]))
  const timedResponses: Record<string, number> = Object.fromEntries(routes.map((route) => [route.name, 0]))

  async function run(route: Route, seconds: number, timed: boolean, rate: number | null): Promise<RoundResult & { cpuUsPerRequest: number; window: Window }> {
    const request: RoundRequest = { url: route.url, headers: route.headers, seconds, connections: opts.connections, ...(rate ? { rate } : {}) }
    const before = await app.call<CpuReading>('cpu')
    const round = await load.call<RoundResult>('round', request)
    const after = await app.call<CpuReading>('cpu')
    hooks.afterRound?.()
    if (timed) {
      timedResponses[route.name] += round.responses
      const totals = callTotals[route.name]
      for (const [key, count] of Object.entries(after.calls)) totals[key] = (totals[key] ?? 0) + count - (before.calls[key] ?? 0)
    }
    const result = results[route.name]
    result.responses += round.responses
    result.unexpected += round.errors + round.timeouts
    for (const [status, count] of Object.entries(round.statusCodes)) {
      result.statusCodes[status] = (result.statusCodes[status] ?? 0) + count
      if (Number(status) !== route.expectStatus) result.unexpected += count
    }
    return { ...round, cpuUsPerRequest: (after.cpuUs - before.cpuUs) / round.responses, window: { startUs: before.monoUs, endUs: after.monoUs, responses: round.responses } }
  }

  const warmups: number[] = []
  for (const route of routes) warmups.push((await run(route, opts.warmupSeconds, false, null)).rps)
  const rate = offeredRate(opts.rate, warmups)
  if (rate !== null) log(`  offered load: ${rate} req/s per route (warm-up at saturation: ${warmups.map((rps, i) => `${routes[i].name} ${rps.toFixed(0)}/s`).join(', ')})`)
  for (let i = 0; i < opts.rounds; i++) {
    for (const route of rotation(routes, i)) {
      const round = await run(route, opts.seconds, true, rate)
      const result = results[route.name]
      result.rps.push(round.rps)
      result.p99Ms.push(round.p99)
      result.cpuUsPerRequest.push(round.cpuUsPerRequest)
      result.windows.push(round.window)
    }
    const line = routes.map((route) => `${route.name} ${results[route.name].cpuUsPerRequest.at(-1)!.toFixed(0)} µs CPU/req ${results[route.name].rps.at(-1)!.toFixed(0)}/s`)
    log(`  round ${i + 1}/${opts.rounds}: ${line.join(', ')}`)
  }
  for (const [name, result] of Object.entries(results)) {
    result.callsPerRequest = Object.fromEntries(Object.entries(callTotals[name]).filter(([, n]) => n > 0).map(([key, n]) => [key, Number((n / Math.max(1, timedResponses[name])).toFixed(3))]))
    result.medianRps = median(result.rps)
    result.medianP99Ms = median(result.p99Ms)
    result.medianCpuUsPerRequest = median(result.cpuUsPerRequest)
  }
  return results
}
