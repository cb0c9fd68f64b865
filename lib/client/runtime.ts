import { resolveConfig, type ResolvedConfig, type SmartClientConfiguration, type SmartClientOptions } from '../config'
import { discover, type SmartConfiguration } from '../oauth/discovery'
import type { HttpLimits } from '../oauth/http'
import type { BrowserProof } from '../session/browser-binding'
import { lifetimesOf, type Lifetimes } from '../session/launch-identity'
import type { SessionState } from '../session/session-state'
import type { SmartStorage } from '../storage/SmartStorage'
import { instrumentationFor, type Observe } from '../observe'

/** What every SmartClient built from one configuration shares: validated config, HTTP limits, discovery. */
export interface Runtime {
  config: ResolvedConfig
  http: HttpLimits
  discover: (iss: string) => Promise<SmartConfiguration>
  /** Spans and log lines for this configuration's operations. */
  observe: Observe
  /** How long launches live (absolute and idle), from the configuration. */
  lifetimes: Lifetimes
}

/** One SmartClient's runtime, storage, session and browser: what its steps (authorize.ts, callback.ts, refresh.ts) work with. */
export interface ClientParts {
  rt: Runtime
  storage: SmartStorage
  session: SessionState
  /** The browser's cookies (middleware), or null (SmartClient used directly). */
  browser: BrowserProof | null
}

const NO_OPTIONS = {}
const runtimes = new WeakMap<object, WeakMap<object, Runtime>>()

/**
 * The runtime for a (config, options) pair, built and validated once per pair of objects: a middleware,
 * or an app that keeps its configuration in a constant, pays for validation and discovery once.
 */
export function runtimeFor(config: SmartClientConfiguration, options: SmartClientOptions | undefined): Runtime {
  const optionsKey = options ?? NO_OPTIONS
  let byOptions = typeof config === 'object' && config !== null ? runtimes.get(config) : undefined
  const cached = byOptions?.get(optionsKey)
  if (cached) return cached
  const resolved = resolveConfig(config, options)
  const http: HttpLimits = { fetch: resolved.fetch, timeoutMs: resolved.httpTimeoutMs }
  const runtime: Runtime = {
    config: resolved,
    http,
    discover: (iss) => discover(iss, { http, allowHttp: resolved.allowNonHttpsLaunch, cacheSeconds: resolved.discoveryCacheSeconds, now: resolved.now }),
    observe: instrumentationFor(resolved),
    lifetimes: lifetimesOf(resolved),
  }
  if (!byOptions) runtimes.set(config, (byOptions = new WeakMap()))
  byOptions.set(optionsKey, runtime)
  return runtime
}
