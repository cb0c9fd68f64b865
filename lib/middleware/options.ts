import type { Request } from 'express'
import type { Store } from 'express-session'
import { runtimeFor } from '../client/runtime'
import { readyFromCopy, SmartClient } from '../client/SmartClient'
import type { ReadyClient } from '../fhir/ReadyClient'
import type { SmartClientConfiguration, SmartClientOptions, SmartLogger } from '../config'
import { SmartError } from '../errors'
import { expressSessionStorage } from '../storage/express-session'
import { browserProofOf } from './browser-cookies'
import type { SmartStorage } from '../storage/SmartStorage'

/**
 * What every middleware factory takes: the configuration, options, and optionally a storage (default: the
 * app's express-session store). Pass the same object to every middleware of one app.
 *
 * @example
 * const smart: SmartMiddlewareOptions = { config, options: { enableMultiLaunch: true } }
 * app.get('/launch', smartLaunch(smart))
 */
export interface SmartMiddlewareOptions {
  config: SmartClientConfiguration
  options?: SmartClientOptions
  /** Default: `expressSessionStorage(req.sessionStore)`, the app's own session store. */
  storage?: SmartStorage
}

/** What a middleware factory settles once, so requests do no validation of their own. */
export interface MiddlewareSetup {
  /** A SmartClient for this request's session, the active patient its page named, and its browser's cookies. */
  clientFor(req: Request, activePatient?: string | null): SmartClient
  /** The hot path: the ReadyClient this process already made for the session's record version, or null (see `readyFromCopy`). */
  readyFromCopy(req: Request, activePatient: string | null, version: string | null): { client: ReadyClient; version: string } | null
  /** How long a launch may live at most (the browser cookie's lifetime). */
  sessionTtlSeconds: number
  /** The app's logger (options.logger), or null. */
  logger: SmartLogger | null
  /** The request's express-session session, or the reason there is none. */
  requireSession(req: Request): NonNullable<Request['session']>
}

const defaultStorages = new WeakMap<Store, SmartStorage>()
/** The apps (by their middleware options object) that have served a request with an express-session store. */
const sessionMounted = new WeakSet<SmartMiddlewareOptions>()

/** Validates the options of a middleware factory (a `TypeError` naming the field), once. */
export function setUpMiddleware(name: string, opts: SmartMiddlewareOptions): MiddlewareSetup {
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`express-smart-on-fhir: ${name}(opts) needs { config, options?, storage? }`)
  for (const key of Object.keys(opts)) {
    if (!['config', 'options', 'storage'].includes(key)) throw new TypeError(`express-smart-on-fhir: ${name}(opts).${key} is not a known setting (config, options, storage)`)
  }
  const { config, options, storage } = opts
  const rt = runtimeFor(config, options)
  const { sessionTtlSeconds, logger } = rt.config
  if (storage !== undefined && (typeof storage?.get !== 'function' || typeof storage.set !== 'function' || typeof storage.delete !== 'function')) {
    throw new TypeError(`express-smart-on-fhir: ${name}(opts).storage must implement SmartStorage (get, set, delete)`)
  }
  /**
   * express-session sets nothing on a request it skips: when it is not mounted before this middleware, and
   * when its store reported itself disconnected. In an app that has had a session store before, it is the
   * store (503, worth a retry); otherwise the app is misconfigured.
   */
  function sessionStoreOf(req: Request): Store {
    if (req.sessionStore) {
      sessionMounted.add(opts)
      return req.sessionStore
    }
    if (sessionMounted.has(opts)) throw new SmartError('STORAGE_UNAVAILABLE', 'The session store is disconnected')
    throw new SmartError('MISCONFIGURED', `${name}() needs express-session: mount app.use(session({ ... })) before it (or its store was disconnected from the start)`)
  }
  function storageFor(req: Request): SmartStorage {
    if (storage) return storage
    const store = sessionStoreOf(req)
    let adapted = defaultStorages.get(store)
    // The app's logger hears it if the store has no atomic primitive shared across processes.
    if (!adapted) defaultStorages.set(store, (adapted = expressSessionStorage(store, logger ? { logger } : {})))
    return adapted
  }
  return {
    sessionTtlSeconds,
    logger,
    requireSession(req) {
      sessionStoreOf(req)
      // express-session sets req.session whenever it sets req.sessionStore.
      return req.session as NonNullable<Request['session']>
    },
    readyFromCopy(req, activePatient, version) {
      return readyFromCopy(rt, storageFor(req), req.sessionID, version, activePatient)
    },
    clientFor(req, activePatient = null) {
      // The same config and options objects every time: the client reuses the runtime validated above.
      // The cookies are parsed only if the client needs the proof (a callback, a moved session id).
      let proof: ReturnType<typeof browserProofOf> | undefined
      const session = { sessionId: req.sessionID, activePatient, get browser() { return (proof ??= browserProofOf(req)) } }
      return new SmartClient(session, storageFor(req), config, options as SmartClientOptions & { enableMultiLaunch: true })
    },
  }
}
