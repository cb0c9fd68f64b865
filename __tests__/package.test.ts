import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// Builds the package (scripts/build.ts: the tsc build and the Jest bundles) into a scratch folder inside the
// repository (so its dependencies resolve) and loads it the way a consumer would: by its name, from ESM and
// from CommonJS (API.md: both, Node 22 and 24), and the bundles as Jest gets them (docs/testing.md).
const root = join(__dirname, '..')
const scratch = join(root, '.tmp', `package-test-${process.pid}`)
const consumer = join(scratch, 'consumer')

beforeAll(() => {
  rmSync(scratch, { recursive: true, force: true })
  execFileSync(process.execPath, ['-r', 'esbuild-register', join(root, 'scripts', 'build.ts'), '--outDir', join(scratch, 'pkg', 'dist')], { cwd: root, stdio: 'pipe' })
  cpSync(join(root, 'package.json'), join(scratch, 'pkg', 'package.json'))
  mkdirSync(join(consumer, 'node_modules'), { recursive: true })
  // Its own package scope: otherwise Node resolves the name through the repository's package.json
  // (self-reference) and loads the repository's dist/ instead of this build.
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  symlinkSync(join(scratch, 'pkg'), join(consumer, 'node_modules', 'express-smart-on-fhir'), 'dir')
}, 60_000)
const outside: string[] = []
afterAll(() => {
  for (const dir of [scratch, ...outside]) rmSync(dir, { recursive: true, force: true })
})

function run(file: string, source: string): string[] {
  writeFileSync(join(consumer, file), source)
  return execFileSync(process.execPath, [file], { cwd: consumer, encoding: 'utf8', stdio: 'pipe' }).trim().split(',')
}

/**
 * A consumer outside the repository (where Node cannot fall back on the repository's node_modules) with a copy
 * of the build and every installed package but `without`, as after `npm install express-smart-on-fhir`.
 */
function consumerWithout(without: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'esof-consumer-'))
  outside.push(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  mkdirSync(join(dir, 'node_modules'))
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (!without.includes(name) && name !== 'express-smart-on-fhir') symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name))
  }
  cpSync(join(scratch, 'pkg'), join(dir, 'node_modules', 'express-smart-on-fhir'), { recursive: true })
  return dir
}

/** Loads the testing entry by `require` and by `import`: each gives `loaded` or the error message. And the main entry. */
function loadTestingEntry(cwd: string): { cjs: string; esm: string; main: string } {
  writeFileSync(join(cwd, 'load.cjs'), `(async () => {
    const outcome = (p) => p.then((m) => typeof m.createMockEhr === 'function' ? 'loaded' : 'no createMockEhr', (e) => e.message)
    const cjs = await outcome(new Promise((resolve) => resolve(require('express-smart-on-fhir/testing'))))
    const esm = await outcome(import('express-smart-on-fhir/testing'))
    console.log(JSON.stringify({ cjs, esm, main: typeof require('express-smart-on-fhir').smartLaunch }))
  })()`)
  return JSON.parse(execFileSync(process.execPath, ['load.cjs'], { cwd, encoding: 'utf8', stdio: 'pipe' }))
}

const publicNames = ['SmartClient', 'ReadyClient', 'expressSessionStorage', 'SmartError', 'smartLaunch', 'smartCallback', 'requireSmartContext', 'createMockEhr', 'launchAs']

describe('the published entry points', () => {
  it('load from ESM by package name', () => {
    const names = run('esm.mjs', `
      import * as main from 'express-smart-on-fhir'
      import * as testing from 'express-smart-on-fhir/testing'
      console.log(Object.entries({ ...main, ...testing }).filter(([, v]) => typeof v === 'function').map(([k]) => k).join(','))`)
    expect(names).toEqual(expect.arrayContaining(publicNames))
  })

  it('load from CommonJS by package name', () => {
    const names = run('cjs.cjs', `
      const main = require('express-smart-on-fhir')
      const testing = require('express-smart-on-fhir/testing')
      console.log(Object.entries({ ...main, ...testing }).filter(([, v]) => typeof v === 'function').map(([k]) => k).join(','))`)
    expect(names).toEqual(expect.arrayContaining(publicNames))
  })

  it('the index re-exports the public API only', () => {
    const names = run('names.cjs', `console.log(Object.keys(require('express-smart-on-fhir')).sort().join(','))`)
    expect(names).toEqual([
      'ACTIVE_PATIENT_HEADER', 'ReadyClient', 'SMART_ERROR_STATUS', 'SMART_ISS_HEADER', 'SMART_PATIENT_HEADER', 'SmartClient', 'SmartError',
      'expressSessionStorage', 'failFastStore', 'frameAncestorsOf', 'isNotFound', 'isSmartError', 'requireSmartContext', 'smartCallback', 'smartErrorHandler', 'smartFrameAncestors',
      'smartLaunch', 'smartLogin', 'smartLogout',
    ])
  })
})

