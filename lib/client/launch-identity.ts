import { randomBytes } from 'node:crypto'
import { normalizeIssuer } from '../config'
import { SmartError } from '../errors'
import type { Aliases, LaunchRecord, SessionRecord } from '../storage/records'
import { FHIR_ID } from './fhir-ids'

/**
 * Launch identity (API.md): a launch is identified by its EHR and its patient, and the page selects it with
 * one value — the bare patient id whenever that is unambiguous in the session, otherwise an opaque handle.
 * Every rule that decides which launch a request gets lives here; a request is never answered with a guess.
 */

/** What `X-Active-Patient` may hold: a FHIR id or a handle. Handles contain `_`, which no FHIR id does. */
export const SELECTOR = /^[A-Za-z0-9\-._]{1,64}$/
const HANDLE_PREFIX = 'launch_'

/** A browser session holds at most this many launches; a new one evicts the least recently used. */
export const MAX_LAUNCHES_PER_SESSION = 20
/** At most this many bare-id bindings per session; the oldest go first. */
const MAX_ALIASES = 200

export const newLaunchId = (): string => randomBytes(16).toString('base64url')
const newHandle = (): string => HANDLE_PREFIX + randomBytes(12).toString('base64url')
export const newVersion = (): string => randomBytes(9).toString('base64url')

/** A completed launch before the session decides how its page will select it. */
export type CompletedLaunch = Omit<LaunchRecord, 'selector'>

/** Absolute and idle lifetime of every launch (SECURITY S24), in ms; idle null when off. */
export interface Lifetimes {
  absoluteMs: number
  idleMs: number | null
}

/** When a launch ends: its absolute deadline, or earlier when idle for too long. */
export function deadlineOf(launch: LaunchRecord, lifetimes: Lifetimes): number {
  const absolute = launch.completedAt + lifetimes.absoluteMs
  return lifetimes.idleMs === null ? absolute : Math.min(absolute, launch.lastUsedAt + lifetimes.idleMs)
}

export const isLive = (launch: LaunchRecord, lifetimes: Lifetimes, now: number): boolean => deadlineOf(launch, lifetimes) > now

/** `lastUsedAt` is written at most once per this interval: the idle timeout's precision, and the write it costs. */
export function needsTouch(launch: LaunchRecord, lifetimes: Lifetimes, now: number): boolean {
  if (lifetimes.idleMs === null) return false
  return now - launch.lastUsedAt >= Math.min(60_000, lifetimes.idleMs / 10)
}

const sameIdentity = (a: { iss: string; patient: string | null }, b: { iss: string; patient: string | null }) =>
  a.patient === b.patient && normalizeIssuer(a.iss) === normalizeIssuer(b.iss)

export interface AddOptions {
  multiLaunch: boolean
  /**
   * A callback that joined a session moved by a concurrent callback of the same browser adds its launch but
   * never replaces one of the same identity there (it could not tell the other tab's launch from a stale one).
   */
  join: boolean
  now: number
  lifetimes: Lifetimes
}

/**
 * The session with `added` in it. Same (EHR, patient) replaces the earlier launch and keeps its selector;
 * single-launch mode keeps only the newest launch. The page's selector is the bare patient id while that id
 * stands for this EHR in the session (`aliases`), else a handle.
 */
export function addLaunch(
  record: SessionRecord | null,
  aliases: Aliases,
  added: CompletedLaunch,
  opts: AddOptions,
): { record: SessionRecord; aliases: Aliases; launch: LaunchRecord } {
  const launches = liveLaunches(record, opts.lifetimes, opts.now)
  const existing = Object.values(launches).find((launch) => sameIdentity(launch, added))
  if (existing && opts.join && opts.multiLaunch) return { record: { kind: 'session', version: newVersion(), launches }, aliases, launch: existing }
  const iss = normalizeIssuer(added.iss)
  const bound = { ...aliases }
  let selector: string
  if (existing) {
    selector = existing.selector
  } else if (added.patient !== null && (bound[added.patient] === undefined || bound[added.patient] === iss)) {
    selector = added.patient
    delete bound[added.patient]
    bound[added.patient] = iss
  } else {
    selector = newHandle()
  }
  const launch: LaunchRecord = { ...added, selector }
  let kept: Record<string, LaunchRecord> = {}
  if (opts.multiLaunch) {
    kept = { ...launches }
    if (existing) delete kept[existing.id]
    const byUse = Object.values(kept).sort((a, b) => a.lastUsedAt - b.lastUsedAt)
    for (const old of byUse.slice(0, Math.max(0, byUse.length - (MAX_LAUNCHES_PER_SESSION - 1)))) delete kept[old.id]
  }
  kept[launch.id] = launch
  const names = Object.keys(bound)
  for (const name of names.slice(0, Math.max(0, names.length - MAX_ALIASES))) delete bound[name]
  return { record: { kind: 'session', version: newVersion(), launches: kept }, aliases: bound, launch }
}

/** The launches of `record` still within their lifetimes. */
export function liveLaunches(record: SessionRecord | null, lifetimes: Lifetimes, now: number): Record<string, LaunchRecord> {
  const live: Record<string, LaunchRecord> = {}
  for (const launch of Object.values(record?.launches ?? {})) if (isLive(launch, lifetimes, now)) live[launch.id] = launch
  return live
}

export interface Selection {
  multiLaunch: boolean
  /** The page's `X-Active-Patient`, null when it sent none. */
  activePatient: string | null
  /** A forwarded (regenerated) session id reaches only these launch ids; null: no restriction. */
  held: ReadonlySet<string> | null
  now: number
  lifetimes: Lifetimes
}

/**
 * The launch a request means (API.md; SECURITY S27). With `X-Active-Patient`, exactly the launch it selects —
 * in single-launch mode too, where naming another patient than the current one is refused. Without it, the
 * session's one live launch; several in multi-launch mode is a refusal, never a pick.
 */
export function selectLaunch(record: SessionRecord | null, selection: Selection): LaunchRecord {
  const { held, now, lifetimes } = selection
  const reachable = Object.values(record?.launches ?? {}).filter((launch) => held === null || held.has(launch.id))
  if (reachable.length === 0) throw new SmartError('NO_SESSION', 'No SMART launch has completed in this session; launch the app from the EHR')
  if (selection.activePatient !== null) {
    const chosen = reachable.find((launch) => launch.selector === selection.activePatient)
    if (!chosen) {
      throw new SmartError('UNKNOWN_PATIENT', selection.multiLaunch
        ? 'The active patient was not launched in this session'
        : 'X-Active-Patient names another patient than the one this session was launched for')
    }
    if (!isLive(chosen, lifetimes, now)) throw expired()
    return chosen
  }
  const live = reachable.filter((launch) => isLive(launch, lifetimes, now))
  if (live.length === 0) throw expired()
  if (live.length > 1) {
    throw new SmartError('ACTIVE_PATIENT_REQUIRED', 'Several patients are launched in this session; name the active one (X-Active-Patient)')
  }
  return live[0]
}

const expired = () => new SmartError('SESSION_EXPIRED', 'The SMART session has expired; launch the app again from the EHR')

/**
 * A token response's `patient` must be a FHIR id: it becomes a path segment and the page's selector. Anything
 * else is refused at the callback, before anything is stored, rather than kept as a launch no page can select.
 */
export function checkPatientId(patient: string | null): void {
  if (patient !== null && !FHIR_ID.test(patient)) {
    throw new SmartError('TOKEN_EXCHANGE_FAILED', 'The EHR launched a patient whose id is not a FHIR id (1-64 of A-Z a-z 0-9 - .); the launch was not kept')
  }
}
