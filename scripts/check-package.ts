// Checks the package as users get it: the `npm pack` tarball (built by the prepack script), installed into a
// fresh project outside the repository. `npm run check:package`; .ci/run runs it after the build.
//  1. The tarball holds package.json, README.md, LICENSE, CHANGELOG.md and the build (dist/ .js and .d.ts)
//     and nothing else; every entry point it names is in it; source maps, if any, point at shipped files.
//  2. Installed alone (`npm install <tarball>`: its optional peers oidc-provider and supertest stay out):
//     a CommonJS and an ESM app use the middlewares; loading the testing entry fails with the install hint.
//  3. With the peers (and the type packages) added: the testing entry from CommonJS and ESM (a whole launch
//     through launchAs), and a strict TypeScript app (nodenext) type-checked with the repository's tsc.
// Installs prefer the local npm cache (`npm ci` filled it) and pin the versions the repository's lockfile has.
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process'
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
  if (optionalPeers.length === 0) consume('testing entry without oidc-provider and supertest', process.execPath, ['testing-without-peers.cjs'])

  step('npm install the optional peers and the type packages')
  npmInstall(['oidc-provider', 'supertest', '@types/express', '@types/express-session', '@types/node', '@types/supertest'].map(pinned))
  consume('testing entry with its peers, CommonJS', process.execPath, ['testing.cjs'])
  consume('testing entry with its peers, ESM: launchAs through an app', process.execPath, ['testing.mjs'])
  consume(`TypeScript consumer: strict, nodenext, tsc ${exec(join(root, 'node_modules', '.bin', 'tsc'), ['--version']).trim()}`,
    join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'])
}

const started = Date.now()
try {
  main()
} finally {
  rmSync(work, { recursive: true, force: true })
}
const seconds = ((Date.now() - started) / 1000).toFixed(1)
console.log(failures.length === 0 ? `\npackage check: OK (${seconds} s)` : `\npackage check: ${failures.length} problem(s) (${seconds} s)\n- ${failures.join('\n- ')}`)
if (failures.length > 0) process.exitCode = 1
