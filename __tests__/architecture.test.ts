import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, posix, relative, sep } from 'node:path'

// The layout of STYLE.md ("Layout that shows the architecture"), checked on every import of lib/: data flows
// one way, middleware → client → session/fhir → oauth → storage, and config.ts, errors.ts, observe.ts (the
// files at lib/'s top) are leaves every layer may use. A file may import its own layer and any layer below it;
// never one above, never one beside it (but for the exceptions below), never in a circle. lib/testing (the
// mock EHR of the `/testing` entry point) stands apart: it imports nothing of lib/ outside itself, and nothing
// outside it imports it. Type-only imports count: they tie the design together as much as any other.

const LIB = join(__dirname, '..', 'lib')
const MAX_LINES = 300

type Layer = 'index' | 'middleware' | 'client' | 'session' | 'fhir' | 'oauth' | 'storage' | 'leaf' | 'testing'

/** Higher imports lower. session and fhir share a rank: neither may import the other, but for SIDEWAYS. */
const RANK: Record<Exclude<Layer, 'testing'>, number> = { index: 6, middleware: 5, client: 4, session: 3, fhir: 3, oauth: 2, storage: 1, leaf: 0 }
const FOLDERS = new Set<Layer>(['middleware', 'client', 'session', 'fhir', 'oauth', 'storage', 'testing'])

/** Imports allowed between layers of one rank: a file of `from` may import the file `to`, for the reason given. */
const SIDEWAYS: { from: Layer; to: string; why: string }[] = [
  // Launch identity refuses a token response's patient id that is no FHIR id: the syntax is the FHIR layer's.
  { from: 'session', to: 'fhir/fhir-ids.ts', why: 'launch identity checks patient ids against the FHIR id syntax' },
]

/** A file's layer from its path under lib/ (posix): its folder, `index` for lib/index.ts, `leaf` for the others at the top. */
function layerOf(file: string): Layer | null {
  if (file === 'index.ts') return 'index'
  if (!file.includes('/')) return 'leaf'
  const folder = file.slice(0, file.indexOf('/')) as Layer
  return FOLDERS.has(folder) ? folder : null
}

/** The relative specifiers a source imports: `from '…'` (imports and re-exports), `import '…'`, `import('…')`, `require('…')`. */
function relativeImportsOf(source: string): string[] {
  const specifiers: string[] = []
  for (const match of source.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/gm)) specifiers.push(match[1])
  for (const match of source.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) specifiers.push(match[1])
  // Calls only in code: not in `//` comments nor in TSDoc lines (` * …`).
  const code = source.split('\n').filter((line) => !/^\s*(\/\/|\*|\/\*)/.test(line)).join('\n')
  for (const match of code.matchAll(/\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) specifiers.push(match[1])
  return specifiers.filter((specifier) => specifier.startsWith('./') || specifier.startsWith('../'))
}

/** The file under lib/ that `specifier`, imported by `from`, names; null when there is none. */
function resolveImport(from: string, specifier: string, exists: (file: string) => boolean): string | null {
  const base = posix.normalize(posix.join(posix.dirname(from), specifier))
  return [`${base}.ts`, `${base}.d.ts`, `${base}/index.ts`, base].find(exists) ?? null
}

/** What is wrong with `from` importing `to` (files under lib/), or null when the layers allow it. */
function layerProblem(from: string, to: string): string | null {
  const source = layerOf(from)
  const target = layerOf(to)
  if (source === null) return `${from} is in no layer of lib/ (add its folder to this test)`
  if (target === null) return `${from} imports ${to}, which is in no layer of lib/ (add its folder to this test)`
  if (source === 'testing' || target === 'testing') {
    if (source === target) return null
    return source === 'testing' ? `${from} imports ${to}: lib/testing imports nothing of lib/ outside itself` : `${from} imports ${to}: nothing outside lib/testing imports it`
  }
  if (source === target || RANK[target] < RANK[source]) return null
  if (SIDEWAYS.some((allowed) => allowed.from === source && allowed.to === to)) return null
  return `${from} imports ${to}: ${target} is ${RANK[target] > RANK[source] ? 'above' : 'beside'} ${source}`
}

/** Every circle of imports between files, each as the files along it (the first repeated at the end). */
function cyclesOf(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (file: string): void => {
    state.set(file, 'open')
    path.push(file)
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') cycles.push([...path.slice(path.indexOf(next)), next])
      else if (!state.has(next)) visit(next)
    }
    path.pop()
    state.set(file, 'done')
  }
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file)
  return cycles
}

