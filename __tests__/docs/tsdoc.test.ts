// Every public export carries TSDoc with an @example: the API's reference lives beside the code, and the manual
// (README.md, docs/) links to it by name.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ROOT as root } from '../helpers/docs'

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
