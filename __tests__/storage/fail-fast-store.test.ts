import { MemoryStore, type SessionData, type Store } from 'express-session'
import { failFastStore, isSmartError } from '../../lib'

const data = { cookie: { originalMaxAge: 60_000 } } as unknown as SessionData

/** Calls a callback-style store method and resolves with its error (or null) and value. */
function called(run: (cb: (err?: unknown, value?: unknown) => void) => void): Promise<{ err: unknown; value: unknown }> {
  return new Promise((resolve) => run((err, value) => resolve({ err: err ?? null, value })))
}

describe('failFastStore', () => {
  it.each(['get', 'set', 'destroy'] as const)('refuses a store without %s, naming what it needs', (method) => {
    const store = new MemoryStore() as unknown as Record<string, unknown>
    const lacking = Object.assign(Object.create(null), { get: store.get, set: store.set, destroy: store.destroy, [method]: undefined })
    expect(() => failFastStore(lacking as Store)).toThrow(new TypeError('express-smart-on-fhir: failFastStore(store) needs an express-session Store (get, set, destroy)'))
  })

  it('passes reads, writes, deletes and touches through to the store', async () => {
    const inner = new MemoryStore()
    const store = failFastStore(inner)
    expect((await called((cb) => store.set('s1', data, cb))).err).toBeNull()
    expect((await called((cb) => store.get('s1', cb))).value).toMatchObject({ cookie: { originalMaxAge: 60_000 } })
    expect((await called((cb) => store.touch!('s1', data, cb))).err).toBeNull()
    expect((await called((cb) => store.destroy('s1', cb))).err).toBeNull()
    expect((await called((cb) => inner.get('s1', cb))).value ?? null).toBeNull()
  })

  it('a store without touch: touch answers at once, without error', async () => {
    const inner = new MemoryStore() as Store
    Object.defineProperty(inner, 'touch', { value: undefined })
    const store = failFastStore(inner)
    await expect(called((cb) => store.touch!('s1', data, cb))).resolves.toEqual({ err: null, value: undefined })
  })

  it.each([
    ['get', 'a session read', (s: Store, cb: (err?: unknown) => void) => s.get('s1', cb)],
    ['set', 'a session write', (s: Store, cb: (err?: unknown) => void) => s.set('s1', data, cb)],
    ['destroy', 'a session delete', (s: Store, cb: (err?: unknown) => void) => s.destroy('s1', cb)],
    ['touch', 'a session touch', (s: Store, cb: (err?: unknown) => void) => s.touch!('s1', data, cb)],
  ] as const)('%s: a failing store is STORAGE_UNAVAILABLE naming %s; a hanging one times out', async (method, what, run) => {
    const failing = new MemoryStore() as unknown as Record<string, unknown>
    failing[method] = (...args: unknown[]) => (args.at(-1) as (err: Error) => void)(new Error('ECONNREFUSED'))
    const failed = (await called((cb) => run(failFastStore(failing as unknown as Store), cb))).err
    expect(isSmartError(failed) && { code: failed.code, status: failed.status, message: failed.message }).toEqual({
      code: 'STORAGE_UNAVAILABLE', status: 503, message: `The session store failed ${what}`,
    })

    const hanging = new MemoryStore() as unknown as Record<string, unknown>
    hanging[method] = () => undefined
    const timedOut = (await called((cb) => run(failFastStore(hanging as unknown as Store, { timeoutMs: 100 }), cb))).err
    expect(timedOut).toMatchObject({ code: 'STORAGE_UNAVAILABLE', message: `The session store did not answer ${what} within 100 ms` })
  })
})
