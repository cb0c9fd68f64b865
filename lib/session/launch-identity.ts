import { createHash, randomBytes } from 'node:crypto'
import type { ResolvedConfig } from '../config'
import { normalizeIssuer } from '../config-servers'
import { SmartError } from '../errors'
import type { EndReason, LaunchRecord, SessionRecord } from '../storage/records'
import { FHIR_ID } from '../fhir/fhir-ids'

/**
 * Launch identity (API.md): a launch is identified by its EHR and its patient, and the page selects it with
 * one value, its *selector*. The selector is a pure function of (EHR, patient), so it can never come to mean
 * another EHR's patient — not in a new server session, not after any cap or eviction (SECURITY S35):
 * - an app configured for exactly one EHR (`knownFhirServers` of one): the bare patient id;
 * - otherwise: `<patient id>_<EHR tag>`, the tag being 12 characters of the issuer's SHA-256. `_` is in no
 *   FHIR id, so a selector of this form never equals a bare id.
 * Every rule that decides which launch a request gets lives here; a request is never answered with a guess.
 */

/** What `X-Active-Patient` may hold: a FHIR id or a qualified selector. */
export const SELECTOR = /^[A-Za-z0-9\-._]{1,80}$/

/** A browser session holds at most this many launches; a new one evicts the least recently used. */
export const MAX_LAUNCHES_PER_SESSION = 20
/** Ended selectors remembered per session (for the answer's wording only: forgetting one refuses all the same). */
const MAX_ENDED = 100

export const newLaunchId = (): string => randomBytes(16).toString('base64url')
export const newVersion = (): string => randomBytes(9).toString('base64url')

/** 12 base64url characters (72 bits) of the normalised issuer's SHA-256. */
const ehrTag = (iss: string): string => createHash('sha256').update(normalizeIssuer(iss)).digest('base64url').slice(0, 12)

/** An app configured for exactly one EHR gives pages bare patient ids; any other gives `<patient id>_<EHR tag>`. */
export const bareSelectors = (config: ResolvedConfig): boolean => config.knownFhirServers?.size === 1

/** The selector of (EHR, patient): bare patient ids only where the app trusts exactly one EHR. */
export function selectorFor(iss: string, patient: string | null, bare: boolean): string {
  return bare && patient !== null ? patient : `${patient ?? ''}_${ehrTag(iss)}`
}

/** A completed launch before the session decides how its page will select it. */
export type CompletedLaunch = Omit<LaunchRecord, 'selector'>

/** Absolute and idle lifetime of every launch (SECURITY S24), in ms; idle null when off. */
export interface Lifetimes {
  absoluteMs: number
  idleMs: number | null
}

/** The configured lifetimes, in ms. */
export function lifetimesOf(config: ResolvedConfig): Lifetimes {
  return { absoluteMs: config.sessionTtlSeconds * 1000, idleMs: config.idleTimeoutSeconds === null ? null : config.idleTimeoutSeconds * 1000 }
}

/** When a launch ends: its absolute deadline, or earlier when idle for too long. */
export function deadlineOf(launch: LaunchRecord, lifetimes: Lifetimes): number {
  const absolute = launch.completedAt + lifetimes.absoluteMs
  return lifetimes.idleMs === null ? absolute : Math.min(absolute, launch.lastUsedAt + lifetimes.idleMs)
}

export const isLive = (launch: LaunchRecord, lifetimes: Lifetimes, now: number): boolean => deadlineOf(launch, lifetimes) > now

/** Why a launch that is no longer live ended: its absolute lifetime, or idleness. */
export const lapseOf = (launch: LaunchRecord, lifetimes: Lifetimes, now: number): EndReason =>
  launch.completedAt + lifetimes.absoluteMs <= now ? 'expired' : 'idle'

/** `lastUsedAt` is written at most once per this interval: the idle timeout's precision, and the write it costs. */
export function needsTouch(launch: LaunchRecord, lifetimes: Lifetimes, now: number): boolean {
  if (lifetimes.idleMs === null) return false
  return now - launch.lastUsedAt >= Math.min(60_000, lifetimes.idleMs / 10)
}