describe('the testing entry without its optional peers', () => {
  it('fails to load, from CommonJS and from ESM, with the missing packages and the command that installs them', () => {
    const outcome = loadTestingEntry(consumerWithout(['oidc-provider', 'supertest']))
    for (const message of [outcome.cjs, outcome.esm]) {
      expect(message).toContain('express-smart-on-fhir/testing needs oidc-provider and supertest')
      expect(message).toContain('npm install --save-dev oidc-provider supertest')
    }
    expect(outcome.main).toBe('function')
  })

  it('names only oidc-provider when supertest is there', () => {
    const outcome = loadTestingEntry(consumerWithout(['oidc-provider']))
    expect(outcome.cjs).toContain('needs oidc-provider, optional peer dependency')
    expect(outcome.cjs).toMatch(/npm install --save-dev oidc-provider\n/)
    expect(outcome.esm).toBe(outcome.cjs)
  })

  it('loads without supertest, which only the caller of launchAs needs', () => {
    expect(loadTestingEntry(consumerWithout(['supertest']))).toEqual({ cjs: 'loaded', esm: 'loaded', main: 'function' })
  })
})

describe('the exports map: Node gets the tsc build, Jest the bundles (docs/testing.md)', () => {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, string>> }

  it.each([['.', 'index'], ['./testing', 'testing/index']])('%s: types, module-sync and default on dist/, require on dist/cjs/, in that order', (entry, file) => {
    // First match wins: Node (>= 22.12 sets module-sync for require and import) stops at module-sync; Jest, which
    // does not set it, at require.
    expect(Object.entries(manifest.exports[entry])).toEqual([
      ['types', `./dist/${file}.d.ts`],
      ['module-sync', `./dist/${file}.js`],
      ['require', `./dist/cjs/${file}.js`],
      ['default', `./dist/${file}.js`],
    ])
  })

  it('Node resolves require and import to the same tsc build: one copy of the package', () => {
    const [byRequire, byImport, same] = run('resolve.mjs', `
      import { createRequire } from 'node:module'
      const require = createRequire(import.meta.url)
      const paths = ['express-smart-on-fhir', 'express-smart-on-fhir/testing'].map((e) => [require.resolve(e), new URL(import.meta.resolve(e)).pathname])
      const imported = await import('express-smart-on-fhir')
      console.log([paths.map((p) => p[0]).join(' '), paths.map((p) => p[1]).join(' '), imported.SmartError === require('express-smart-on-fhir').SmartError].join(','))`)
    expect(byRequire).toBe(byImport)
    expect(byRequire.split(' ')).toEqual([join(scratch, 'pkg', 'dist', 'index.js'), join(scratch, 'pkg', 'dist', 'testing', 'index.js')])
    expect(same).toBe('true')
  })

  it('the bundles run without the ESM-only packages installed: they are inlined', async () => {
    const dir = consumerWithout(['openid-client', 'jose', 'oauth4webapi'])
    const bundles = join(dir, 'node_modules', 'express-smart-on-fhir', 'dist', 'cjs')
    writeFileSync(join(dir, 'bundles.cjs'), `
      const main = require(${JSON.stringify(join(bundles, 'index.js'))})
      const { createMockEhr } = require(${JSON.stringify(join(bundles, 'testing', 'index.js'))})
      createMockEhr().then(async (ehr) => {
        const res = await fetch(ehr.iss + '/.well-known/smart-configuration')
        await ehr.close()
        console.log(JSON.stringify({ main: Object.keys(main).sort(), discovery: res.status }))
      })`)
    const outcome = JSON.parse(execFileSync(process.execPath, ['bundles.cjs'], { cwd: dir, encoding: 'utf8', stdio: 'pipe' }))
    expect(outcome.main).toEqual(Object.keys(require(join(scratch, 'pkg', 'dist', 'index.js'))).sort())
    expect(outcome.discovery).toBe(200)
  }, 30_000)
})
