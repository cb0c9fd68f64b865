// Checks the package as users get it: the `npm pack` tarball (built by the prepack script), installed into fresh
// projects outside the repository. `npm run check:package`; .ci/run runs it after the build.
//  1. The tarball holds package.json, README.md, LICENSE, CHANGELOG.md and the build (dist/ .js and .d.ts)
//     and nothing else; every entry point it names is in it; source maps, if any, point at shipped files.
//  2. Installed alone (`npm install <tarball>`: its optional peers oidc-provider and supertest stay out):
//     a CommonJS and an ESM app use the middlewares; loading the testing entry fails with the install hint;
//     plain Node loads the tsc build (dist/), never the Jest bundles (dist/cjs/), from require and import.
//  3. With the peers (and the type packages) added: the testing entry from CommonJS and ESM (a whole launch
//     through launchAs), and a strict TypeScript app (nodenext) type-checked with the repository's tsc.
//  4. docs/testing.md, verbatim, for each test runner (jest, vitest, node --test), in a fresh project of its
//     own: the page's install commands (the tarball in place of the package name), its files, its run command,
//     on each Node line in CHECK_PACKAGE_NODE_LINES (default "22 24", binaries from scripts/node-line.sh).
//     The page marks what to take with an HTML comment on the line before a fenced block:
//       <!-- check:package file=app.js -->                  a file of every runner's project
//       <!-- check:package install -->                      `npm install …` lines, run in every project
//       <!-- check:package runner=jest file=app.test.js -->  the same, for one runner only
//       <!-- check:package runner=jest install -->
//       <!-- check:package runner=jest run -->              the command that runs the tests; must exit 0
// CHECK_PACKAGE_KEEP=1 keeps the temporary projects (their folder is printed at the end).
// The repository's own packages install from the local npm cache (`npm ci` filled it) at the versions of its
// lockfile; the runners and the page's packages come from the registry as a user gets them (the cache first).
import { execFileSync, spawnSync, type ExecFileSyncOptions } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, posix } from 'node:path'

const root = join(__dirname, '..')
const fixtures = join(__dirname, 'package-consumers')
const work = mkdtempSync(join(tmpdir(), 'esof-package-'))
const project = join(work, 'consumer')
const failures: string[] = []

// Without the npm_* variables of an enclosing `npm run` (npm_config_local_prefix among them), so each npm
// call works on the project it is started in.
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)))

function step(title: string): void {
  console.log(`\n--- ${title}`)
}

function check(ok: boolean, problem: string): void {
  if (!ok) failures.push(problem)
}

function exec(command: string, args: string[], options: ExecFileSyncOptions = {}): string {
  return execFileSync(command, args, { cwd: project, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...options }) as string
}

/** Runs a consumer; a non-zero exit is a failure (its output shows why), not the end of the check. */
function consume(title: string, command: string, args: string[]): void {
  step(title)
  try {
    process.stdout.write(exec(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }))
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string }
    process.stdout.write(`${stdout ?? ''}${stderr ?? ''}`)
    failures.push(`${title}: failed`)
  }
}

/** `name@version` as installed in the repository (npm ci, from its lockfile): cache hits, reproducible. */
function pinned(name: string): string {
  return `${name}@${JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version}`
}

function npmInstall(specs: string[]): void {
  exec('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...specs], { stdio: ['ignore', 'inherit', 'inherit'] })
}

function isInstalled(name: string): boolean {
  return existsSync(join(project, 'node_modules', name, 'package.json'))
}

/** Every string target under `exports`, plus main and types. */
function entryFiles(manifest: { main?: string; types?: string; exports?: unknown }): string[] {
  const targets: string[] = []
  const walk = (value: unknown): void => {
    if (typeof value === 'string') targets.push(value)
    else if (value && typeof value === 'object') Object.values(value).forEach(walk)
  }
  walk([manifest.main, manifest.types, manifest.exports])
  return targets.map((target) => posix.normalize(target))
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => statSync(join(dir, file)).isFile())
    .map((file) => file.split('\\').join('/'))
}

