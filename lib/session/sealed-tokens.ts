import { SmartError } from '../errors'
import { seal, unseal } from '../storage/encryption'
import type { LaunchRecord, TokenSet } from '../storage/records'

/**
 * The AAD of a launch's sealed tokens: its launch id, which moves with it when the session id is regenerated.
 * Sealed tokens copied into any other launch record do not decrypt.
 */
const sealedFor = (launchId: string) => `launch:${launchId}`

/**
 * Tokens unsealed from a stored record object, for as long as that object lives: requests served from this
 * process's copy of a session record decrypt its tokens once, not on every request.
 */
const unsealed = new WeakMap<object, { keys: readonly Buffer[]; launchId: string; tokens: TokenSet }>()

/** A stored launch's tokens, unsealed with `encryptionKeys` when they were sealed at rest. */
export function tokensOf(encryptionKeys: readonly Buffer[], launch: LaunchRecord): TokenSet {
  const { tokens } = launch
  if ('sealed' in tokens) {
    if (encryptionKeys.length === 0) throw new SmartError('SESSION_EXPIRED', 'Stored tokens are encrypted but no encryptionKey is set; launch again')
    const kept = unsealed.get(tokens)
    if (kept !== undefined && kept.keys === encryptionKeys && kept.launchId === launch.id) return kept.tokens
    const opened = unseal(encryptionKeys, tokens.sealed, sealedFor(launch.id)) as TokenSet
    unsealed.set(tokens, { keys: encryptionKeys, launchId: launch.id, tokens: opened })
    return opened
  }
  return tokens
}

/** The tokens of launch `launchId` as stored: sealed (AES-256-GCM) when an encryption key is set. */
export function sealTokens(encryptionKeys: readonly Buffer[], launchId: string, tokens: TokenSet): LaunchRecord['tokens'] {
  return encryptionKeys.length > 0 ? { sealed: seal(encryptionKeys, tokens, sealedFor(launchId)) } : tokens
}
