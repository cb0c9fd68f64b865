// Runs a test suite over every express-session store we support:
//
//   import { storeKinds } from '../helpers/stores'
//   describe.each(storeKinds())('over %s', (_name, kind) => {
//     let store: Store; let close: () => Promise<void>
//     beforeAll(async () => ({ store, close } = await kind.open()))
//     afterAll(() => close())
//   })
//
// The RedisStore variant talks to process.env.REDIS_URL, the RedisCluster variant (connect-redis over
// node-redis's cluster client) to the Redis Cluster of process.env.REDIS_CLUSTER_NODES; global-setup.ts
// sets both. Without one: in CI (CI=true) the row stays and open() fails loudly; elsewhere the row is
// left out with a warning.
import { randomBytes } from 'node:crypto'
import { MemoryStore, type SessionData, type Store } from 'express-session'
import { RedisStore } from 'connect-redis'
import { createClient, createCluster, type RedisClientType, type RedisClusterType } from 'redis'

export type StoreKindName = 'MemoryStore' | 'RedisStore' | 'RedisCluster'

/** A key a Redis kind wrote, as the server holding it sees it. */
export interface StoredKey {
  key: string
  /** Seconds to live; -1 when the key never expires. */
  ttl: number
  /** `host:port` of the server (cluster: the master) holding it. */
  node: string
}

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
  /**
   * Redis kinds only: every key under this open()'s prefix (which every store of it writes under), found
   * by SCAN on the one server or on every master of the cluster.
   */
  keys?(): Promise<StoredKey[]>
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
type RedisCluster = RedisClusterType

// Tests should fail, not hang, when Redis goes away.
const socket = { connectTimeout: 5000, reconnectStrategy: false } as const

/** A server holding keys: the one Redis, or one master of the cluster. */
interface KeyNode {
  address: string
  client: RedisClient
}

/** One app process's connection: what its RedisStore uses, and the servers its keys live on. */
interface RedisConnection {
  client: RedisClient | RedisCluster
  nodes(): Promise<KeyNode[]>
  close(): Promise<void>
}

function unreachable(what: string, err: unknown): Error {
  const reason = err instanceof Error ? err.message : String(err)
  return new Error(`Cannot connect to ${what}: ${reason}`)
}

async function connectRedis(url: string): Promise<RedisConnection> {
  const client: RedisClient = createClient({ url, socket })
  // Without a listener an 'error' event would crash the Jest worker; commands still reject.
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (err) {
    client.destroy()
    throw unreachable(`Redis at REDIS_URL=${url}`, err)
  }
  const { hostname, port } = new URL(url)
  return {
    client,
    nodes: async () => [{ address: `${hostname}:${port || 6379}`, client }],
    close: async () => void (client.isOpen && (await client.close())),
  }
}

async function connectCluster(nodes: string): Promise<RedisConnection> {
  const cluster: RedisCluster = createCluster({
    rootNodes: nodes.split(',').map((node) => ({ url: `redis://${node.trim()}` })),
    // The connections to the nodes the cluster discovers take their settings from here, not from rootNodes.
    defaults: { socket },
  })
  cluster.on('error', () => {})
  try {
    await cluster.connect()
  } catch (err) {
    cluster.destroy()
    throw unreachable(`the Redis Cluster at REDIS_CLUSTER_NODES=${nodes}`, err)
  }
  return {
    client: cluster,
    // SCAN sees one server's keys: on a cluster it runs on every master.
    nodes: () =>
      Promise.all(cluster.masters.map(async (master) => ({ address: `${master.host}:${master.port}`, client: await cluster.nodeClient(master) }))),
    close: async () => void (cluster.isOpen && (await cluster.close())),
  }
}

/** Every key under `prefix`, with the server holding it. */
async function keysUnder(nodes: KeyNode[], prefix: string): Promise<Array<{ key: string; node: KeyNode }>> {
  const found: Array<{ key: string; node: KeyNode }> = []
  for (const node of nodes) {
    for await (const batch of node.client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
      for (const key of batch) found.push({ key, node })
    }
  }
  return found
}

