import type { ResolvedConfig } from '../config'
import { SmartError } from '../errors'
import { seal, unseal } from '../storage/encryption'
import { withStorageLock } from '../storage/lock'
import { keys, readSessionRecord, type LaunchRecord, type SessionRecord, type TokenSet } from '../storage/records'
import type { SmartStorage } from '../storage/SmartStorage'

/**
 * One browser session's completed launches in the storage: read in one call (the hot path), changed
 * only under the session's lock, tokens sealed at rest when an encryption key is set.
 */
export class SessionState {
  constructor(
    private readonly storage: SmartStorage,
    private readonly config: ResolvedConfig,
    readonly sessionId: string,
  ) {}

  read(): Promise<SessionRecord | null> {
    return this.storage.get(keys.session(this.sessionId)).then(readSessionRecord)
  }

  tokensOf(launch: LaunchRecord): TokenSet {
    const { tokens } = launch
    if ('sealed' in tokens) {
      if (this.config.encryptionKeys.length === 0) throw new SmartError('SESSION_EXPIRED', 'Stored tokens are encrypted but no encryptionKey is set; launch again')
      return unseal(this.config.encryptionKeys, tokens.sealed, `session:${this.sessionId}`) as TokenSet
    }
    return tokens
  }

  sealTokens(tokens: TokenSet): LaunchRecord['tokens'] {
    return this.config.encryptionKeys.length > 0 ? { sealed: seal(this.config.encryptionKeys, tokens, `session:${this.sessionId}`) } : tokens
  }

  /**
   * Read-modify-write of the session record under the session's lock (one writer at a time across every
   * process sharing the store). `change` returns the new record, or null to delete it.
   */
  update<T>(change: (current: SessionRecord | null) => Promise<{ record: SessionRecord | null; result: T }>): Promise<T> {
    const lockOptions = { ttlSeconds: Math.ceil(this.config.httpTimeoutMs / 1000) * 3 + 5, waitMs: this.config.httpTimeoutMs * 2 + 2000 }
    return withStorageLock(this.storage, keys.lock(this.sessionId), lockOptions, async () => {
      const { record, result } = await change(await this.read())
      await this.write(record)
      return result
    })
  }

  private async write(record: SessionRecord | null): Promise<void> {
    const key = keys.session(this.sessionId)
    const launches = record ? Object.values(record.launches) : []
    if (!record || launches.length === 0) return this.storage.delete(key)
    // Absolute timeout (SECURITY S24): the record lives no longer than its newest launch's lifetime.
    const newest = Math.max(...launches.map((launch) => launch.completedAt))
    const ttl = Math.ceil((newest + this.config.sessionTtlSeconds * 1000 - this.config.now()) / 1000)
    if (ttl <= 0) return this.storage.delete(key)
    await this.storage.set(key, record, ttl)
  }
}

/** Which stored launch a request means (multi-launch rules of API.md; S27: never a guess). */
export function selectLaunch(record: SessionRecord | null, multiLaunch: boolean, activePatient: string | null): { key: string; launch: LaunchRecord } {
  const entries = record ? Object.entries(record.launches) : []
  if (entries.length === 0) throw new SmartError('NO_SESSION', 'No SMART launch has completed in this session; launch the app from the EHR')
  if (!multiLaunch) {
    const [key, launch] = entries[0]
    return { key, launch }
  }
  if (activePatient !== null) {
    const launch = Object.hasOwn(record!.launches, activePatient) ? record!.launches[activePatient] : undefined
    if (!launch) throw new SmartError('UNKNOWN_PATIENT', 'The active patient was not launched in this session')
    return { key: activePatient, launch }
  }
  if (entries.length > 1) {
    throw new SmartError('ACTIVE_PATIENT_REQUIRED', 'Several patients are launched in this session; name the active one (X-Active-Patient)')
  }
  const [key, launch] = entries[0]
  return { key, launch }
}
