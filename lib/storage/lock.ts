import { SmartError } from '../errors'
import type { SmartStorage } from './SmartStorage'
import { randomUUID } from 'node:crypto'

const chains = new WeakMap<object, Map<string, Promise<unknown>>>()

/**
 * Runs `work` after every earlier `processMutex` call on the same (scope, key) has settled.
 * Atomic within this process only.
 */
export function processMutex<T>(scope: object, key: string, work: () => Promise<T>): Promise<T> {
  let perScope = chains.get(scope)
  if (!perScope) chains.set(scope, (perScope = new Map()))
  const previous = perScope.get(key) ?? Promise.resolve()
  const run = previous.then(work, work)
  const settled = run.then(() => undefined, () => undefined)
  perScope.set(key, settled)
  void settled.then(() => {
    if (perScope.get(key) === settled) perScope.delete(key)
  })
  return run
}

const flights = new WeakMap<object, Map<string, Promise<unknown>>>()

/** Concurrent calls with the same (scope, key) share one execution of `work` in this process. */
export function singleFlight<T>(scope: object, key: string, work: () => Promise<T>): Promise<T> {
  let perScope = flights.get(scope)
  if (!perScope) flights.set(scope, (perScope = new Map()))
  const running = perScope.get(key)
  if (running) return running as Promise<T>
  const started = work().finally(() => perScope.delete(key))
  perScope.set(key, started)
  return started
}

export interface LockOptions {
  /** How long the lock lives if its holder dies. */
  ttlSeconds: number
  /** How long to wait for a lock someone else holds before failing with `STORAGE_UNAVAILABLE`. */
  waitMs: number
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs `work` while holding `key` in the storage: across every process sharing the store when it has an
 * atomic `setIfAbsent`, within this process otherwise. The lock is released when `work` settles.
 */
export async function withStorageLock<T>(storage: SmartStorage, key: string, opts: LockOptions, work: () => Promise<T>): Promise<T> {
  const setIfAbsent = storage.setIfAbsent?.bind(storage)
  if (!setIfAbsent) return processMutex(storage, key, work)
  return processMutex(storage, key, async () => {
    const owner = randomUUID()
    const deadline = Date.now() + opts.waitMs
    let pause = 10
    while (!(await setIfAbsent(key, owner, opts.ttlSeconds))) {
      if (Date.now() >= deadline) {
        throw new SmartError('STORAGE_UNAVAILABLE', 'Timed out waiting for another process to finish refreshing this session')
      }
      await sleep(pause)
      pause = Math.min(pause * 2, 200)
    }
    try {
      return await work()
    } finally {
      // Only release a lock that is still ours: it may have expired and been taken by another process.
      if ((await storage.get(key).catch(() => undefined)) === owner) await storage.delete(key).catch(() => undefined)
    }
  })
}

/** Keys with a mutex chain or a flight in progress in `scope` (for the memory-bound tests: 0 once all settled). */
export function lockMapSizes(scope: object): { mutexes: number; flights: number } {
  return { mutexes: chains.get(scope)?.size ?? 0, flights: flights.get(scope)?.size ?? 0 }
}
