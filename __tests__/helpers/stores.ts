// Runs a test suite over every express-session store we support:
//
//   import { storeKinds } from '../helpers/stores'
//   describe.each(storeKinds())('over %s', (_name, kind) => {
//     let store: Store; let close: () => Promise<void>
//     beforeAll(async () => ({ store, close } = await kind.open()))
//     afterAll(() => close())
//   })
//
// The Redis variant talks to process.env.REDIS_URL (set by global-setup.ts). Without it: in CI
// (CI=true) the row stays and open() fails loudly; elsewhere the row is left out with a warning.
import { randomBytes } from 'node:crypto'
import { MemoryStore, type SessionData, type Store } from 'express-session'
import { RedisStore } from 'connect-redis'
import { createClient, type RedisClientType } from 'redis'

export type StoreKindName = 'MemoryStore' | 'RedisStore'

export interface OpenedStore {
  /** The store under test. */
  store: Store
  /**
   * Another store over the same backing data, as a second app process would have. Redis: a new
   * connection and a new RedisStore with the same key prefix. Memory: the same `store` again
   * (a MemoryStore cannot be shared between processes). Closed by `close()`.
   */
  newStore(): Promise<Store>
  /** Removes what the stores wrote (Redis: the keys under the prefix) and closes every connection. */
  close(): Promise<void>
}

export interface StoreKind {
  readonly name: StoreKindName
  /** True when newStore() gives a store with its own connection (shared backing, separate process). */
  readonly sharedAcrossProcesses: boolean
  open(): Promise<OpenedStore>
}

export type StoreKindRow = [name: StoreKindName, kind: StoreKind]

export const memoryStoreKind: StoreKind = {
  name: 'MemoryStore',
  sharedAcrossProcesses: false,
  async open(): Promise<OpenedStore> {
    const store = new MemoryStore()
    return {
      store,
      newStore: async () => store,
      close: async () => {
        await new Promise<void>((resolve) => store.clear(() => resolve()))
      },
    }
  },
}

type RedisClient = RedisClientType

async function connectRedis(url: string): Promise<RedisClient> {
  const client = createClient({
    url,
    // Tests should fail, not hang, when Redis goes away.
    socket: { connectTimeout: 5000, reconnectStrategy: false },
  })
  // Without a listener an 'error' event would crash the Jest worker; commands still reject.
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (err) {
    client.destroy()
    const reason = err instanceof Error ? err.message : String(err)
    throw new Error(`Cannot connect to Redis at REDIS_URL=${url}: ${reason}`)
  }
  return client
}

export const redisStoreKind: StoreKind = {
  name: 'RedisStore',
  sharedAcrossProcesses: true,
  async open(): Promise<OpenedStore> {
    const url = process.env.REDIS_URL
    if (!url) {
      throw new Error(
        'REDIS_URL is not set: the RedisStore tests need a Redis. Install redis-server ' +
          '(`apt-get install -y redis-server`) so __tests__/helpers/global-setup.ts can start one, or set REDIS_URL.',
      )
    }
    const prefix = `test:${randomBytes(8).toString('hex')}:`
    const clients: RedisClient[] = []
    const stores: RedisStore[] = []
    const open = async (): Promise<RedisStore> => {
      const client = await connectRedis(url)
      clients.push(client)
      const store = new RedisStore({ client, prefix })
      stores.push(store)
      return store
    }
    const store = await open()
    let closed = false
    return {
      store,
      newStore: () => {
        if (closed) return Promise.reject(new Error('newStore() after close()'))
        return open()
      },
      close: async () => {
        if (closed) return
        closed = true
        const errors: unknown[] = []
        try {
          await store.clear() // deletes only the keys under this prefix
        } catch (err) {
          errors.push(err)
        }
        const results = await Promise.allSettled(clients.map((c) => (c.isOpen ? c.close() : Promise.resolve())))
        for (const r of results) if (r.status === 'rejected') errors.push(r.reason)
        if (errors.length) throw errors[0]
      },
    }
  },
}

let warned = false

/**
 * Rows for `describe.each`: `[['MemoryStore', kind], ['RedisStore', kind]]`. Outside CI and with
 * no REDIS_URL the RedisStore row is omitted (one warning per test file); with CI=true it never is.
 */
export function storeKinds(): StoreKindRow[] {
  const rows: StoreKindRow[] = [['MemoryStore', memoryStoreKind]]
  if (process.env.REDIS_URL || process.env.CI === 'true') {
    rows.push(['RedisStore', redisStoreKind])
  } else if (!warned) {
    warned = true
    console.warn(
      '[express-smart-on-fhir tests] REDIS_URL is not set and redis-server was not found: tests over RedisStore are SKIPPED.',
    )
  }
  return rows
}

/** Promise wrappers over the callback API of express-session stores. */
export function storeGet(store: Store, sid: string): Promise<SessionData | null | undefined> {
  return new Promise((resolve, reject) => {
    store.get(sid, (err: unknown, session?: SessionData | null) => (err ? reject(err) : resolve(session)))
  })
}

export function storeSet(store: Store, sid: string, session: SessionData): Promise<void> {
  return new Promise((resolve, reject) => {
    store.set(sid, session, (err?: unknown) => (err ? reject(err) : resolve()))
  })
}

export function storeDestroy(store: Store, sid: string): Promise<void> {
  return new Promise((resolve, reject) => {
    store.destroy(sid, (err?: unknown) => (err ? reject(err) : resolve()))
  })
}