function libFiles(dir = LIB): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return libFiles(path)
    return name.endsWith('.ts') ? [relative(LIB, path).split(sep).join('/')] : []
  })
}

const lineCount = (source: string): number => source.split('\n').length - (source.endsWith('\n') ? 1 : 0)

const files = libFiles()
const sources = new Map(files.map((file) => [file, readFileSync(join(LIB, file), 'utf8')]))
const unresolved: string[] = []
const graph = new Map(files.map((file) => [file, relativeImportsOf(sources.get(file)!).flatMap((specifier) => {
  const target = resolveImport(file, specifier, (candidate) => existsSync(join(LIB, candidate)) && statSync(join(LIB, candidate)).isFile())
  if (target === null) unresolved.push(`${file} imports '${specifier}', which is no file of lib/`)
  return target === null ? [] : [target]
})]))

describe('the architecture of lib/', () => {
  it('reads the imports of every file', () => {
    expect(files.length).toBeGreaterThan(50)
    expect(graph.get('index.ts')).toContain('client/SmartClient.ts')
    expect(graph.get('testing/index.ts')).toContain('testing/peers.ts')
    expect(unresolved).toEqual([])
  })

  it('no import points up a layer, or sideways where not allowed', () => {
    const problems = [...graph].flatMap(([from, targets]) => targets.map((to) => layerProblem(from, to)).filter((problem) => problem !== null))
    expect(problems).toEqual([])
  })

  it('no import circle between files', () => {
    expect(cyclesOf(graph).map((cycle) => cycle.join(' → '))).toEqual([])
  })

  it(`no file is over ${MAX_LINES} lines`, () => {
    const long = files.filter((file) => lineCount(sources.get(file)!) > MAX_LINES).map((file) => `${file}: ${lineCount(sources.get(file)!)} lines`)
    expect(long).toEqual([])
  })
})

describe('the checks can fail', () => {
  it('finds the imports of every form, and none in comments', () => {
    const source = [
      "import { a } from './a'",
      "import type {\n  B,\n} from '../b/b'",
      "export { c } from './c'",
      "import './d'",
      "const e = require('./e')",
      "void import('./f')",
      "import x from 'express'",
      "// const g = require('./g')",
      " * await import('./h')",
    ].join('\n')
    expect(relativeImportsOf(source).sort()).toEqual(['../b/b', './a', './c', './d', './e', './f'])
  })

  it('names an import up a layer, beside one, into or out of lib/testing, or into no layer', () => {
    expect(layerProblem('storage/lock.ts', 'client/runtime.ts')).toBe('storage/lock.ts imports client/runtime.ts: client is above storage')
    expect(layerProblem('fhir/fhir-cache.ts', 'session/session-state.ts')).toBe('fhir/fhir-cache.ts imports session/session-state.ts: session is beside fhir')
    expect(layerProblem('session/pending-launch.ts', 'fhir/fhir-api.ts')).toMatch(/fhir is beside session/)
    expect(layerProblem('errors.ts', 'oauth/http.ts')).toMatch(/oauth is above leaf/)
    expect(layerProblem('testing/mock-ehr.ts', 'errors.ts')).toMatch(/lib\/testing imports nothing of lib\/ outside itself/)
    expect(layerProblem('index.ts', 'testing/index.ts')).toMatch(/nothing outside lib\/testing imports it/)
    expect(layerProblem('extras/x.ts', 'errors.ts')).toMatch(/in no layer/)
  })

  it('lets a layer import itself and the layers below, and session the FHIR id syntax', () => {
    for (const [from, to] of [
      ['middleware/options.ts', 'storage/express-session.ts'], ['client/SmartClient.ts', 'fhir/ReadyClient.ts'],
      ['session/launch-identity.ts', 'fhir/fhir-ids.ts'], ['oauth/discovery.ts', 'errors.ts'], ['observe.ts', 'config.ts'],
      ['testing/mock-ehr.ts', 'testing/faults.ts'],
    ]) expect(layerProblem(from, to)).toBeNull()
  })

  it('finds a circle of imports', () => {
    const looped = new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']], ['d.ts', ['a.ts']]])
    expect(cyclesOf(looped)).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']])
    expect(cyclesOf(new Map([['a.ts', ['b.ts']], ['b.ts', []]]))).toEqual([])
  })
})
