// Mutation testing of the library's logic (issue 9): `npm run mutate` (scripts/mutate.ts starts the Redis
// the tests need once, then runs Stryker with this file). Not part of `npm test` or CI: it takes hours on
// two cores. Results, timings and the survivors judged equivalent: mutation/REPORT.md.
//
//   npm run mutate                                   every folder below, reusing the last run's results
//   npm run mutate -- --mutate lib/storage/lock.ts   one file (or a glob, or `file:line`)
//   npm run mutate -- --force                        ignore the incremental file, run every mutant again
//
// Quote scores from --force runs: when only tests change, the incremental mode may re-use a "survived"
// result for a static mutant that a new test kills (seen here; see mutation/REPORT.md).

import { fileURLToPath } from 'node:url'

/** Test files left out of mutant runs: they do not exercise lib/ logic in this process, and they are slow. */
const slowTestsOutsideLib = [
  '/__tests__/example-app/', // Chromium and `npm start` against the example app
  '/__tests__/bench/', // the quick benchmark
  '/__tests__/package\\.test\\.ts$', // npm pack and the consumers' type checks
  '/__tests__/readme\\.test\\.ts$', // type checks of the README's snippets
  // Kills app processes mid-refresh: the library runs in those child processes, where Stryker's per-test
  // coverage cannot see it, so it would only ever run for static mutants, at 30 s each.
  '/__tests__/storage/crash\\.test\\.ts$',
]

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  // Stryker's jest runner, loading only the test files whose tests cover the mutant (see that file).
  testRunner: 'jest-by-file',
  appendPlugins: ['./mutation/jest-by-file-runner.mjs'],
  jest: {
    projectType: 'custom',
    // Its first line names the loader (`@jest-config-loader esbuild-register`) Node 20 needs for a .ts config.
    configFile: 'jest.config.ts',
    // Only the test files that import the mutated file, then only the tests that covered the mutant.
    enableFindRelatedTests: true,
    config: {
      // Jest follows imports only through its roots: with lib/ outside them, a test importing lib/index.ts
      // would not count as related to lib/storage/lock.ts, and its tests would never run against lock.ts's mutants.
      roots: ['<rootDir>/__tests__', '<rootDir>/lib'],
      testPathIgnorePatterns: ['/node_modules/', ...slowTestsOutsideLib],
      // Jest's node environment that stops a mutant run at its first failing test (see that file).
      testEnvironment: fileURLToPath(new URL('./mutation/bail-environment.cjs', import.meta.url)),
    },
  },
  coverageAnalysis: 'perTest',
  // Stryker rewrites the tsconfig's `extends` and `references` in its sandboxes with TypeScript's JS API,
  // which TypeScript 7 (the native compiler) does not have. Ours has neither, and Jest (swc) never reads it.
  tsconfigFile: 'no-tsconfig-to-rewrite.json',
  mutate: [
    'lib/client/**/*.ts',
    'lib/session/**/*.ts',
    'lib/fhir/**/*.ts',
    'lib/observe.ts',
    'lib/oauth/**/*.ts',
    'lib/middleware/**/*.ts',
    'lib/storage/**/*.ts',
    // Types only: nothing to mutate.
    '!lib/fhir/fhir-types.ts',
  ],
  // Two cores shared with other work: two Jest runs at once keep both busy (see mutation/REPORT.md).
  concurrency: 2,
  // A busy machine makes tests slower than in the dry run: be generous before calling a mutant a timeout.
  timeoutMS: 20_000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 20,
  incremental: true,
  incrementalFile: 'mutation/.cache/stryker-incremental.json',
  tempDirName: 'mutation/.cache/tmp',
  ignorePatterns: ['mutation', 'dist', '.cache', '.tmp'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'mutation/.cache/report/index.html' },
  jsonReporter: { fileName: 'mutation/.cache/report/mutation.json' },
  clearTextReporter: { allowEmojis: false, logTests: false, maxTestsToLog: 0 },
  thresholds: { high: 90, low: 80, break: null },
}
