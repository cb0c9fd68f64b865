// A seeded random sample of the mutants of the four folders, for an estimate of the whole score when a full
// run (10-20 hours here) does not fit: see mutation/REPORT.md.
//
//   node mutation/sample.mjs draw  --size 150 --seed 9 [--skip lib/a.ts,lib/b.ts]   writes the sample file
//   MUTATION_SAMPLE=mutation/.cache/sample.json npm run mutate -- --mutate <files it printed> --force
//   node mutation/sample.mjs score [report.json] [sample.json]                      the estimate
//   node mutation/sample.mjs pool r1.json s1.json r2.json s2.json … [--exact 344/352]  several samples as one
//
// `draw` lists every mutant Stryker's instrumenter makes (the same instrumenter and mutators as a run), leaves
// out the files of --skip (those run in full), and draws --size of them uniformly without replacement.
// jest-by-file-runner.mjs then runs only the drawn mutants and answers "outside the sample" (a runtime error,
// which Stryker leaves out of its score) for the others. `score` reads the drawn mutants' results from the
// report: killed + timed out over all drawn, with a 95% Wilson interval (finite population corrected).
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Instrumenter } from '@stryker-mutator/instrumenter'
import { mutantKey } from './mutant-key.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const SAMPLE = join(ROOT, 'mutation', '.cache', 'sample.json')
const FOLDERS = ['lib/client', 'lib/session', 'lib/fhir', 'lib/oauth', 'lib/middleware', 'lib/storage']
const FILES = ['lib/observe.ts']
const TYPES_ONLY = ['lib/fhir/fhir-types.ts']

function option(args, name, fallback) {
  const at = args.indexOf(`--${name}`)
  return at === -1 ? fallback : args[at + 1]
}

