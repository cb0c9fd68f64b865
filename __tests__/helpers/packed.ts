// The package as users get it, for the docs tests: the library built into a scratch folder and packed with
// `npm pack` (the repository's own dist/ is left alone), then installed into a fresh project outside the
// repository, where nothing resolves from the repository's node_modules. Installs prefer the npm cache.
//
//   const tarball = packTarball()
//   const project = installProject([tarball, 'express', 'express-session'])   // remove it with rmSync when done
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ROOT = join(__dirname, '..', '..')

// Without the npm_* variables of an enclosing `npm test`, so that each npm call works on the folder it runs in.
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)))

function exec(command: string, args: string[], options: ExecFileSyncOptions): string {
  return execFileSync(command, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options }) as string
}

/** Builds lib/ as `npm run build` does (scripts/build.ts) and packs it with package.json, README.md, LICENSE and CHANGELOG.md; the tarball's path. */
export function packTarball(): string {
  const work = mkdtempSync(join(tmpdir(), 'esof-pack-'))
  const pkg = join(work, 'package')
  exec(process.execPath, ['-r', 'esbuild-register', join(ROOT, 'scripts', 'build.ts'), '--outDir', join(pkg, 'dist')], { cwd: ROOT })
  for (const file of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']) copyFileSync(join(ROOT, file), join(pkg, file))
  // The build is done: the prepack script (which builds into the repository's dist/) is not run.
  const [packed] = JSON.parse(exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: pkg })) as Array<{ filename: string }>
  return join(work, packed.filename)
}

/** A new project in the temporary folder with `specs` installed (`npm install --prefer-offline`); its path. */
export function installProject(specs: string[]): string {
  const project = mkdtempSync(join(tmpdir(), 'esof-project-'))
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'my-smart-app', version: '1.0.0', private: true }, null, 2))
  mkdirSync(join(project, 'node_modules'))
  exec('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...specs], { cwd: project })
  return project
}
