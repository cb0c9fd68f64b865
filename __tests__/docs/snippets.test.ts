// The manual's TypeScript is the user's TypeScript: every ```ts snippet of README.md and docs/*.md (docs/testing.md
// has tests of its own) must compile, strict, under module/moduleResolution nodenext — as an ES module (.mts) and
// as a CommonJS module (.cts), the two kinds of file a user's project compiles them as.
import { execFile } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { codeBlocks, documents, ROOT } from '../helpers/docs'

const run = promisify(execFile)

function snippets(): Array<{ doc: string; index: number; code: string }> {
  return documents().flatMap((doc) => codeBlocks(doc, 'ts').map((code, i) => ({ doc, index: i + 1, code })))
}

it('the manual has TypeScript snippets for the launch, storage, logging, standalone launch, the mock EHR and SmartClient', () => {
  const all = snippets().map((s) => s.code).join('\n')
  expect(snippets().length).toBeGreaterThanOrEqual(10)
  for (const name of ['smartLaunch(', 'smartLogin(', 'createClient(', 'createCluster(', 'logger:', 'launchAs(', 'loginAs(', 'new SmartClient(', "from 'fhir/r4.js'"]) {
    expect(all).toContain(name)
  }
})

it('no snippet imports the FHIR types in a way nodenext cannot resolve', () => {
  const bad = snippets().filter((s) => /from 'fhir\/r[2-5]b?'/.test(s.code)).map((s) => `${s.doc} #${s.index}`)
  expect(bad).toEqual([])
})

it('every TypeScript snippet type-checks (strict, nodenext) as ESM and as CommonJS', async () => {
  const dir = join(ROOT, '.cache', 'docs-snippets')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const files = snippets().flatMap(({ doc, index, code }) => {
    const base = `${doc.replace(/\W+/g, '-')}-${index}`
    // Each snippet is a module of its own (several declare `app` or export the same names).
    return ['mts', 'cts'].map((ext) => {
      writeFileSync(join(dir, `${base}.${ext}`), `${code}\nexport {}\n`)
      return `${base}.${ext}`
    })
  })
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', esModuleInterop: true,
      skipLibCheck: true, types: ['node', 'jest'],
      paths: {
        'express-smart-on-fhir': [join(ROOT, 'lib/index.ts')],
        'express-smart-on-fhir/testing': [join(ROOT, 'lib/testing/index.ts')],
      },
    },
    // The package's own declaration of its ESM-only peer, as its build uses it.
    files: [...files, join(ROOT, 'lib/testing/oidc-provider.d.ts')],
  }))
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc')
  const result = await run(tsc, ['-p', join(dir, 'tsconfig.json')], { cwd: dir }).then(() => '', (err: { stdout?: string }) => err.stdout ?? String(err))
  expect(result).toBe('')
}, 120_000)
