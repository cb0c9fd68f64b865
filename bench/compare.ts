/**
 * One comparison: two or three routes of the same app process, measured by the load process in
 * interleaved rounds (the order rotates every round) after a warm-up; medians per route.
 *
 * Besides req/s and p99, each round records the app process's CPU time per response: on a shared machine
 * req/s follows whatever CPU share the app gets, while CPU per request follows the work it does.
 */
import type { ChildHandle } from './ipc'
import { median, percentile } from './stats'
import type { RoundRequest, RoundResult } from './types'

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
}

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
}

export type Comparison = Record<string, RouteResult>

/** Route a against route b (a is ours: every ratio > 1 means a is ahead). */
export interface PairStats {
  /** a/b of the median req/s. */
  ratioOfMedians: number
  /** a/b of req/s within each round (the two ran seconds apart): median and quartiles. */
  perRoundRatio: { median: number; p25: number; p75: number }
  /** b/a of the median CPU time per request (> 1: a costs less CPU per request). */
  cpuRatio: number
}

export function pairStats(results: Comparison, a: string, b: string): PairStats {
  const [x, y] = [results[a], results[b]]
  const perRound = x.rps.map((rps, i) => rps / y.rps[i])
  return {
    ratioOfMedians: x.medianRps / y.medianRps,
    perRoundRatio: { median: median(perRound), p25: percentile(perRound, 25), p75: percentile(perRound, 75) },
    cpuRatio: y.medianCpuUsPerRequest / x.medianCpuUsPerRequest,
  }
}

/** Round i runs the routes starting at i mod n: A B C, B C A, C A B, … */
export function rotation<T>(items: T[], round: number): T[] {
  const start = round % items.length
  return [...items.slice(start), ...items.slice(0, start)]
}

export async function compareRoutes(
  load: ChildHandle<unknown>,
  app: ChildHandle<unknown>,
  routes: Route[],
  opts: RoundsOptions,
  log: (line: string) => void,
): Promise<Comparison> {
  const results: Comparison = Object.fromEntries(routes.map((route) => [route.name, {
    medianRps: NaN, medianP99Ms: NaN, medianCpuUsPerRequest: NaN, rps: [], p99Ms: [], cpuUsPerRequest: [], responses: 0, unexpected: 0, statusCodes: {},
  } satisfies RouteResult]))

  async function run(route: Route, seconds: number): Promise<RoundResult & { cpuUsPerRequest: number }> {
    const request: RoundRequest = { url: route.url, headers: route.headers, seconds, connections: opts.connections }
    const cpuBefore = await app.call<number>('cpu')
    const round = await load.call<RoundResult>('round', request)
    const cpuAfter = await app.call<number>('cpu')
    const result = results[route.name]
    result.responses += round.responses
    result.unexpected += round.errors + round.timeouts
    for (const [status, count] of Object.entries(round.statusCodes)) {
      result.statusCodes[status] = (result.statusCodes[status] ?? 0) + count
      if (Number(status) !== route.expectStatus) result.unexpected += count
    }
    return { ...round, cpuUsPerRequest: (cpuAfter - cpuBefore) / round.responses }
  }

  for (const route of routes) await run(route, opts.warmupSeconds)
  for (let i = 0; i < opts.rounds; i++) {
    for (const route of rotation(routes, i)) {
      const round = await run(route, opts.seconds)
      results[route.name].rps.push(round.rps)
      results[route.name].p99Ms.push(round.p99)
      results[route.name].cpuUsPerRequest.push(round.cpuUsPerRequest)
    }
    const line = routes.map((route) => `${route.name} ${results[route.name].rps.at(-1)!.toFixed(0)}/s ${results[route.name].cpuUsPerRequest.at(-1)!.toFixed(0)} µs CPU/req`)
    log(`  round ${i + 1}/${opts.rounds}: ${line.join(', ')}`)
  }
  for (const result of Object.values(results)) {
    result.medianRps = median(result.rps)
    result.medianP99Ms = median(result.p99Ms)
    result.medianCpuUsPerRequest = median(result.cpuUsPerRequest)
  }
  return results
}
