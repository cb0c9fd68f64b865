/**
 * The load generator, run as its own process by bench/run.ts so that it never shares a CPU-bound event
 * loop with the app under test. `round` runs autocannon against one URL; `herd` sends N requests at once,
 * one connection each.
 */
import { request as httpRequest } from 'node:http'
import autocannon from 'autocannon'
import { serveCommands } from './ipc'
import { percentile } from './stats'
import type { HerdRequest, HerdResult, RoundRequest, RoundResult } from './types'

function round({ url, headers, seconds, connections, rate }: RoundRequest): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = []
    const statusCodes: Record<string, number> = {}
    const started = process.hrtime.bigint()
    // sampleInt: autocannon notices the end of the round at its next sample tick (default every 1000 ms).
    const instance = autocannon({ url, headers, connections, duration: seconds, sampleInt: 100, ...(rate ? { overallRate: rate } : {}) }, (err, result) => {
      if (err) return reject(err)
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9
      resolve({
        responses: latencies.length,
        seconds: elapsed,
        rps: latencies.length / elapsed,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        statusCodes,
        errors: result.errors,
        timeouts: result.timeouts,
      })
    })
    // Our own record of every response: exact latencies (autocannon's histogram keeps whole milliseconds).
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      latencies.push(responseTime)
      statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1
    })
  })
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
