// The manual's Redis code survives its store: the README's production sessions.js and docs/storage.md's Redis
// snippet, each saved verbatim (the TypeScript one compiled to JavaScript as a user's build would) into a project
// that installed the packed package, run in an app process against a redis-server of this test. A patient is
// launched, Redis stops: the protected route answers 503 STORAGE_UNAVAILABLE and the process stays up; Redis
// starts again with its data: the same browser is served again. Without the snippet's 'error' listener the
// process would end: shown once, with the listener's line removed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { transformSync } from 'esbuild'
import { createMockEhr, type MockEhr } from 'express-smart-on-fhir/testing'
import { FetchBrowser } from '../helpers/browser-fetch'
import { markedBlock } from '../helpers/docs'
import { installProject, packTarball } from '../helpers/packed'
import { startRedisCluster, stopRedisCluster, type RunningCluster } from '../helpers/redis-cluster'
import { findOnPath, freePort, spawnRedisNode, startRedis, stopProcess, type RunningRedis } from '../helpers/redis-server'

const redisServer = findOnPath('redis-server')
const redisCli = findOnPath('redis-cli')
if (!redisServer || !redisCli) throw new Error('redis-server and redis-cli are needed on PATH (apt-get install -y redis-server)')

/** An app around a snippet's session factory (`SESSIONS`: which file, which export), as the README's step to production says. */
const APP = `
const express = require('express')
const { requireSmartContext, smartCallback, smartErrorHandler, smartLaunch } = require('express-smart-on-fhir')
const [file, name] = process.env.SESSIONS.split('#')
const PORT = Number(process.env.PORT)
const smart = {
  config: {
    clientId: 'mock-app', scope: 'openid fhirUser launch launch/patient patient/*.rs offline_access',
    callbackUrl: 'http://127.0.0.1:' + PORT + '/callback', redirectUrl: '/',
    knownFhirServers: [{ issuer: process.env.ISS, type: 'public' }],
  },
  options: { allowNonHttpsLaunch: true },
}
async function main() {
  const app = express()
  app.set('trust proxy', 1)
  app.use(await (await import(file))[name]())   // import(): connect-redis 11 is ESM only
  app.get('/launch', smartLaunch(smart))
  app.get('/callback', smartCallback(smart))
  app.get('/api/patient', requireSmartContext(smart), async (req, res) => void res.json(await req.smart.patient.read()))
  app.use(smartErrorHandler())
  app.listen(PORT, '127.0.0.1', () => console.log('listening'))
}
main().catch((err) => { console.error(err); process.exit(1) })
`