/** mulberry32: a small seeded generator, so that a sample can be drawn again. */
function random(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

async function draw(args) {
  const size = Number(option(args, 'size', '150'))
  const seed = Number(option(args, 'seed', '1'))
  const skip = new Set(option(args, 'skip', '').split(',').filter(Boolean))
  const files = execFileSync('git', ['ls-files', ...FOLDERS.map((f) => `${f}/*.ts`), ...FILES], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((file) => file && !TYPES_ONLY.includes(file) && !skip.has(file))
  const silent = new Proxy({}, { get: (_, name) => (String(name).startsWith('is') ? () => false : () => undefined) })
  const { mutants } = await new Instrumenter(silent).instrument(
    files.map((name) => ({ name, content: readFileSync(join(ROOT, name), 'utf8'), mutate: true })),
    { plugins: null, excludedMutations: [], ignorers: [] },
  )
  const next = random(seed)
  const pool = mutants.map((m) => mutantKey(m.fileName, m.mutatorName, m.replacement, m.location.start))
  // Fisher-Yates, stopped after `size` draws.
  for (let i = 0; i < Math.min(size, pool.length); i++) {
    const j = i + Math.floor(next() * (pool.length - i))
    ;[pool[i], pool[j]] = [pool[j], pool[i]]
  }
  const drawn = pool.slice(0, size)
  const sampledFiles = [...new Set(drawn.map((key) => key.slice(0, key.indexOf(':'))))].sort()
  mkdirSync(dirname(SAMPLE), { recursive: true })
  writeFileSync(SAMPLE, JSON.stringify({ seed, size: drawn.length, population: mutants.length, files, drawn }, null, 1))
  console.log(`${drawn.length} of ${mutants.length} mutants in ${files.length} files (seed ${seed}) -> ${SAMPLE}`)
  console.log(`MUTATION_SAMPLE=${SAMPLE} npm run mutate -- --force --mutate ${sampledFiles.join(',')}`)
}

function wilson(killed, n, population) {
  const z = 1.96
  const p = killed / n
  const fpc = population > 1 ? Math.sqrt((population - n) / (population - 1)) : 1
  const zz = z * fpc
  const centre = (p + (zz * zz) / (2 * n)) / (1 + (zz * zz) / n)
  const half = (zz * Math.sqrt((p * (1 - p)) / n + (zz * zz) / (4 * n * n))) / (1 + (zz * zz) / n)
  return [centre - half, centre + half]
}

/** The drawn mutants' statuses in a report: counts, and the keys of those not detected. */
function tally(reportFile, sampleFile) {
  const sample = JSON.parse(readFileSync(sampleFile, 'utf8'))
  const report = JSON.parse(readFileSync(reportFile, 'utf8'))
  const results = new Map()
  for (const [file, { mutants }] of Object.entries(report.files)) {
    for (const m of mutants) {
      // The report counts lines and columns from 1; the instrumenter from 0 (lines) and 0 (columns).
      const start = { line: m.location.start.line - 1, column: m.location.start.column - 1 }
      results.set(mutantKey(`/${file}`, m.mutatorName, m.replacement, start), m)
    }
  }
  const counts = {}
  const survivors = []
  for (const key of sample.drawn) {
    const status = results.get(key)?.status ?? 'NotFound'
    counts[status] = (counts[status] ?? 0) + 1
    if (!['Killed', 'Timeout'].includes(status)) survivors.push(`${status} ${key}`)
  }
  return { counts, survivors, n: sample.drawn.length, detected: (counts.Killed ?? 0) + (counts.Timeout ?? 0), population: sample.population }
}

const percent = (x) => `${(100 * x).toFixed(1)}%`

function score(args) {
  const { counts, survivors, n, detected, population } = tally(args[0] ?? join(ROOT, 'mutation', '.cache', 'report', 'mutation.json'), args[1] ?? SAMPLE)
  const [low, high] = wilson(detected, n, population)
  console.log(JSON.stringify(counts))
  console.log(`estimated score over ${population} mutants: ${percent(detected / n)} (${detected}/${n}; 95% interval ${percent(low).slice(0, -1)}-${percent(high)})`)
  for (const line of survivors) console.log(`  ${line}`)
  if (counts.NotFound) process.exitCode = 1
}

/**
 * Independent samples of one population (each drawn with another seed, each scored on the code of its own
 * run) as one sample of their total size. The code only gains tests between runs, so an older sample's
 * result is, if anything, lower than the code now would score: the pooled estimate errs low. With
 * `--exact D/N` (the files run in full: D detected of N), also the estimate for the whole.
 */
function pool(args) {
  const exactAt = args.indexOf('--exact')
  const [exactDetected, exactTotal] = exactAt === -1 ? [0, 0] : args[exactAt + 1].split('/').map(Number)
  const files = exactAt === -1 ? args : args.filter((_, i) => i !== exactAt && i !== exactAt + 1)
  let n = 0
  let detected = 0
  let population = 0
  for (let i = 0; i + 1 < files.length; i += 2) {
    const part = tally(files[i], files[i + 1])
    console.log(`${files[i + 1]}: ${part.detected}/${part.n} ${JSON.stringify(part.counts)}`)
    n += part.n
    detected += part.detected
    population = part.population
  }
  const [low, high] = wilson(detected, n, population)
  console.log(`pooled: ${percent(detected / n)} (${detected}/${n} over ${population} mutants; 95% interval ${percent(low).slice(0, -1)}-${percent(high)})`)
  if (exactTotal > 0) {
    const whole = (p) => (exactDetected + p * population) / (exactTotal + population)
    console.log(`whole (with ${exactDetected}/${exactTotal} run in full): ${percent(whole(detected / n))} (95% interval ${percent(whole(low)).slice(0, -1)}-${percent(whole(high))})`)
  }
}

const [command, ...args] = process.argv.slice(2)
if (command === 'draw') await draw(args)
else if (command === 'score') score(args)
else if (command === 'pool') pool(args)
else {
  console.error('usage: node mutation/sample.mjs draw --size N --seed S [--skip files] | score [report.json] [sample.json] | pool report sample … [--exact D/N]')
  process.exitCode = 2
}
