// Builds the package: `npm run build` (and the prepack script). `node -r esbuild-register scripts/build.ts [--outDir dir]`
//  1. tsc (tsconfig.build.json) compiles lib/ into dist/: CommonJS .js and .d.ts, file for file. This is what
//     Node loads, by `require` and by `import` alike (package.json `exports`: the `module-sync` and `default`
//     conditions). Node >= 22.12 can require() the ESM-only dependencies (openid-client, jose, oauth4webapi,
//     oidc-provider) by itself.
//  2. esbuild bundles each entry point of that build into one CommonJS file under dist/cjs/, with the ESM-only
//     packages inlined: `dist/cjs/index.js` and `dist/cjs/testing/index.js`. Only tools that resolve the
//     `require` condition without `module-sync` get them: Jest's module loader, which cannot require() ESM
//     (docs/testing.md). Plain Node never loads them, so inside Node there is one copy of the package.
// What stays external (required at run time, from the user's node_modules): Node's built-ins, and the packages
// in EXTERNAL below (CommonJS packages the user installs: our peers and our CommonJS dependency). The build
// fails if a bundle would require anything else at run time.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { dirname, join, relative, resolve } from 'node:path'
import { build, type Metafile, type Plugin } from 'esbuild'

const root = join(__dirname, '..')
const outFlag = process.argv.indexOf('--outDir')
const outDir = resolve(root, outFlag > 0 ? process.argv[outFlag + 1] : 'dist')

/** Imported by our code and left for Node to require at run time: CommonJS, installed beside the package. */
const EXTERNAL = ['express', 'express-session', 'supertest', '@opentelemetry/api']

/** Each bundle: the tsc build's entry file, and the ESM-only packages our code imports that it inlines. */
const BUNDLES = [
  { entry: 'index.js', inline: ['openid-client', 'jose', 'oauth4webapi'] },
  // oidc-provider brings koa, debug and their dependencies: those are inlined as well (imports from inside an
  // inlined package always are: they are its dependencies, not ours, and need not resolve from here).
  { entry: 'testing/index.js', inline: ['oidc-provider', 'jose'] },
]

function packageName(specifier: string): string {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]
}

function isBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0])
}

/** Bare imports from our build are external unless listed in `inline`; imports from inside node_modules are inlined. */
function inlineOnly(inline: string[]): Plugin {
  return {
    name: 'inline-only',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        if (isBuiltin(args.path)) return { path: args.path, external: true }
        if (args.importer.includes('/node_modules/')) return undefined
        if (inline.includes(packageName(args.path))) return undefined
        return { path: args.path, external: true }
      })
    },
  }
}

/** The inlined packages' licence texts (MIT, ISC, ...): their notices travel with the copy of their code. */
function licences(metafile: Metafile): string {
  const packages = new Map<string, string>()
  for (const input of Object.keys(metafile.inputs)) {
    const match = /^(.*node_modules\/((?:@[^/]+\/)?[^/]+))\//.exec(input)
    if (!match || packages.has(match[1])) continue
    const dir = resolve(root, match[1])
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; version: string; license?: string }
    const file = ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'license', 'license.md', 'LICENCE'].map((name) => join(dir, name)).find(existsSync)
    const text = file ? readFileSync(file, 'utf8').trim() : `License: ${manifest.license ?? 'see the package'}`
    packages.set(match[1], `${manifest.name}@${manifest.version}\n\n${text.replaceAll('*/', '* /')}`)
  }
  const names = [...packages.values()].sort()
  return `\n/*! Bundled third-party packages and their licences:\n\n${names.join('\n\n----\n\n')}\n*/\n`
}

async function bundle(entry: string, inline: string[]): Promise<void> {
  const outfile = join(outDir, 'cjs', entry)
  const result = await build({
    entryPoints: [join(outDir, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    plugins: [inlineOnly(inline)],
    // The packages to inline are this repository's, wherever --outDir puts the build (a temporary folder too).
    nodePaths: [join(root, 'node_modules')],
    metafile: true,
    write: false,
    logLevel: 'warning',
    legalComments: 'none',   // replaced by the licence texts of every inlined package, at the end of the file
  })
  const externals = new Set<string>()
  for (const input of Object.values(result.metafile.inputs)) {
    for (const imported of input.imports) if (imported.external && !isBuiltin(imported.path)) externals.add(packageName(imported.path))
  }
  const unexpected = [...externals].filter((name) => !EXTERNAL.includes(name))
  if (unexpected.length > 0) throw new Error(`${relative(root, outfile)} would require ${unexpected.join(', ')} at run time; inline or allow them in scripts/build.ts`)
  const [output] = result.outputFiles
  mkdirSync(dirname(outfile), { recursive: true })
  writeFileSync(outfile, `// Generated by scripts/build.ts: ${entry} with ${inline.join(', ')} inlined, for Jest (docs/testing.md).\n${output.text}${licences(result.metafile)}`)
}

async function main(): Promise<void> {
  rmSync(outDir, { recursive: true, force: true })
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'tsconfig.build.json'), '--outDir', outDir], { stdio: 'inherit' })
  for (const { entry, inline } of BUNDLES) await bundle(entry, inline)
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error)
  process.exitCode = 1
})
