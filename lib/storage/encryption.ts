import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { SmartError } from '../errors'

/** v2: AES-256-GCM, 12-byte IV, 16-byte tag, bound to its place in the storage by AAD. */
const VERSION = 'v2'
const IV_BYTES = 12
// Pinned: GCM accepts shorter tags, and a 4-byte prefix of the right tag would otherwise verify.
const TAG_BYTES = 16

/**
 * Encrypts a JSON value with the first of `keys` (AES-256-GCM); the result is
 * `v2.<iv>.<tag>.<ciphertext>` in base64url. `aad` names where the value is stored: the same value read
 * back from anywhere else does not decrypt.
 */
export function seal(keys: readonly Buffer[], value: unknown, aad: string): string {
  const [key] = keys
  if (!key) throw new TypeError('seal: no encryption key')
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(aad, 'utf8'))
  const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()])
  return [VERSION, ...[iv, cipher.getAuthTag(), body].map((part) => part.toString('base64url'))].join('.')
}

function open(key: Buffer, iv: Buffer, tag: Buffer, body: Buffer, aad: string): unknown {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
    decipher.setAAD(Buffer.from(aad, 'utf8'))
    decipher.setAuthTag(tag)
    return JSON.parse(Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8'))
  } catch {
    return undefined
  }
}

/**
 * Decrypts what `seal` produced under the same `aad`, with whichever of `keys` sealed it (key rotation:
 * a new key first, the old ones after it). A wrong key, another `aad` or a tampered value is
 * `SESSION_EXPIRED`: the session cannot be used. The error carries nothing of the value or the keys.
 */
export function unseal(keys: readonly Buffer[], sealed: string, aad: string): unknown {
  const [version, iv, tag, body, extra] = typeof sealed === 'string' ? sealed.split('.') : []
  const parts = version === VERSION && extra === undefined && body !== undefined ? [iv, tag, body].map((part) => Buffer.from(part, 'base64url')) : null
  if (parts && parts[0].length === IV_BYTES && parts[1].length === TAG_BYTES) {
    for (const key of keys) {
      const value = open(key, parts[0], parts[1], parts[2], aad)
      if (value !== undefined) return value
    }
  }
  throw new SmartError('SESSION_EXPIRED', 'Stored tokens could not be decrypted (was encryptionKey changed?); launch again')
}
