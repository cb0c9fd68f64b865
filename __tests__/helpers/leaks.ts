import { inspect } from 'node:util'
import * as stdSerializers from 'pino-std-serializers'

/** Everything a log line could show of an error: util.inspect with hidden fields, and pino's error serializers. */
export function shownError(err: unknown): string {
  return [
    inspect(err, { depth: null, showHidden: true }),
    JSON.stringify(stdSerializers.err(err as Error)),
    JSON.stringify(stdSerializers.errWithCause(err as Error)),
  ].join('\n')
}

/** Asserts that none of `secrets` (tokens, codes, verifiers, client secrets, keys) appears in what `err` shows. */
export function expectNoSecretIn(err: unknown, secrets: Iterable<string>): void {
  const shown = shownError(err)
  for (const secret of secrets) {
    if (shown.includes(secret)) throw new Error(`a secret (${secret.slice(0, 6)}…, ${secret.length} chars) is shown by the error:\n${shown}`)
  }
}
