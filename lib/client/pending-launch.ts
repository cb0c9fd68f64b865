import { SmartError } from '../errors'
import { processMutex } from '../storage/lock'
import { keys, readPendingLaunch, type PendingLaunch } from '../storage/records'
import type { SmartStorage } from '../storage/SmartStorage'

/** A launch must come back within this time (SECURITY S6). */
export const PENDING_LAUNCH_TTL_SECONDS = 600

/** Whether a launch started under `owner` belongs to the browser session asking (same id, or moved there). */
export type Ownership = (owner: string) => Promise<boolean>

/** Keeps a launch in progress under its own state, so launches in other tabs never overwrite it (S11). */
export function startPendingLaunch(storage: SmartStorage, state: string, launch: PendingLaunch): Promise<void> {
  return storage.set(keys.pending(state), launch, PENDING_LAUNCH_TTL_SECONDS)
}

/** Marks a state used: atomic across processes when the storage has `setIfAbsent`. */
function claim(storage: SmartStorage, state: string): Promise<boolean> {
  if (storage.setIfAbsent) return storage.setIfAbsent(keys.used(state), 1, PENDING_LAUNCH_TTL_SECONDS)
  return processMutex(storage, keys.used(state), async () => {
    if ((await storage.get(keys.used(state))) !== undefined) return false
    await storage.set(keys.used(state), 1, PENDING_LAUNCH_TTL_SECONDS)
    return true
  })
}

const invalid = (why: string) => new SmartError('INVALID_STATE', `The launch cannot be completed: ${why}; launch again from the EHR`)

/**
 * Takes the pending launch of `state` for this session, exactly once (SECURITY S12): unknown, expired,
 * replayed or other-session states are refused before any token call.
 */
export async function consumePendingLaunch(storage: SmartStorage, state: string, owns: Ownership, now: number): Promise<PendingLaunch> {
  const pending = readPendingLaunch(await storage.get(keys.pending(state)))
  if (!pending) throw invalid('the state is unknown, expired or already used')
  if (!(await owns(pending.sessionId))) throw invalid('the state belongs to another session')
  if (!(await claim(storage, state))) throw invalid('the state was already used')
  await storage.delete(keys.pending(state))
  if (now - pending.createdAt > PENDING_LAUNCH_TTL_SECONDS * 1000) throw invalid('the launch expired')
  return pending
}

/**
 * The authorization server refused (`?error=`): forget the pending launch of `state`, but only when it is
 * this session's — a state alone must not let anyone cancel another browser's launch.
 */
export async function dropPendingLaunch(storage: SmartStorage, state: string, owns: Ownership): Promise<void> {
  const pending = readPendingLaunch(await storage.get(keys.pending(state)))
  if (pending && (await owns(pending.sessionId))) await storage.delete(keys.pending(state))
}
