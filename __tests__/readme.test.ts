// The README is the user's manual: every TypeScript snippet in it must compile against the package's
// real types (strict), and every public export must carry TSDoc with an example.
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'

const root = join(__dirname, '..')
const run = promisify(execFile)

function snippets(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1])
}

it('the README has TypeScript snippets for the quick start, storage, logging, standalone launch and testing', () => {
  const all = snippets().join('\n')
  expect(snippets().length).toBeGreaterThanOrEqual(7)
  for (const name of ['smartLaunch(', 'smartLogin(', 'createCluster(', 'logger:', 'launchAs(', 'loginAs(', 'new SmartClient(']) expect(all).toContain(name)
})

it('every TypeScript snippet of the README type-checks (strict) against the package', async () => {
  const dir = join(root, '.cache', 'readme-snippets')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const files = snippets().map((code, i) => {
    const file = `snippet-${i + 1}.ts`
    // Each snippet is a module of its own (several declare `app` or export the same names).
    writeFileSync(join(dir, file), `${code}\nexport {}\n`)
    return file
  })
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: 'ES2022', module: 'preserve', moduleResolution: 'bundler', esModuleInterop: true,
      skipLibCheck: true, types: ['node', 'jest'],
      paths: {
        'express-smart-on-fhir': [join(root, 'lib/index.ts')],
        'express-smart-on-fhir/testing': [join(root, 'lib/testing/index.ts')],
      },
    },
    // The package's own declaration of its ESM-only peer, as its build uses it.
    files: [...files, join(root, 'lib/testing/oidc-provider.d.ts')],
  }))
  const tsc = join(root, 'node_modules', '.bin', 'tsc')
  const result = await run(tsc, ['-p', join(dir, 'tsconfig.json')], { cwd: dir }).then(() => '', (err: { stdout?: string }) => err.stdout ?? String(err))
  expect(result).toBe('')
}, 60_000)

/** The doc comment right before `name`'s declaration in `file`, following `export { … } from` re-exports. */
function docOf(file: string, name: string, depth = 0): string | null {
  const text = readFileSync(file, 'utf8')
  const declared = text.match(new RegExp(`(/\\*\\*(?:(?!\\*/)[\\s\\S])*\\*/)\\s*export (?:declare )?(?:async )?(?:function|class|const|interface|type|let) ${name}\\b`))
  if (declared) return declared[1]
  for (const m of text.matchAll(/export (?:type )?\{([^}]+)\} from '([^']+)'/g)) {
    const names = m[1].split(',').map((s) => s.trim().replace(/^type /, ''))
    if (names.includes(name) && depth < 4) return docOf(resolveModule(file, m[2]), name, depth + 1)
  }
  return null
}

function resolveModule(from: string, spec: string): string {
  const base = join(dirname(from), spec)
  return existsSync(`${base}.ts`) ? `${base}.ts` : join(base, 'index.ts')
}

it.each(['lib/index.ts', 'lib/testing/index.ts'])('every export of %s has TSDoc with an @example', (entry) => {
  const file = join(root, entry)
  const exported = [...readFileSync(file, 'utf8').matchAll(/export (?:type )?\{([^}]+)\} from '[^']+'/g)]
    .flatMap((m) => m[1].split(',').map((s) => s.trim().replace(/^type /, '')).filter(Boolean))
  expect(exported.length).toBeGreaterThan(5)
  const missing = exported.filter((name) => !docOf(file, name)?.includes('@example'))
  expect(missing).toEqual([])
})
