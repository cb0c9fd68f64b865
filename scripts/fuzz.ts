// npm run fuzz — the property tests of issue 9 (__tests__/security/properties/, and S10's) with many more
// cases and a random seed, over MemoryStore and RedisStore. Not for CI: `npm test` runs the same properties
// with the fixed seed.
//
//   FUZZ_RUNS=20000          cases per property (default 20000)
//   FUZZ_SEED=<n>            replay a run (the seed is printed at the start and at the end)
//   FUZZ_PATH=<path>         with FUZZ_SEED: replay only the shrunk case fast-check reported
//   FUZZ_STORES=MemoryStore  the stores (default MemoryStore,RedisStore; Redis: REDIS_URL, or a
//                            redis-server on PATH that the test setup starts)
//   npm run fuzz -- -t callback   extra arguments go to Jest
import { spawnSync } from 'node:child_process'
import { randomInt } from 'node:crypto'

const seed = process.env.FUZZ_SEED || String(randomInt(2 ** 31 - 1))
const runs = process.env.FUZZ_RUNS || '20000'
const stores = process.env.FUZZ_STORES || 'MemoryStore,RedisStore'
const replay = `FUZZ_SEED=${seed} FUZZ_RUNS=${runs} FUZZ_STORES=${stores} npm run fuzz`

console.log(`fuzz: seed ${seed}, ${runs} cases per property, over ${stores}\n      replay with: ${replay}\n`)
// CI=true would pin the fixed seed (helpers/properties.ts): a fuzz run is the random one.
const { CI: _ci, ...env } = process.env
const started = Date.now()
const jest = spawnSync(
  process.execPath,
  [require.resolve('jest/bin/jest'), '--runInBand', '--verbose', '__tests__/security/properties/', '__tests__/security/host-header.test.ts', ...process.argv.slice(2)],
  { stdio: 'inherit', env: { ...env, FUZZ_SEED: seed, PROPERTY_RUNS: runs, PROPERTY_STORES: stores, PROPERTY_STATS: '1' } },
)
const minutes = ((Date.now() - started) / 60_000).toFixed(1)
console.log(`\nfuzz: ${jest.status === 0 ? 'no failure' : 'FAILED'} in ${minutes} min — seed ${seed}; replay with: ${replay}`)
process.exit(jest.status ?? 1)
