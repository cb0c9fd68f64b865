/**
 * One comparison: two or three routes of the same app process, measured by the load process in
 * interleaved rounds (the order rotates every round) after a warm-up; medians per route.
 */
import type { ChildHandle } from './ipc'
import { median } from './stats'
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
  rps: number[]
  p99Ms: number[]
  responses: number
  /** Responses with another status than expected, plus socket errors and timeouts, warm-up included. */
  unexpected: number
  statusCodes: Record<string, number>
}

export type Comparison = Record<string, RouteResult>

/** Round i runs the routes starting at i mod n: A B C, B C A, C A B, … */
export function rotation<T>(items: T[], round: number): T[] {
  const start = round % items.length
  return [...items.slice(start), ...items.slice(0, start)]
}

export async function compareRoutes(load: ChildHandle<unknown>, routes: Route[], opts: RoundsOptions, log: (line: string) => void): Promise<Comparison> {
  const results: Comparison = Object.fromEntries(routes.map((route) => [route.name, {
    medianRps: NaN, medianP99Ms: NaN, rps: [], p99Ms: [], responses: 0, unexpected: 0, statusCodes: {},
  } satisfies RouteResult]))

  async function run(route: Route, seconds: number): Promise<RoundResult> {
    const request: RoundRequest = { url: route.url, headers: route.headers, seconds, connections: opts.connections }
    const round = await load.call<RoundResult>('round', request)
    const result = results[route.name]
    result.responses += round.responses
    result.unexpected += round.errors + round.timeouts
    for (const [status, count] of Object.entries(round.statusCodes)) {
      result.statusCodes[status] = (result.statusCodes[status] ?? 0) + count
      if (Number(status) !== route.expectStatus) result.unexpected += count
    }
    return round
  }

  for (const route of routes) await run(route, opts.warmupSeconds)
  for (let i = 0; i < opts.rounds; i++) {
    for (const route of rotation(routes, i)) {
      const round = await run(route, opts.seconds)
      results[route.name].rps.push(round.rps)
      results[route.name].p99Ms.push(round.p99)
    }
    log(`  round ${i + 1}/${opts.rounds}: ${routes.map((route) => `${route.name} ${results[route.name].rps.at(-1)!.toFixed(0)}/s`).join(', ')}`)
  }
  for (const result of Object.values(results)) {
    result.medianRps = median(result.rps)
    result.medianP99Ms = median(result.p99Ms)
  }
  return results
}
