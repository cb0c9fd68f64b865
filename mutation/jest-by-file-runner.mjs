// Stryker's jest runner, with two changes to mutant runs that make them several times faster here:
//  - only the test files holding the tests that cover the mutant are loaded. The stock runner runs Jest
//    over every test file that imports the mutated file (nearly all of them, through lib/index.ts) and
//    skips the tests outside its filter by name, but still loads each file with express, oidc-provider and
//    the rest: some 25 s per mutant. The dry run (one worker) records which file each test is in; every
//    worker reads that record. Static mutants, which run every test, still load every related file.
//  - the run stops at the first failing test (bail-environment.cjs), unless Stryker's disableBail is set.
// With MUTATION_SAMPLE set (a file from `node mutation/sample.mjs draw`), only the mutants drawn in it run; the
// others end at once as "outside the sample", a runtime error, which Stryker's score leaves out.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { commonTokens, declareFactoryPlugin, PluginKind, tokens } from '@stryker-mutator/api/plugin'
import { strykerPlugins as jestPlugins } from '@stryker-mutator/jest-runner'
import { mutantKey } from './mutant-key.mjs'

const jestRunnerFactory = jestPlugins.find((plugin) => plugin.name === 'jest').factory
/** In the sandbox, which all workers share (and which Stryker removes at the end). */
const TEST_FILES = join(process.cwd(), '.stryker-test-files.json')

const BAIL = Symbol.for('express-smart-on-fhir.mutation.bail')

const sample = process.env.MUTATION_SAMPLE ? new Set(JSON.parse(readFileSync(process.env.MUTATION_SAMPLE, 'utf8')).drawn) : undefined

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

function jestByFileRunner(injector) {
  const jest = jestRunnerFactory(injector)
  let filesByTest
  let only
  // Jest's positional arguments are path patterns: with them, it runs exactly those files.
  const adapter = jest.jestTestAdapter
  jest.jestTestAdapter = { run: (settings) => adapter.run(only ? { ...settings, testFiles: only } : settings) }
  return {
    init: () => jest.init(),
    capabilities: () => jest.capabilities(),
    dispose: () => jest.dispose?.(),
    async dryRun(options) {
      const result = await jest.dryRun(options)
      if (result.status === 'complete') {
        filesByTest = {}
        for (const test of result.tests) (filesByTest[test.id] ??= []).includes(test.fileName) || filesByTest[test.id].push(test.fileName)
        writeFileSync(TEST_FILES, JSON.stringify(filesByTest))
      }
      return result
    },
    async mutantRun(options) {
      const { fileName, mutatorName, replacement, location } = options.activeMutant
      if (sample && !sample.has(mutantKey(fileName, mutatorName, replacement, location.start))) {
        return { status: 'error', errorMessage: 'outside the sample (MUTATION_SAMPLE)' }
      }
      filesByTest ??= JSON.parse(readFileSync(TEST_FILES, 'utf8'))
      const files = options.testFilter?.flatMap((id) => filesByTest[id] ?? [])
      // A test id not recorded (never expected): fall back to the stock behaviour rather than run too little.
      const known = files && options.testFilter.every((id) => filesByTest[id])
      only = known ? [...new Set(files)].map((file) => `^${escapeRegExp(file)}$`) : undefined
      globalThis[BAIL] = { active: !options.disableBail, failed: false }
      try {
        return await jest.mutantRun(options)
      } finally {
        only = undefined
        globalThis[BAIL] = { active: false, failed: false }
      }
    },
  }
}
jestByFileRunner.inject = tokens(commonTokens.injector)

export const strykerPlugins = [declareFactoryPlugin(PluginKind.TestRunner, 'jest-by-file', jestByFileRunner)]
