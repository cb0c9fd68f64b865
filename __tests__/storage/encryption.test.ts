import { SmartClient, type SmartClientOptions, type SmartStorage } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { secretRecordingFetch } from '../helpers/app'
import { expectNoSecretIn } from '../helpers/leaks'
import { completeLaunch, devOptions, openConfig } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

/** The app's storage, open to the test like a store is to someone with write access to it. */
const entries = new Map<string, unknown>()
const storage: SmartStorage = {
  get: async (key) => structuredClone(entries.get(key)),
  set: async (key, value) => void entries.set(key, structuredClone(value)),
  delete: async (key) => void entries.delete(key),
}

const oldKey = Buffer.alloc(32, 1).toString('base64')
const newKey = Buffer.alloc(32, 2).toString('base64')
const otherKey = Buffer.alloc(32, 3).toString('base64')
const context = { patient: 'patient-1' }
let n = 0
const nextSession = () => `enc-${++n}`

const client = (sessionId: string, encryptionKey: SmartClientOptions['encryptionKey'], fetchFn?: typeof fetch) =>
  new SmartClient(sessionId, storage, openConfig(), { ...devOptions, encryptionKey, ...(fetchFn ? { fetch: fetchFn } : {}) })

/** The stored record of a session that holds sealed tokens, and the sealed string in it. */
function sealedOf(sessionId: string): { key: string; record: { launches: Record<string, { tokens: { sealed: string } }> }; sealed: string } {
  const [key, record] = [...entries].find(([k, v]) => k.includes(sessionId) && JSON.stringify(v).includes('"sealed"'))! as [string, never]
  const sealed = Object.values((record as { launches: Record<string, { tokens: { sealed: string } }> }).launches)[0].tokens.sealed
  return { key, record, sealed }
}

function withSealed(record: ReturnType<typeof sealedOf>['record'], sealed: string) {
  const [launchKey, launch] = Object.entries(record.launches)[0]
  return { ...record, launches: { [launchKey]: { ...launch, tokens: { sealed } } } }
}

describe('S29 tokens encrypted at rest', () => {
  it('S29 key rotation: tokens sealed with the old key are read once a new key is put first, and re-sealed with the new key', async () => {
    const session = nextSession()
    await completeLaunch(ehr, context, client(session, oldKey))
    await expect(client(session, [newKey, oldKey]).ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    await client(session, [newKey, oldKey]).refresh()
    await expect(client(session, [newKey]).ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
    await expect(client(session, oldKey).ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED' })
  })

  it('S29 sealed tokens read without any encryptionKey are SESSION_EXPIRED, saying the key is missing; plain tokens read with one still work', async () => {
    const sealed = nextSession()
    await completeLaunch(ehr, context, client(sealed, oldKey))
    await expect(client(sealed, undefined).ready()).rejects.toMatchObject({
      code: 'SESSION_EXPIRED', status: 401, message: 'Stored tokens are encrypted but no encryptionKey is set; launch again',
    })
    const plain = nextSession()
    await completeLaunch(ehr, context, client(plain, undefined))
    await expect(client(plain, oldKey).ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
  })

  it('S29 a wrong key is SESSION_EXPIRED, and the error holds no token, plaintext or key', async () => {
    const session = nextSession()
    const recorder = secretRecordingFetch()
    await completeLaunch(ehr, context, client(session, oldKey, recorder.fetch))
    const err = await client(session, [otherKey]).ready().catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'SESSION_EXPIRED', status: 401 })
    expect(recorder.secrets.size).toBeGreaterThan(0)
    expectNoSecretIn(err, [...recorder.secrets, oldKey, otherKey, sealedOf(session).sealed, 'accessToken', 'refreshToken'])
  })

  it('S29 sealed tokens copied to another session (AAD) are refused', async () => {
    const victim = nextSession()
    const attacker = nextSession()
    await completeLaunch(ehr, context, client(victim, oldKey))
    await completeLaunch(ehr, { patient: 'patient-2' }, client(attacker, oldKey))
    const stolen = sealedOf(victim).sealed
    const own = sealedOf(attacker)
    entries.set(own.key, withSealed(own.record, stolen))
    await expect(client(attacker, oldKey).ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED' })
  })

  it.each([
    ['truncated to 12 bytes', (tag: Buffer) => tag.subarray(0, 12)],
    ['truncated to 4 bytes', (tag: Buffer) => tag.subarray(0, 4)],
    ['with one bit flipped', (tag: Buffer) => Buffer.from(tag.map((byte, i) => (i === 0 ? byte ^ 1 : byte)))],
  ])('S29 a GCM tag %s is refused', async (_name, tamper) => {
    const session = nextSession()
    await completeLaunch(ehr, context, client(session, oldKey))
    const { key, record, sealed } = sealedOf(session)
    const parts = sealed.split('.')
    parts[2] = tamper(Buffer.from(parts[2], 'base64url')).toString('base64url')
    entries.set(key, withSealed(record, parts.join('.')))
    await expect(client(session, oldKey).ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED' })
  })

  it.each([
    ['not a string', (): unknown => 12345],
    ['without its ciphertext', (sealed: string) => sealed.split('.').slice(0, 3).join('.')],
    ['with a part appended', (sealed: string) => `${sealed}.AAAA`],
    ['under another version', (sealed: string) => sealed.replace(/^v2\./, 'v1.')],
    ['empty', () => ''],
  ])('S29 a sealed value %s is SESSION_EXPIRED (fail closed), never a TypeError or the tokens', async (_name, tamper) => {
    const session = nextSession()
    await completeLaunch(ehr, context, client(session, oldKey))
    const { key, record, sealed } = sealedOf(session)
    entries.set(key, withSealed(record, tamper(sealed) as string))
    await expect(client(session, oldKey).ready()).rejects.toMatchObject({
      code: 'SESSION_EXPIRED',
      status: 401,
      message: expect.stringMatching(/could not be decrypted \(was encryptionKey changed\?\)/),
    })
  })

  it('S29 an empty array of keys is a TypeError naming encryptionKey; a bad key names its index', () => {
    expect(() => client(nextSession(), [])).toThrow(/options\.encryptionKey/)
    expect(() => client(nextSession(), [newKey, 'short'])).toThrow(/options\.encryptionKey\[1\]/)
    expect(() => client(nextSession(), [newKey, 'short'])).not.toThrow(new RegExp(newKey.slice(0, 8)))
  })
})
