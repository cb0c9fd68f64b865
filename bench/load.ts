/**
 * The load generator, run as its own process by bench/run.ts so that it never shares a CPU-bound event
 * loop with the app under test. `round` runs autocannon against one URL; `herd` sends N requests at once,
 * one connection each.
 */
import { Agent, request as httpRequest } from 'node:http'
import autocannon from 'autocannon'
import { serveCommands } from './ipc'
import { percentile } from './stats'
import type { HerdRequest, HerdResult, RoundRequest, RoundResult } from './types'

/** A round's figures from every response's latency (ms), counted from `started` (process.hrtime.bigint()) to now. */
function roundResult(latencies: number[], started: bigint, statusCodes: Record<string, number>, errors: number, timeouts: number): RoundResult {
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9
  return { responses: latencies.length, seconds: elapsed, rps: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), statusCodes, errors, timeouts }
}

function round(request: RoundRequest): Promise<RoundResult> {
  return request.rate ? pacedRound(request, request.rate) : closedLoopRound(request)
}

/** autocannon, each connection sending its next request as soon as the last is answered (saturation). */
function closedLoopRound({ url, headers, seconds, connections }: RoundRequest): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = []
    const statusCodes: Record<string, number> = {}
    const started = process.hrtime.bigint()
    // sampleInt: autocannon notices the end of the round at its next sample tick (default every 1000 ms).
    const instance = autocannon({ url, headers, connections, duration: seconds, sampleInt: 100 }, (err, result) => {
      if (err) return reject(err)
      resolve(roundResult(latencies, started, statusCodes, result.errors, result.timeouts))
    })
    // Our own record of every response: exact latencies (autocannon's histogram keeps whole milliseconds).
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      latencies.push(responseTime)
      statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1
    })
  })
}

/**
 * Requests sent at a steady `rate` (evenly spaced, checked every millisecond) over at most `connections`
 * keep-alive connections, for `seconds`; then the answers still on their way are awaited. autocannon's own
 * rate limit sends each second's requests in one burst at the start of the second, which is saturation again
 * for part of every second: not the equal, steady load this mode is for.
 */
async function pacedRound({ url, headers, seconds, connections }: RoundRequest, rate: number): Promise<RoundResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections })
  const latencies: number[] = []
  const statusCodes: Record<string, number> = {}
  let errors = 0
  let inFlight = 0
  let sent = 0
  const started = process.hrtime.bigint()
  const elapsedNs = () => Number(process.hrtime.bigint() - started)
  const send = () => {
    const at = process.hrtime.bigint()
    inFlight++
    sent++
    const req = httpRequest(url, { agent, headers }, (res) => {
      res.resume()
      res.on('end', () => {
        inFlight--
        latencies.push(Number(process.hrtime.bigint() - at) / 1e6)
        statusCodes[res.statusCode ?? 0] = (statusCodes[res.statusCode ?? 0] ?? 0) + 1
      })
    })
    req.on('error', () => {
      inFlight--
      errors++
    })
    req.end()
  }
  await new Promise<void>((resolve) => {
    const ticker = setInterval(() => {
      const elapsed = elapsedNs()
      if (elapsed >= seconds * 1e9) {
        clearInterval(ticker)
        return resolve()
      }
      // Every request due by now, as far as the connections allow (a full pool means the app fell behind).
      const due = Math.floor((elapsed / 1e9) * rate) - sent
      for (let i = 0; i < due && inFlight < connections; i++) send()
    }, 1)
  })
  while (inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 5))
  agent.destroy()
  return roundResult(latencies, started, statusCodes, errors, 0)
}

function oneRequest(url: string, cookie: string): Promise<{ status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    // agent: false, one connection per request, as 100 separate browser tabs would.
    const req = httpRequest(url, { agent: false, headers: { cookie } }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - started) / 1e6 }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

async function herd({ urls, cookie, total }: HerdRequest): Promise<HerdResult> {
  const outcomes = await Promise.allSettled(Array.from({ length: total }, (_, i) => oneRequest(urls[i % urls.length], cookie)))
  const statusCodes: Record<string, number> = {}
  const errors: string[] = []
  const latenciesMs: number[] = []
  for (const outcome of outcomes) {
    if (outcome.status === 'rejected') {
      errors.push(String(outcome.reason))
      continue
    }
    statusCodes[outcome.value.status] = (statusCodes[outcome.value.status] ?? 0) + 1
    latenciesMs.push(outcome.value.ms)
  }
  return { statusCodes, ok: statusCodes['200'] ?? 0, errors, latenciesMs }
}

serveCommands({ round, herd }, { pid: process.pid })
