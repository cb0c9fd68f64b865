// The manual as the tests read it: README.md and docs/*.md (docs/testing.md is checked by its own tests), their
// fenced code blocks, the blocks marked `<!-- <kind> file=<name> -->` (the quick start, the Redis snippets),
// and GitHub's heading anchors.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export const ROOT = join(__dirname, '..', '..')

/** Repository-relative paths of the documents whose snippets and links the docs tests check. */
export function documents(): string[] {
  const docs = readdirSync(join(ROOT, 'docs')).filter((file) => file.endsWith('.md') && file !== 'testing.md').sort()
  return ['README.md', ...docs.map((file) => `docs/${file}`)]
}

export function readDocument(doc: string): string {
  return readFileSync(join(ROOT, doc), 'utf8')
}

/** The bodies of the fenced blocks of `lang` (```ts, ```js, …) in `doc`. */
export function codeBlocks(doc: string, lang: string): string[] {
  return [...readDocument(doc).matchAll(new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```', 'gm'))].map((m) => m[1])
}

/** The fenced block right after `<!-- <kind> file=<file> -->` in `doc`, verbatim; throws when there is none. */
export function markedBlock(doc: string, kind: string, file: string): string {
  const marker = `<!-- ${kind} file=${file} -->`
  const match = new RegExp(`^${escapeRegExp(marker)}\\n\`\`\`\\w*\\n([\\s\\S]*?)^\`\`\``, 'm').exec(readDocument(doc))
  if (!match) throw new Error(`${doc} has no fenced block right after ${marker}`)
  return match[1]
}

/** The text of `doc` without its fenced blocks (links in code are not links). */
export function prose(doc: string): string {
  return readDocument(doc).replace(/^```[\s\S]*?^```/gm, '')
}

/** GitHub's anchors of the headings of `doc` (github-slugger: lower case, punctuation dropped, spaces to dashes, -1 -2 for repeats). */
export function anchors(doc: string): Set<string> {
  const seen = new Map<string, number>()
  const result = new Set<string>()
  for (const [, heading] of prose(doc).matchAll(/^#{1,6} +(.+?) *#* *$/gm)) {
    const base = heading.toLowerCase().replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '').replace(/ /g, '-')
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    result.add(count === 0 ? base : `${base}-${count}`)
  }
  return result
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