describe('the Redis snippets of the README and docs/storage.md', () => {
  let tarball: string
  let project: string
  let ehr: MockEhr
  const children: ChildProcess[] = []
  const redises: RunningRedis[] = []
  const clusters: RunningCluster[] = []

  beforeAll(async () => {
    tarball = packTarball()
    // The README's install line, then its `npm install connect-redis redis`.
    project = installProject([tarball, 'express', 'express-session', 'connect-redis', 'redis'])
    writeFileSync(join(project, 'app.js'), APP)
    writeFileSync(join(project, 'sessions.js'), markedBlock('README.md', 'production', 'sessions.js'))
    const ts = markedBlock('docs/storage.md', 'snippet', 'sessions-redis.ts')
    writeFileSync(join(project, 'sessions-redis.mjs'), transformSync(ts, { loader: 'ts', format: 'esm', target: 'node22' }).code)
    const cluster = markedBlock('docs/storage.md', 'snippet', 'sessions-redis-cluster.ts')
    writeFileSync(join(project, 'sessions-redis-cluster.mjs'), transformSync(cluster, { loader: 'ts', format: 'esm', target: 'node22' }).code)
    const unheard = ts.replace(/^\s*client\.on\('error'.*\n/m, '')
    writeFileSync(join(project, 'sessions-unheard.mjs'), transformSync(unheard, { loader: 'ts', format: 'esm', target: 'node22' }).code)
    ehr = await createMockEhr()
  }, 180_000)

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) await stopProcess(child)
    for (const redis of redises) {
      await stopProcess(redis.child)
      rmSync(redis.dir, { recursive: true, force: true })
    }
    for (const cluster of clusters) await stopRedisCluster(cluster)
    await ehr?.close()
    for (const dir of [project, tarball && dirname(tarball)]) if (dir) rmSync(dir, { recursive: true, force: true })
  })

  async function redis(): Promise<RunningRedis> {
    const started = await startRedis(redisServer!)
    redises.push(started)
    return started
  }

  /** Stops the redis-server after it wrote its data to disk, like a Redis that restarts with persistence. */
  async function stopRedis(running: RunningRedis): Promise<void> {
    execFileSync(redisCli!, ['-p', String(running.port), 'SAVE'])
    await stopProcess(running.child)
  }

  async function restartRedis(running: RunningRedis): Promise<void> {
    const child = await spawnRedisNode(redisServer!, { port: running.port, dir: running.dir, name: 'redis' })
    redises.push({ ...running, child })
  }

  /** `node app.js` over `sessions` (`./file#export`); resolves when it listens, with its URL and output. */
  async function app(sessions: string, store: { REDIS_URL: string } | { REDIS_CLUSTER_NODES: string }): Promise<{ url: string; child: ChildProcess; output: () => string }> {
    const port = await freePort()
    const child = spawn(process.execPath, ['app.js'], {
      cwd: project,
      env: { PATH: process.env.PATH, SESSIONS: sessions, PORT: String(port), ISS: ehr.iss, ...store, SESSION_SECRET: 'a long random value' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.push(child)
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`app.js did not listen within 20 s:\n${output}`)), 20_000)
      const read = (chunk: Buffer): void => {
        output += chunk.toString('utf8')
        if (output.includes('listening')) {
          clearTimeout(timer)
          resolve()
        }
      }
      child.stdout!.on('data', read)
      child.stderr!.on('data', read)
      child.once('exit', (code, signal) => reject(new Error(`app.js ended (${signal ?? code}):\n${output}`)))
    })
    return { url: `http://127.0.0.1:${port}`, child, output: () => output }
  }

  /** A browser behind the app's TLS proxy (the snippets' cookies are Secure): one launch of patient-1. */
  async function launched(url: string): Promise<FetchBrowser> {
    const browser = new FetchBrowser({ 'X-Forwarded-Proto': 'https' })
    const started = await browser.step(ehr.launchUrl(`${url}/launch`, { patient: 'patient-1' }))
    expect(started.status).toBe(302)
    const back = await ehr.authorize(started.headers.get('location')!)
    const called = await browser.step(`${url}${back.pathname}${back.search}`)
    expect(called.status).toBe(302)
    return browser
  }

  async function patient(browser: FetchBrowser, url: string): Promise<{ status: number; body: { id?: string; code?: string } }> {
    const res = await browser.step(`${url}/api/patient`)
    return { status: res.status, body: await res.json() }
  }

  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

  it.each([
    ['the README\'s step to production (sessions.js)', './sessions.js#redisSessions'],
    ['docs/storage.md\'s Redis snippet', './sessions-redis.mjs#redisSessions'],
  ])('%s: Redis stops, the app answers 503 and stays up; Redis is back, so is the session', async (_, sessions) => {
    const running = await redis()
    const { url, child, output } = await app(sessions, { REDIS_URL: running.url })
    const browser = await launched(url)
    expect(await patient(browser, url)).toMatchObject({ status: 200, body: { id: 'patient-1' } })

    await stopRedis(running)
    const started = Date.now()
    expect(await patient(browser, url)).toEqual({ status: 503, body: expect.objectContaining({ code: 'STORAGE_UNAVAILABLE' }) })
    expect(Date.now() - started).toBeLessThan(10_000)
    await sleep(1500)                                    // reconnection attempts fail meanwhile
    expect(await patient(browser, url)).toMatchObject({ status: 503 })
    expect(child.exitCode).toBeNull()
    expect(output()).toContain('redis: ')

    await restartRedis(running)
    let answer = await patient(browser, url)
    for (const deadline = Date.now() + 20_000; answer.status !== 200 && Date.now() < deadline; answer = await patient(browser, url)) await sleep(250)
    expect(answer).toMatchObject({ status: 200, body: { id: 'patient-1' } })
    expect(child.exitCode).toBeNull()
  }, 90_000)

  it('without the snippet\'s error listener the same outage ends the process (why the listener is there)', async () => {
    const running = await redis()
    const { url, child } = await app('./sessions-unheard.mjs#redisSessions', { REDIS_URL: running.url })
    const browser = await launched(url)
    expect(await patient(browser, url)).toMatchObject({ status: 200 })
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)))
    await stopRedis(running)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise((resolve) => (timer = setTimeout(() => resolve('still running'), 10_000)))
    await expect(Promise.race([exited, late])).resolves.not.toBe('still running')
    clearTimeout(timer)
  }, 60_000)

  it('docs/storage.md\'s Redis Cluster snippet: every node stops, the app answers 503 and stays up', async () => {
    const cluster = await startRedisCluster(redisServer!, redisCli!)
    clusters.push(cluster)
    const { url, child, output } = await app('./sessions-redis-cluster.mjs#redisClusterSessions', { REDIS_CLUSTER_NODES: cluster.nodes })
    const browser = await launched(url)
    expect(await patient(browser, url)).toMatchObject({ status: 200, body: { id: 'patient-1' } })

    for (const node of cluster.children) await stopProcess(node)
    const started = Date.now()
    expect(await patient(browser, url)).toEqual({ status: 503, body: expect.objectContaining({ code: 'STORAGE_UNAVAILABLE' }) })
    expect(Date.now() - started).toBeLessThan(10_000)
    await sleep(1500)
    expect(await patient(browser, url)).toMatchObject({ status: 503 })
    expect(child.exitCode).toBeNull()
    expect(output()).toContain('redis cluster: ')
  }, 90_000)
})
