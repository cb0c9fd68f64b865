// Every relative link of README.md and docs/*.md reaches a file of the repository, and its #anchor a heading there.
import { existsSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import { anchors, documents, prose, ROOT } from '../helpers/docs'

function links(doc: string): string[] {
  return [...prose(doc).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?: "[^"]*")?\)/g)].map((m) => m[1]).filter((target) => !/^[a-z]+:/i.test(target))
}

it('the README and the manual link to each other', () => {
  expect(links('README.md')).toEqual(expect.arrayContaining(documents().filter((doc) => doc.startsWith('docs/') && doc !== 'docs/README.md')))
  expect(links('docs/README.md')).toEqual(expect.arrayContaining(['testing.md', 'security.md', 'storage.md', 'ehr-notes.md']))
})

it.each(documents())('every relative link of %s points at an existing file and heading', (doc) => {
  const broken: string[] = []
  for (const target of links(doc)) {
    const [path, anchor] = target.split('#') as [string, string | undefined]
    const file = path === '' ? doc : normalize(relative(ROOT, join(ROOT, dirname(doc), decodeURIComponent(path))))
    if (!existsSync(join(ROOT, file))) broken.push(`${target}: no file ${file}`)
    else if (anchor !== undefined && file.endsWith('.md') && !anchors(file).has(anchor)) broken.push(`${target}: no heading #${anchor} in ${file}`)
  }
  expect(broken).toEqual([])
})
