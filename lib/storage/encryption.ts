import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { SmartError } from '../errors'

/** v2: AES-256-GCM, 12-byte IV, 16-byte tag, bound to its place in the storage by AAD. */
const VERSION = 'v2'
const IV_BYTES = 12
// Pinned: GCM accepts shorter tags, and a 4-byte prefix of the right tag would otherwise verify.
const TAG_BYTES = 16

/**
 * Encrypts a JSON value with the first of `keys` (AES-256-GCM, whose tag is 16 bytes); the result is
 * `v2.<iv>.<tag>.<ciphertext>` in base64url. `aad` names where the value is stored: the same value read
 * back from anywhere else does not decrypt.
 */
export function seal(keys: readonly Buffer[], value: unknown, aad: string): string {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', keys[0], iv)
  cipher.setAAD(Buffer.from(aad))
  const body = Buffer.concat([cipher.update(JSON.stringify(value)), cipher.final()])
  return [VERSION, ...[iv, cipher.getAuthTag(), body].map((part) => part.toString('base64url'))].join('.')
}

/** The value, or a throw: a wrong key, another `aad`, a tampered part or a tag of any other length. */
function open(key: Buffer, [iv, tag, body]: Buffer[], aad: string): unknown {
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  decipher.setAAD(Buffer.from(aad))
  decipher.setAuthTag(tag)
  return JSON.parse(Buffer.concat([decipher.update(body), decipher.final()]).toString())
}

/**
 * Decrypts what `seal` produced under the same `aad`, with whichever of `keys` sealed it (key rotation:
 * a new key first, the old ones after it). Anything else — a wrong key, another `aad`, a tampered or
 * malformed value, one that is not a string — is `SESSION_EXPIRED`: the session cannot be used. The error
 * carries nothing of the value or the keys.
 */
export function unseal(keys: readonly Buffer[], sealed: unknown, aad: string): unknown {
  const fields = typeof sealed === 'string' ? sealed.split('.') : null
  if (fields?.length === 4 && fields[0] === VERSION) {
    const parts = fields.slice(1).map((field) => Buffer.from(field, 'base64url'))
    for (const key of keys) {
      try {
        return open(key, parts, aad)
      } catch {
        // Not sealed with this key (or not at all): the next key, then the refusal below.
      }
    }
  }
  throw new SmartError('SESSION_EXPIRED', 'Stored tokens could not be decrypted (was encryptionKey changed?); launch again')
}
