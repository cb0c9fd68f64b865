import session, { type SessionData, type Store } from 'express-session'
import { boundedStorageCall } from './SmartStorage'

/**
 * Options of `failFastStore`.
 *
 * @example
 * const store = failFastStore(new RedisStore({ client }), { timeoutMs: 2000 })
 */
export interface FailFastStoreOptions {
  /** Every store call fails with `STORAGE_UNAVAILABLE` (503) after this long. Default 3000. */
  timeoutMs?: number
}

type Callback<T = unknown> = (err?: unknown, value?: T) => void

/** Where a wrapper keeps the store it wraps. `Symbol.for`: two copies of the library still see each other's. */
const WRAPPED: unique symbol = Symbol.for('express-smart-on-fhir.failFastStore.inner')

/** The store a `failFastStore` wraps (however deep), or `store` itself: what decides its atomic primitive. */
export function innerStore(store: Store): Store {
  let inner: Store & { [WRAPPED]?: Store } = store
  while (inner[WRAPPED]) inner = inner[WRAPPED]
  return inner
}

/**
 * Wraps an express-session `Store` so that a store that is down or slow fails every request quickly with a
 * `SmartError('STORAGE_UNAVAILABLE')` (503) — express-session's own session look-up included — instead of
 * hanging or surfacing a raw driver error. It never reports the store as disconnected to express-session
 * (which would silently serve requests without a session); it fails them instead.
 *
 * `expressSessionStorage` sees the wrapped store through it, so it keeps using that store's atomic
 * primitive (Redis `SET NX`, connect-pg-simple's table) for its cross-process locks; connect-redis's
 * client, prefix and serializer stay visible on the wrapper too.
 *
 * @example
 * const store = failFastStore(new RedisStore({ client: redis }), { timeoutMs: 2000 })
 * app.use(session({ store, secret, resave: false, saveUninitialized: false }))
 */
export function failFastStore<S extends Store>(inner: S, opts: FailFastStoreOptions = {}): Store {
  if (!inner || typeof inner.get !== 'function' || typeof inner.set !== 'function' || typeof inner.destroy !== 'function') {
    throw new TypeError('express-smart-on-fhir: failFastStore(store) needs an express-session Store (get, set, destroy)')
  }
  const timeoutMs = opts.timeoutMs ?? 3000

  function call<T>(what: string, cb: Callback<T> | undefined, run: (done: Callback<T>) => unknown): void {
    boundedStorageCall(what, timeoutMs, () => new Promise<T | undefined>((resolve, reject) => {
      run((err, value) => (err ? reject(err) : resolve(value)))
    })).then(
      (value) => cb?.(null, value),
      (err: unknown) => cb?.(err),
    )
  }

  class FailFastStore extends session.Store {
    readonly [WRAPPED]: Store = inner
    get client(): unknown {
      return (inner as { client?: unknown }).client
    }
    get prefix(): unknown {
      return (inner as { prefix?: unknown }).prefix
    }
    get serializer(): unknown {
      return (inner as { serializer?: unknown }).serializer
    }
    get(sid: string, cb: Callback<SessionData | null>): void {
      call('a session read', cb, (done) => inner.get(sid, done))
    }
    set(sid: string, data: SessionData, cb?: Callback): void {
      call('a session write', cb, (done) => inner.set(sid, data, done))
    }
    destroy(sid: string, cb?: Callback): void {
      call('a session delete', cb, (done) => inner.destroy(sid, done))
    }
    touch(sid: string, data: SessionData, cb?: Callback): void {
      if (!inner.touch) return cb?.()
      call('a session touch', cb, (done) => inner.touch!(sid, data, done))
    }
  }
  return new FailFastStore()
}