const sameIdentity = (a: { iss: string; patient: string | null }, b: { iss: string; patient: string | null }) =>
  a.patient === b.patient && normalizeIssuer(a.iss) === normalizeIssuer(b.iss)

const startOf = (launch: LaunchRecord | CompletedLaunch) => launch.startedAt ?? launch.completedAt

/** `ended` with `more` added, the oldest dropped beyond the bound. */
export function withEnded(ended: SessionRecord['ended'], more: Record<string, { reason: EndReason; at: number }>): NonNullable<SessionRecord['ended']> {
  const all = Object.entries({ ...ended, ...more }).sort(([, a], [, b]) => a.at - b.at)
  return Object.fromEntries(all.slice(Math.max(0, all.length - MAX_ENDED)))
}

export interface AddOptions {
  multiLaunch: boolean
  /** Selectors are bare patient ids (the app trusts exactly one EHR). */
  bare: boolean
  now: number
  lifetimes: Lifetimes
}

/**
 * The session with `added` in it. Same (EHR, patient): the launch started later wins (a relaunch for a new
 * encounter replaces the older one, whichever callback finishes first). Single-launch mode keeps only the
 * newest launch and remembers the one it replaced; multi-launch mode evicts the least recently used beyond
 * the bound. Ended launches are remembered by selector, for the answer a page still naming them gets.
 * `dropped`: the launches it put out (their tokens are the caller's to revoke).
 */
