/**
 * The protected route's cost against a baseline route that only reads req.session, in one app, over
 * MemoryStore (and Redis when REDIS_URL is set). Rounds alternate between the two routes; the ratio
 * of medians is printed (1.00 = as fast as the baseline). Run: npm run bench
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import session, { MemoryStore, type Store } from 'express-session'
import { RedisStore } from 'connect-redis'
import { createClient } from 'redis'
import { requireSmartContext, smartCallback, smartLaunch } from 'express-smart-on-fhir'
import { createMockEhr } from 'express-smart-on-fhir/testing'

const ROUNDS = Number(process.env.ROUNDS ?? 15)
const REQUESTS_PER_ROUND = Number(process.env.REQUESTS ?? 400)
const CONCURRENCY = 8

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

async function measure(label: string, store: Store): Promise<void> {
  const ehr = await createMockEhr()
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const smart = {
    config: { clientId: 'mock-app', scope: 'openid fhirUser launch patient/*.rs', callbackUrl: `${base}/callback`, redirectUrl: '/', allowAnyIssuer: true as const },
    options: { allowNonHttpsLaunch: true },
  }
  const app = express()
  app.use(session({ store, secret: 'bench', resave: false, saveUninitialized: false }))
  app.get('/launch', smartLaunch(smart))
  app.get('/callback', smartCallback(smart))
  app.get('/baseline', (req, res) => void res.json({ since: req.session.smartOnFhir?.since ?? null }))
  app.get('/protected', requireSmartContext(smart), (req, res) => void res.json({ patient: req.smart.patient?.id }))
  server.on('request', app)

  // One launch, by hand, keeping the cookie.
  let cookie = ''
  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`, { headers: cookie ? { cookie } : {}, redirect: 'manual' })
    const set = res.headers.get('set-cookie')
    if (set) cookie = set.split(';')[0]
    return res
  }
  const launch = new URL(ehr.launchUrl(`${base}/launch`, { patient: 'patient-1' }))
  const authorize = (await get(`/launch${launch.search}`)).headers.get('location')!
  const back = await ehr.authorize(authorize)
  await get(`${back.pathname}${back.search}`)
  if ((await get('/protected')).status !== 200) throw new Error('launch failed')

  async function round(path: string): Promise<number> {
    const started = process.hrtime.bigint()
    let next = 0
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < REQUESTS_PER_ROUND) {
        const res = await fetch(`${base}${path}`, { headers: { cookie } })
        if (res.status !== 200) throw new Error(`${path} answered ${res.status}`)
        await res.arrayBuffer()
      }
    }))
    return (REQUESTS_PER_ROUND * 1e9) / Number(process.hrtime.bigint() - started)
  }
  await round('/baseline')
  await round('/protected')
  const baseline: number[] = []
  const protectedRoute: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    baseline.push(await round('/baseline'))
    protectedRoute.push(await round('/protected'))
  }
  const [b, p] = [median(baseline), median(protectedRoute)]
  console.log(`${label.padEnd(12)} baseline ${b.toFixed(0).padStart(6)} req/s   protected ${p.toFixed(0).padStart(6)} req/s   ratio ${(p / b).toFixed(2)}   (medians of ${ROUNDS} rounds x ${REQUESTS_PER_ROUND})`)
  console.log(`${''.padEnd(12)} FHIR/token calls during the rounds: ${ehr.stats.fhirRequests} FHIR, ${ehr.stats.refreshGrants} refresh`)
  server.closeAllConnections()
  server.close()
  await ehr.close()
}

async function main(): Promise<void> {
  await measure('MemoryStore', new MemoryStore())
  if (process.env.REDIS_URL) {
    const client = createClient({ url: process.env.REDIS_URL })
    await client.connect()
    await measure('RedisStore', new RedisStore({ client, prefix: `bench:${process.pid}:` }))
    await client.close()
  } else {
    console.log('RedisStore   skipped: set REDIS_URL to include it')
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