function redisKind(name: 'RedisStore' | 'RedisCluster', connect: () => Promise<RedisConnection>): StoreKind {
  return {
    name,
    sharedAcrossProcesses: true,
    async open(): Promise<OpenedStore> {
      // No braces: a hash tag in the prefix would put every key of the run in one cluster slot.
      const prefix = `test:${randomBytes(8).toString('hex')}:`
      const connections: RedisConnection[] = []
      const open = async (): Promise<RedisStore> => {
        const connection = await connect()
        connections.push(connection)
        return new RedisStore({ client: connection.client, prefix })
      }
      const store = await open()
      const keys = async (): Promise<StoredKey[]> => {
        const found = await keysUnder(await connections[0].nodes(), prefix)
        return Promise.all(found.map(async ({ key, node }) => ({ key, ttl: await node.client.ttl(key), node: node.address })))
      }
      let closed = false
      return {
        store,
        newStore: () => {
          if (closed) return Promise.reject(new Error('newStore() after close()'))
          return open()
        },
        keys,
        close: async () => {
          if (closed) return
          closed = true
          const errors: unknown[] = []
          try {
            // Not store.clear(): its one DEL of every key fails with CROSSSLOT on a cluster.
            const found = await keysUnder(await connections[0].nodes(), prefix)
            await Promise.all(found.map(({ key, node }) => node.client.unlink(key)))
          } catch (err) {
            errors.push(err)
          }
          const results = await Promise.allSettled(connections.map((c) => c.close()))
          for (const r of results) if (r.status === 'rejected') errors.push(r.reason)
          if (errors.length) throw errors[0]
        },
      }
    },
  }
}

export const redisStoreKind: StoreKind = redisKind('RedisStore', () => {
  const url = process.env.REDIS_URL
  if (!url) {
    throw new Error(
      'REDIS_URL is not set: the RedisStore tests need a Redis. Install redis-server ' +
        '(`apt-get install -y redis-server`) so __tests__/helpers/global-setup.ts can start one, or set REDIS_URL.',
    )
  }
  return connectRedis(url)
})

export const redisClusterKind: StoreKind = redisKind('RedisCluster', () => {
  const nodes = process.env.REDIS_CLUSTER_NODES
  if (!nodes) {
    throw new Error(
      'REDIS_CLUSTER_NODES is not set: the RedisCluster tests need a Redis Cluster. Install redis-server and redis-cli ' +
        '(`apt-get install -y redis-server`) so __tests__/helpers/global-setup.ts can start one, or set ' +
        'REDIS_CLUSTER_NODES=host:port,host:port,… to a cluster the tests may use.',
    )
  }
  return connectCluster(nodes)
})

/** The keys under an opened Redis store's prefix that never expire (TTL -1). */
export async function keysWithoutTtl(opened: OpenedStore): Promise<string[]> {
  if (!opened.keys) throw new Error('keysWithoutTtl() needs a Redis kind (RedisStore or RedisCluster)')
  return (await opened.keys()).filter(({ ttl }) => ttl === -1).map(({ key }) => key)
}

const warned = new Set<string>()

function warnOnce(variable: string, what: string, row: StoreKindName): void {
  if (warned.has(row)) return
  warned.add(row)
  console.warn(`[express-smart-on-fhir tests] ${variable} is not set and ${what} was not found: tests over ${row} are SKIPPED.`)
}

/**
 * Rows for `describe.each`: `[['MemoryStore', kind], ['RedisStore', kind], ['RedisCluster', kind]]`.
 * Outside CI a Redis row whose variable (REDIS_URL, REDIS_CLUSTER_NODES) is unset is omitted (one
 * warning per test file); with CI=true it never is.
 */
export function storeKinds(): StoreKindRow[] {
  const rows: StoreKindRow[] = [['MemoryStore', memoryStoreKind]]
  const inCi = process.env.CI === 'true'
  if (process.env.REDIS_URL || inCi) rows.push(['RedisStore', redisStoreKind])
  else warnOnce('REDIS_URL', 'redis-server', 'RedisStore')
  if (process.env.REDIS_CLUSTER_NODES || inCi) rows.push(['RedisCluster', redisClusterKind])
  else warnOnce('REDIS_CLUSTER_NODES', 'redis-server or redis-cli', 'RedisCluster')
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
