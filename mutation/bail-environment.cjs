// Jest's node environment, plus what Stryker's jest runner lacks: bail at the first failing test of a
// mutant run (Jest's own `bail` ends the process, so Stryker turns it off). One failure kills the mutant;
// the tests after it, in this file and in the run's later files, are skipped (and so are their beforeAll
// hooks). jest-by-file-runner.mjs switches it on for mutant runs only: the dry run must run every test.
const { TestEnvironment } = require('jest-environment-node')

const BAIL = Symbol.for('express-smart-on-fhir.mutation.bail')

/** `{ active, failed }`, shared by every test file of the worker process. */
function bail() {
  return (globalThis[BAIL] ??= { active: false, failed: false })
}

function skipAll(block) {
  for (const child of block.children) {
    if (child.type === 'describeBlock') skipAll(child)
    else child.mode = 'skip'
  }
}

class BailEnvironment extends TestEnvironment {
  async handleTestEvent(event, state) {
    const shared = bail()
    if (!shared.active) return
    if (event.name === 'run_start' && shared.failed) skipAll(state.rootDescribeBlock)
    else if (event.name === 'test_start' && shared.failed) event.test.mode = 'skip'
    else if (event.name === 'test_done' && event.test.errors.length > 0) shared.failed = true
  }
}

module.exports = BailEnvironment
