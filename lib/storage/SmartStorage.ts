import { SmartError } from '../errors'

/**
 * Server-side key/value storage for SMART state (pending launches, tokens, locks).
 * Values are JSON-serializable. Implementations must fail fast rather than hang.
 *
 * @example
 * // A minimal in-memory implementation (one process only):
 * const map = new Map<string, unknown>()
 * const storage: SmartStorage = {
 *   async get(key) { return map.get(key) },
 *   async set(key, value) { map.set(key, value) },
 *   async delete(key) { map.delete(key) },
 * }
 */
export interface SmartStorage {
  /** The stored value, or `undefined` when absent or expired. */
  get(key: string): Promise<unknown>
  set(key: string, value: unknown, ttlSeconds?: number): Promise<void>
  delete(key: string): Promise<void>
  /**
   * Atomically stores `value` only when `key` is absent; true when it did. Used for locks and
   * single-use markers. Without it, those are only atomic within one process.
   */
  setIfAbsent?(key: string, value: unknown, ttlSeconds: number): Promise<boolean>
  /**
   * Atomically reads and removes `key`: its value to exactly one of any number of concurrent callers,
   * `undefined` to the others (and when absent or expired). Used for single-use values (a launch's state).
   * Without it, a value is made single-use by a `setIfAbsent` marker, which costs one more write, a delete
   * and a record kept for the value's lifetime.
   */
  take?(key: string): Promise<unknown>
}

/** Rejects with `STORAGE_UNAVAILABLE` when `work` takes longer than `timeoutMs` or fails. */
export async function boundedStorageCall<T>(what: string, timeoutMs: number, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new SmartError('STORAGE_UNAVAILABLE', `The session store did not answer ${what} within ${timeoutMs} ms`)),
      timeoutMs,
    )
  })
  try {
    return await Promise.race([work(), timeout])
  } catch (err) {
    if (err instanceof SmartError) throw err
    throw new SmartError('STORAGE_UNAVAILABLE', `The session store failed ${what}`, { cause: err })
  } finally {
    clearTimeout(timer)
  }
}