function checkContents(packed: string[], unpacked: string): void {
  const files = new Set(packed)
  const allowed = /^(package\.json|README\.md|LICENSE|CHANGELOG\.md|dist\/.+\.(js|d\.ts|js\.map))$/
  for (const file of packed) check(allowed.test(file), `the tarball holds ${file}, which is not package.json, README.md, LICENSE, CHANGELOG.md or the build`)
  for (const file of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']) check(files.has(file), `the tarball lacks ${file}`)
  const built = listFiles(join(root, 'dist')).map((file) => `dist/${file}`)
  for (const file of built) check(files.has(file), `the tarball lacks the built ${file}`)
  for (const file of packed.filter((f) => f.startsWith('dist/'))) check(built.includes(file), `the tarball's ${file} is not in a fresh build`)

  const manifest = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8'))
  for (const target of entryFiles(manifest)) check(files.has(target), `package.json names ${target}, which the tarball lacks`)
  check(/^MIT License\n\nCopyright \(c\) \d{4} /.test(readFileSync(join(unpacked, 'LICENSE'), 'utf8')) && manifest.license === 'MIT', 'LICENSE is not the MIT license of package.json')
  check(/^## \[Unreleased\]/m.test(readFileSync(join(unpacked, 'CHANGELOG.md'), 'utf8')), 'CHANGELOG.md has no [Unreleased] section')

  // Source maps: each `sourceMappingURL` names a shipped map, and each map's sources are shipped too.
  for (const file of packed.filter((f) => f.endsWith('.js'))) {
    const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(unpacked, file), 'utf8'))?.[1]
    if (url && !url.startsWith('data:')) check(files.has(posix.join(posix.dirname(file), url)), `${file} points at the source map ${url}, which the tarball lacks`)
  }
  for (const file of packed.filter((f) => f.endsWith('.map'))) {
    const map = JSON.parse(readFileSync(join(unpacked, file), 'utf8')) as { sourceRoot?: string; sources: string[] }
    for (const source of map.sources) {
      const target = posix.normalize(posix.join(posix.dirname(file), map.sourceRoot ?? '', source))
      check(files.has(target), `${file} points at the source ${source}, which the tarball lacks`)
    }
  }
  const dist = packed.filter((f) => f.startsWith('dist/'))
  console.log(`${packed.filter((f) => !dist.includes(f)).join(', ')} and ${dist.length} built files`)
}

function main(): void {
  step('npm pack (the prepack script builds)')
  const [pack] = JSON.parse(exec('npm', ['pack', '--json', '--pack-destination', work], { cwd: root })) as Array<{ filename: string; files: Array<{ path: string }> }>
  const tarball = join(work, pack.filename)
  const unpacked = join(work, 'unpacked')
  mkdirSync(unpacked)
  exec('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1'], { cwd: work })

  step(`contents of ${pack.filename}`)
  checkContents(pack.files.map((file) => file.path), unpacked)

  step('npm install <tarball> into a fresh project')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2))
  for (const file of readdirSync(fixtures)) cpSync(join(fixtures, file), join(project, file))
  npmInstall([tarball])
  check(isInstalled('express') && isInstalled('express-session'), 'npm did not install the peers express and express-session')
  // The next consumer only means something if the optional peers resolve neither here nor from any folder above.
  const optionalPeers = ['oidc-provider', 'supertest'].filter((name) => {
    try {
      require.resolve(name, { paths: [join(project, 'node_modules', 'express-smart-on-fhir')] })
      return true
    } catch {
      return false
    }
  })
  check(optionalPeers.length === 0, `the optional peers resolve from the fresh project: ${optionalPeers.join(', ')}`)

  consume('CommonJS consumer (require)', process.execPath, ['main.cjs'])
  consume('ESM consumer (import)', process.execPath, ['main.mjs'])
  consume('resolution: Node loads dist/ (one copy), the Jest bundles dist/cjs/ are self-contained', process.execPath, ['resolution.mjs'])
  if (optionalPeers.length === 0) consume('testing entry without oidc-provider and supertest', process.execPath, ['testing-without-peers.cjs'])

  step('npm install the optional peers and the type packages')
  npmInstall(['oidc-provider', 'supertest', '@types/express', '@types/express-session', '@types/node', '@types/supertest'].map(pinned))
  consume('testing entry with its peers, CommonJS', process.execPath, ['testing.cjs'])
  consume('testing entry with its peers, ESM: launchAs through an app', process.execPath, ['testing.mjs'])
  consume(`TypeScript consumer: strict, nodenext, tsc ${exec(join(root, 'node_modules', '.bin', 'tsc'), ['--version']).trim()}`,
    join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'])

  runners(tarball)
}

// --- docs/testing.md, per test runner ---------------------------------------------------------------------------

const guide = join(root, 'docs', 'testing.md')
const RUNNERS = ['jest', 'vitest', 'node']

interface Block {
  runner?: string
  kind: 'file' | 'install' | 'run'
  file?: string
  text: string
  line: number
}

