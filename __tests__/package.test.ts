import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
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
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

function run(file: string, source: string): string[] {
  writeFileSync(join(consumer, file), source)
  return execFileSync(process.execPath, [file], { cwd: consumer, encoding: 'utf8' }).trim().split(',')
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
      'expressSessionStorage', 'failFastStore', 'isNotFound', 'isSmartError', 'requireSmartContext', 'smartCallback', 'smartErrorHandler',
      'smartLaunch', 'smartLogout',
    ])
  })
})
