/**
 * `--profile`: reads the V8 CPU profile an app process wrote (node --cpu-prof) and cuts it into the routes of its
 * comparison, by the windows of their timed rounds on the app's monotonic clock (the profile's timestamps are on
 * the same clock). For each route, per request: where the main thread's time went by package, and our package's
 * functions by self time, by self time with their callees in Node, V8 and our own dependencies, and by total time.
 * For each pair, the difference: what route A (ours) costs more than its baseline, and in which of our functions.
 *
 * "With callees" stops at the first frame of another package (express, express-session, the store's client, the
 * app): our middleware calls next() and our failFastStore calls express-session back, and what runs below those
 * is not ours. Work resumed after an `await` has the resumed function at the top of its stack, so it counts too.
 */
import { readFileSync } from 'node:fs'
import { dirname, relative, sep } from 'node:path'
import type { Comparison, Window } from './compare'

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

/** Per route: µs per request spent, by key. */
interface RouteCosts {
  responses: number
  /** Sampled main-thread time per request (idle excluded). */
  busy: number
  /** Time per request in our package's functions and what they called in Node, V8 and our dependencies. */
  ours: number
  byPackage: Map<string, number>
  /** Self time of each of our functions. */
  ourSelf: Map<string, number>
  /** Self time plus callees in Node, V8 and our dependencies (each sample counted for its innermost function of ours). */
  ourWithCallees: Map<string, number>
  /** Every function of ours on the stack, up to the first frame of another package. */
  ourTotal: Map<string, number>
}

/** Packages whose time counts for the function of ours that called them: Node, V8, and the library's dependencies. */
const NEUTRAL = new Set(['node (internal)', '(native)', ...Object.keys((require('../package.json') as { dependencies: Record<string, string> }).dependencies), 'oauth4webapi'])

export interface ProfilePairSpec { a: string; b: string }

/** The package a script belongs to: ours (the library's dist/), a dependency, Node's internals, V8's pseudo-frames. */
function packageOf(frame: CallFrame, libRoot: string): string {
  const url = frame.url.startsWith('file://') ? decodeURIComponent(new URL(frame.url).pathname) : frame.url
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)'
  if (url.startsWith(libRoot)) return 'express-smart-on-fhir'
  if (url.startsWith('node:')) return 'node (internal)'
  const nm = url.lastIndexOf(`${sep}node_modules${sep}`)
  if (nm >= 0) {
    const parts = url.slice(nm + 14).split(sep)
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  if (url.includes(`${sep}bench${sep}`)) return 'bench app'
  return url
}

function functionKey(frame: CallFrame, libRoot: string): string {
  const url = decodeURIComponent(new URL(frame.url).pathname)
  return `${frame.functionName || '(anonymous)'} (${relative(libRoot, url)}:${frame.lineNumber + 1})`
}

function inWindow(windows: Window[], t: number): boolean {
  for (const w of windows) if (t >= w.startUs && t < w.endUs) return true
  return false
}

const add = (map: Map<string, number>, key: string, value: number) => map.set(key, (map.get(key) ?? 0) + value)

export function routeCosts(profile: CpuProfile, routes: Comparison, libEntry: string): Map<string, RouteCosts> {
  // The dist/ directory the app loaded: everything under it is ours.
  const libRoot = dirname(libEntry)
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const costs = new Map<string, RouteCosts>()
  for (const [name, result] of Object.entries(routes)) {
    costs.set(name, { responses: result.windows.reduce((sum, w) => sum + w.responses, 0), busy: 0, ours: 0, byPackage: new Map(), ourSelf: new Map(), ourWithCallees: new Map(), ourTotal: new Map() })
  }
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]
    // A sample stands for the time until the next one.
    const weight = i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1] : 0
    const route = Object.entries(routes).find(([, result]) => inWindow(result.windows, t))
    if (!route) continue
    const cost = costs.get(route[0])!
    const leaf = byId.get(profile.samples[i])!
    const leafPackage = packageOf(leaf.callFrame, libRoot)
    if (leafPackage === '(idle)') continue
    cost.busy += weight
    add(cost.byPackage, leafPackage, weight)
    if (leafPackage === 'express-smart-on-fhir') add(cost.ourSelf, functionKey(leaf.callFrame, libRoot), weight)
    const seen = new Set<string>()
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame
      const pkg = packageOf(frame, libRoot)
      if (pkg !== 'express-smart-on-fhir') {
        if (NEUTRAL.has(pkg) || pkg.startsWith('(')) continue
        break
      }
      const key = functionKey(frame, libRoot)
      if (seen.size === 0) add(cost.ourWithCallees, key, weight)
      if (seen.has(key)) continue
      seen.add(key)
      add(cost.ourTotal, key, weight)
    }
    if (seen.size > 0) cost.ours += weight
  }
  for (const cost of costs.values()) {
    const per = (x: number) => x / Math.max(1, cost.responses)
    cost.busy = per(cost.busy)
    cost.ours = per(cost.ours)
    for (const map of [cost.byPackage, cost.ourSelf, cost.ourWithCallees, cost.ourTotal]) for (const [key, value] of map) map.set(key, per(value))
  }
  return costs
}