/** The blocks docs/testing.md marks with `<!-- check:package [runner=…] (file=…|install|run) -->`. */
function guideBlocks(): Block[] {
  const lines = readFileSync(guide, 'utf8').split('\n')
  const blocks: Block[] = []
  lines.forEach((line, i) => {
    const marker = /^<!--\s*check:package\s+(.*?)\s*-->\s*$/.exec(line)
    if (!marker) return
    const where = `docs/testing.md:${i + 1}`
    const words = marker[1].split(/\s+/)
    const attrs = Object.fromEntries(words.filter((w) => w.includes('=')).map((w) => w.split('=', 2) as [string, string]))
    const flags = words.filter((w) => !w.includes('='))
    const kind = attrs.file ? 'file' : flags[0]
    if (kind !== 'file' && kind !== 'install' && kind !== 'run') throw new Error(`${where}: a check:package marker needs file=…, install or run`)
    if (attrs.runner && !RUNNERS.includes(attrs.runner)) throw new Error(`${where}: unknown runner ${attrs.runner}`)
    const fence = /^(`{3,})/.exec(lines[i + 1] ?? '')?.[1]
    if (!fence) throw new Error(`${where}: a check:package marker must be followed by a fenced block`)
    const end = lines.findIndex((l, j) => j > i + 1 && l.startsWith(fence))
    if (end < 0) throw new Error(`${where}: the fenced block does not end`)
    blocks.push({ runner: attrs.runner, kind, file: attrs.file, text: lines.slice(i + 2, end).join('\n') + '\n', line: i + 1 })
  })
  return blocks
}

/** `npm install …` lines of an install block as argument lists; the package itself becomes the tarball. */
function installCommands(block: Block, tarball: string): string[][] {
  return block.text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean).map((l) => {
    const words = l.split(/\s+/)
    if (words[0] !== 'npm' || !['install', 'i', 'add'].includes(words[1])) throw new Error(`docs/testing.md:${block.line}: not an npm install command: ${l}`)
    return words.slice(1).map((w) => (w === 'express-smart-on-fhir' ? tarball : w))
  })
}

/** The bin directory of each Node line to run the runners on (scripts/node-line.sh fetches one when missing). */
function nodeLines(): Array<{ line: string; bin: string }> {
  const lines = (process.env.CHECK_PACKAGE_NODE_LINES ?? '22 24').split(/[\s,]+/).filter(Boolean)
  return lines.map((line) => ({ line, bin: exec('bash', [join(root, 'scripts', 'node-line.sh'), line], { cwd: root }).trim() }))
}

function runners(tarball: string): void {
  step('docs/testing.md: the guide\'s files and commands, per test runner')
  let blocks: Block[]
  try {
    blocks = guideBlocks()
  } catch (error) {
    failures.push((error as Error).message)
    return
  }
  const lines = nodeLines()
  for (const runner of RUNNERS) {
    const mine = blocks.filter((b) => b.runner === undefined || b.runner === runner)
    const run = mine.filter((b) => b.kind === 'run' && b.runner === runner)
    const files = mine.filter((b) => b.kind === 'file' && b.runner === runner)
    if (run.length !== 1 || files.length === 0 || !mine.some((b) => b.kind === 'install' && b.runner === runner)) {
      failures.push(`docs/testing.md marks no complete ${runner} setup (an install block, a test file and one run block)`)
      continue
    }
    const dir = join(work, `runner-${runner}`)
    mkdirSync(dir)
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `guide-${runner}`, version: '1.0.0', private: true }, null, 2))
    step(`${runner}: a fresh project, as docs/testing.md sets it up`)
    try {
      for (const block of mine.filter((b) => b.kind === 'install')) {
        for (const args of installCommands(block, tarball)) {
          console.log(`npm ${args.join(' ').replace(tarball, '<tarball>')}`)
          exec('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] })
        }
      }
    } catch {
      failures.push(`${runner}: the guide's install commands failed`)
      continue
    }
    for (const block of mine.filter((b) => b.kind === 'file')) writeFileSync(join(dir, block.file!), block.text)
    console.log(`files: ${mine.filter((b) => b.kind === 'file').map((b) => b.file).join(', ')}; no runner configuration`)
    const [command, ...args] = run[0].text.trim().split(/\s+/)
    for (const { line, bin } of lines) {
      const title = `${runner} on Node ${line}: ${run[0].text.trim()}`
      step(title)
      const started = Date.now()
      // First on PATH, so `npx` (a node script) and everything the runner starts by name run on that line.
      const result = spawnSync(command, args, { cwd: dir, env: { ...env, CI: 'true', NO_COLOR: '1', PATH: `${bin}:${env.PATH}` }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      process.stdout.write(`${result.stdout ?? ''}${result.stderr ?? ''}`)
      if (result.status !== 0) failures.push(`${title}: failed (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`)
      console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`)
    }
  }
}

const started = Date.now()
try {
  main()
} finally {
  if (process.env.CHECK_PACKAGE_KEEP) console.log(`\nkept ${work} (CHECK_PACKAGE_KEEP)`)
  else rmSync(work, { recursive: true, force: true })
}
const seconds = ((Date.now() - started) / 1000).toFixed(1)
console.log(failures.length === 0 ? `\npackage check: OK (${seconds} s)` : `\npackage check: ${failures.length} problem(s) (${seconds} s)\n- ${failures.join('\n- ')}`)
if (failures.length > 0) process.exitCode = 1