export function addLaunch(record: SessionRecord | null, added: CompletedLaunch, opts: AddOptions): { record: SessionRecord; launch: LaunchRecord; dropped: LaunchRecord[] } {
  const launches = liveLaunches(record, opts.lifetimes, opts.now)
  const existing = Object.values(launches).find((launch) => sameIdentity(launch, added))
  const base: SessionRecord = { ...(record ?? { kind: 'session', version: '', launches: {} }), version: newVersion(), launches }
  if (existing && startOf(existing) > startOf(added)) return { record: base, launch: existing, dropped: [] }
  const launch: LaunchRecord = { ...added, selector: selectorFor(added.iss, added.patient, opts.bare) }
  const ending: Record<string, { reason: EndReason; at: number }> = {}
  for (const old of Object.values(record?.launches ?? {})) {
    if (!(old.id in launches)) ending[old.selector] = { reason: lapseOf(old, opts.lifetimes, opts.now), at: opts.now }
  }
  let kept: Record<string, LaunchRecord> = {}
  const dropped: LaunchRecord[] = existing ? [existing] : []
  if (opts.multiLaunch) {
    kept = { ...launches }
    if (existing) delete kept[existing.id]
    const byUse = Object.values(kept).sort((a, b) => a.lastUsedAt - b.lastUsedAt)
    for (const old of byUse.slice(0, Math.max(0, byUse.length - (MAX_LAUNCHES_PER_SESSION - 1)))) {
      delete kept[old.id]
      dropped.push(old)
      ending[old.selector] = { reason: 'evicted', at: opts.now }
    }
  } else {
    for (const old of Object.values(launches)) {
      if (old === existing) continue
      dropped.push(old)
      ending[old.selector] = { reason: 'replaced', at: opts.now }
    }
  }
  kept[launch.id] = launch
  const ended = withEnded(base.ended, ending)
  delete ended[launch.selector]
  return { record: { ...base, launches: kept, ended }, launch, dropped }
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

const ENDINGS: Record<EndReason, string> = {
  closed: 'was closed',
  evicted: `was closed to make room for newer launches (at most ${MAX_LAUNCHES_PER_SESSION} per browser session)`,
  idle: 'ended after being idle too long',
  expired: 'reached the end of its lifetime',
  refused: 'ended when the EHR refused to refresh it',
  replaced: 'was replaced by a later launch of another patient',
}

/** The refusal for a page naming a launch that ended: SESSION_EXPIRED saying why (a replaced one: UNKNOWN_PATIENT, API.md). */
function endedError(reason: EndReason): SmartError {
  const message = `The launch this page was opened for ${ENDINGS[reason]}; launch the app again from the EHR`
  return new SmartError(reason === 'replaced' ? 'UNKNOWN_PATIENT' : 'SESSION_EXPIRED', message)
}

/** The launch `activePatient` names: its selector, or — the bare id a caller typed — the one live (else the one) launch of that patient. */
function named(reachable: LaunchRecord[], activePatient: string, selection: Selection): LaunchRecord | undefined {
  const bySelector = reachable.find((launch) => launch.selector === activePatient)
  if (bySelector || !FHIR_ID.test(activePatient)) return bySelector
  const byPatient = reachable.filter((launch) => launch.patient === activePatient)
  const live = byPatient.filter((launch) => isLive(launch, selection.lifetimes, selection.now))
  if (live.length > 1) {
    throw new SmartError('UNKNOWN_PATIENT', 'X-Active-Patient names a patient id that several EHRs launched; send the value the callback gave (?patient=)')
  }
  return live[0] ?? (byPatient.length === 1 ? byPatient[0] : undefined)
}

/** How the launch `activePatient` names ended, if the session remembers: by its selector, or the latest of a bare id's. */
function endingOf(ended: NonNullable<SessionRecord['ended']>, activePatient: string): { reason: EndReason } | undefined {
  if (Object.hasOwn(ended, activePatient)) return ended[activePatient]
  if (!FHIR_ID.test(activePatient)) return undefined
  return Object.entries(ended).filter(([selector]) => selector.startsWith(`${activePatient}_`)).map(([, ending]) => ending).sort((a, b) => b.at - a.at)[0]
}

/**
 * The launch a request means (API.md; SECURITY S27, S35). With `X-Active-Patient`, exactly the launch it
 * selects — in single-launch mode too, where naming another patient than the current one is refused. Without
 * it, the session's one live launch; several in multi-launch mode is a refusal, never a pick, and so is a
 * single-launch session whose launch was replaced by another patient's (the page may still show the first).
 */
export function selectLaunch(record: SessionRecord | null, selection: Selection): LaunchRecord {
  const { held, now, lifetimes } = selection
  const reachable = Object.values(record?.launches ?? {}).filter((launch) => held === null || held.has(launch.id))
  const ended = held === null ? record?.ended ?? {} : {}
  if (selection.activePatient !== null) {
    const chosen = named(reachable, selection.activePatient, selection)
    if (chosen) {
      if (!isLive(chosen, lifetimes, now)) throw endedError(lapseOf(chosen, lifetimes, now))
      return chosen
    }
    const ending = endingOf(ended, selection.activePatient)
    if (ending) throw endedError(ending.reason)
    if (reachable.length === 0) throw noSession()
    throw new SmartError('UNKNOWN_PATIENT', selection.multiLaunch
      ? 'The active patient was not launched in this session'
      : 'X-Active-Patient names another patient than the one this session was launched for')
  }
  if (reachable.length === 0) {
    const latest = Object.values(ended).sort((a, b) => b.at - a.at)[0]
    throw latest ? endedError(latest.reason) : noSession()
  }
  if (!selection.multiLaunch && Object.values(ended).some((ending) => ending.reason === 'replaced')) {
    throw new SmartError('ACTIVE_PATIENT_REQUIRED', 'This session\'s launch was replaced by a launch of another patient; send X-Active-Patient (the ?patient= value the page was opened with)')
  }
  const live = reachable.filter((launch) => isLive(launch, lifetimes, now))
  if (live.length === 0) throw endedError(lapseOf(reachable[0], lifetimes, now))
  if (live.length > 1) {
    throw new SmartError('ACTIVE_PATIENT_REQUIRED', 'Several patients are launched in this session; name the active one (X-Active-Patient)')
  }
  return live[0]
}

const noSession = () => new SmartError('NO_SESSION', 'No SMART launch has completed in this session; launch the app from the EHR')

/**
 * A token response's `patient` must be a FHIR id: it becomes a path segment and the page's selector. Anything
 * else is refused at the callback, before anything is stored, rather than kept as a launch no page can select.
 */
export function checkPatientId(patient: string | null): void {
  if (patient !== null && !FHIR_ID.test(patient)) {
    throw new SmartError('TOKEN_EXCHANGE_FAILED', 'The EHR launched a patient whose id is not a FHIR id (1-64 of A-Z a-z 0-9 - .); the launch was not kept')
  }
}
