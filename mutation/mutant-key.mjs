// The key of a mutant, the same from Stryker's instrumenter, from its runner options and from its report
// (once the report's 1-based positions are made 0-based): its file from `lib/`, start, mutator and replacement.
export function mutantKey(fileName, mutatorName, replacement, start) {
  const file = fileName.slice(fileName.lastIndexOf('/lib/') + 1)
  return `${file}:${start.line}:${start.column} ${mutatorName} ${replacement}`
}
