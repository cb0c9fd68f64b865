import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// Builds the package into a scratch folder inside the repository (so its dependencies resolve) and loads
// it the way a consumer would: by its name, from ESM and from CommonJS (API.md: both, Node >= 20.19).
const root = join(__dirname, '..')
const scratch = join(root, '.tmp', `package-test-${process.pid}`)
const consumer = join(scratch, 'consumer')

beforeAll(() => {
  rmSync(scratch, { recursive: true, force: true })
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'tsconfig.build.json'), '--outDir', join(scratch, 'pkg', 'dist')])
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
