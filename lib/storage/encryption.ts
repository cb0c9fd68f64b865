import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { SmartError } from '../errors'

const VERSION = 'v1'

/** Encrypts a JSON value with AES-256-GCM; the result is `v1.<iv>.<tag>.<ciphertext>` in base64url. */
export function seal(key: Buffer, value: unknown): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()])
  return [VERSION, iv, cipher.getAuthTag(), body].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.')
}

/** Decrypts what `seal` produced. A wrong key or tampered value is `SESSION_EXPIRED`: the session cannot be used. */
export function unseal(key: Buffer, sealed: string): unknown {
  const [version, iv, tag, body] = sealed.split('.')
  try {
    if (version !== VERSION || !iv || !tag || body === undefined) throw new Error('unknown format')
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'))
    decipher.setAuthTag(Buffer.from(tag, 'base64url'))
    const plain = Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()])
    return JSON.parse(plain.toString('utf8'))
  } catch (err) {
    throw new SmartError('SESSION_EXPIRED', 'Stored tokens could not be decrypted (was encryptionKey changed?); launch again', { cause: err })
  }
}
