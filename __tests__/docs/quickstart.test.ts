// The README's quick start, run as a newcomer runs it: its install line in a new project (with the package as
// `npm pack` makes it), its server.js saved verbatim, `node server.js`, and a click on "Launch" at the mock EHR
// it prints, followed through the EHR's authorization server and the app's callback to the patient's page.
import { spawn, type ChildProcess } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { FetchBrowser } from '../helpers/browser-fetch'
import { markedBlock, readDocument } from '../helpers/docs'
import { installProject, packTarball } from '../helpers/packed'
import { freePort } from '../helpers/redis-server'

const server = markedBlock('README.md', 'quickstart', 'server.js')
let tarball: string
let project: string
let child: ChildProcess | undefined
let output = ''

/** The packages of the quick start's `npm install` line. */
function installLine(): string[] {
  const quickStart = readDocument('README.md').split(/^## Quick start$/m)[1].split(/^## /m)[0]
  const line = /^npm install (.+)$/m.exec(quickStart)
  if (!line) throw new Error('the README\'s quick start has no `npm install` line')
  return line[1].split(/\s+/).filter(Boolean)
}

beforeAll(() => {
  tarball = packTarball()
  const packages = installLine()
  expect(packages).toContain('express-smart-on-fhir')
  project = installProject(packages.map((name) => (name === 'express-smart-on-fhir' ? tarball : name)))
  writeFileSync(join(project, 'server.js'), server)
}, 180_000)

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((resolve) => child!.once('exit', resolve))
    child.kill('SIGTERM')
    await gone
  }
  for (const dir of [project, tarball && dirname(tarball)]) if (dir) rmSync(dir, { recursive: true, force: true })
})

/** Starts `node server.js` with `env` and resolves with the mock EHR's URL it prints. */
function start(env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const { SESSION_SECRET: _unset, ...inherited } = process.env
    child = spawn(process.execPath, ['server.js'], { cwd: project, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    const timer = setTimeout(() => reject(new Error(`server.js printed no Mock EHR URL within 20 s:\n${output}`)), 20_000)
    const read = (chunk: Buffer): void => {
      output += chunk.toString('utf8')
      const url = /Mock EHR: (http\S+)/.exec(output)?.[1]
      if (url && /App: +http/.test(output)) {
        clearTimeout(timer)
        resolve(url)
      }
    }
    child.stdout!.on('data', read)
    child.stderr!.on('data', read)
    child.once('exit', (code, signal) => reject(new Error(`server.js ended (${signal ?? code}):\n${output}`)))
  })
}

it('the quick start is one plain-Node file that names the variables it reads', () => {
  expect(server).not.toMatch(/^import |^\s*await /m)                 // CommonJS, no top-level await
  for (const name of ['PORT', 'APP_URL', 'SESSION_SECRET']) expect(server).toContain(`process.env.${name}`)
  expect(server).toContain("require('express-smart-on-fhir/testing')")
  expect(server).toContain('MemoryStore')
})

it('runs as written (no Redis, no variables but PORT) and a click on Launch at its mock EHR ends on the patient\'s page', async () => {
  const port = await freePort()
  const ehrHome = await start({ PORT: String(port) })
  const browser = new FetchBrowser()

  // Before any launch the app says where to launch from.
  const early = await browser.open(`http://localhost:${port}/`)
  expect(early.res.status).toBe(401)
  expect(await early.res.text()).toContain(ehrHome)

  // The EHR's patient list, and its first "Launch" link.
  const home = await (await browser.open(ehrHome)).res.text()
  const link = /<a class="launch" data-patient-id="patient-1" href="([^"]+)"/.exec(home)?.[1]
  expect(link).toBeDefined()
  const { res, visited } = await browser.open(new URL(link!.replace(/&amp;/g, '&'), ehrHome).href)

  const page = await res.text()
  expect({ status: res.status, page }).toEqual({ status: 200, page: expect.stringContaining('Amy V. Shaw') })
  expect(page).toContain('FHIR id patient-1')
  const paths = visited.map((url) => new URL(url).pathname)
  expect(paths).toEqual(expect.arrayContaining(['/launch', '/oauth/authorize', '/callback', '/']))
  expect(new URL(visited.at(-1)!).origin).toBe(`http://localhost:${port}`)
  expect(child!.exitCode).toBeNull()
}, 60_000)