const us = (x: number | undefined) => (x ?? 0).toFixed(1).padStart(7)

/** Rows of `key: A, B, A−B` for the keys of both maps, largest A−B (or A) first. */
function table(a: Map<string, number>, b: Map<string, number>, limit: number, byDifference: boolean): string[] {
  const keys = [...new Set([...a.keys(), ...b.keys()])]
  const score = (key: string) => (byDifference ? (a.get(key) ?? 0) - (b.get(key) ?? 0) : (a.get(key) ?? 0))
  keys.sort((x, y) => score(y) - score(x))
  return keys.slice(0, limit).map((key) => `    ${us(a.get(key))} ${us(b.get(key))} ${us((a.get(key) ?? 0) - (b.get(key) ?? 0))}  ${key}`)
}

/** Prints, for each pair (ours first), per request: time by package, our functions by self time, by total time. */
export function printProfile(path: string, routes: Comparison, pairs: ProfilePairSpec[], libEntry: string, log: (line: string) => void): void {
  let profile: CpuProfile
  try {
    profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  } catch (err) {
    log(`  profile ${path}: unreadable (${(err as Error).message})`)
    return
  }
  const costs = routeCosts(profile, routes, libEntry)
  log(`\n  CPU profile ${path}`)
  log('  sampled main-thread time per request (µs; the profiler itself adds to it, so compare routes, not runs):')
  for (const [name, cost] of costs) {
    log(`    ${name.padEnd(14)} ${us(cost.busy)} µs busy, of which ${us(cost.ours)} µs in our package with its callees (measured CPU: ${routes[name].medianCpuUsPerRequest.toFixed(0)} µs/req, ${cost.responses} responses sampled)`)
  }
  for (const { a, b } of pairs) {
    const [x, y] = [costs.get(a)!, costs.get(b)!]
    log(`\n  ${a} vs ${b}, µs per request: ${a} | ${b} | difference`)
    log('   by package (self time):')
    for (const line of table(x.byPackage, y.byPackage, 16, true)) log(line)
    log(`   our package with its callees in Node, V8 and its dependencies: ${x.ours.toFixed(1)} | ${y.ours.toFixed(1)} | ${(x.ours - y.ours).toFixed(1)}`)
    log('   our package, self time, top 12:')
    for (const line of table(x.ourSelf, y.ourSelf, 12, false)) log(line)
    log('   our package, self time with callees in Node, V8 and its dependencies, top 15:')
    for (const line of table(x.ourWithCallees, y.ourWithCallees, 15, false)) log(line)
    log('   our package, total time (up to the first frame of another package), top 12:')
    for (const line of table(x.ourTotal, y.ourTotal, 12, false)) log(line)
  }
}

// `node -r esbuild-register bench/profile.ts <file.cpuprofile>`: the report of a profile the bench wrote, again.
if (require.main === module) {
  const path = process.argv[2]
  if (!path) throw new Error('usage: node -r esbuild-register bench/profile.ts <file.cpuprofile>')
  const saved = JSON.parse(readFileSync(`${path}.routes.json`, 'utf8')) as { routes: Comparison; pairs: ProfilePairSpec[]; lib: string }
  printProfile(path, saved.routes, saved.pairs, saved.lib, (line) => console.log(line))
}
