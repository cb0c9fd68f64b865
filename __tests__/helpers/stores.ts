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
// node-redis's cluster client) to the Redis Cluster of process.env.REDIS_CLUSTER_NODES, the PostgreSQL
// variant (connect-pg-simple over a `pg` pool) to process.env.DATABASE_URL; global-setup.ts sets all
// three. Without one: in CI (CI=true) the row stays and open() fails loudly; elsewhere the row is left
// out with a warning.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import connectPgSimple from 'connect-pg-simple'
import session, { MemoryStore, type SessionData, type Store } from 'express-session'
import { RedisStore } from 'connect-redis'
import { Pool } from 'pg'
import { createClient, createCluster, type RedisClientType, type RedisClusterType } from 'redis'

export type StoreKindName = 'MemoryStore' | 'RedisStore' | 'RedisCluster' | 'PostgreSQL'

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
   * connection and a new RedisStore with the same key prefix. PostgreSQL: a new pool and a new PGStore
   * on the same table. Memory: the same `store` again (a MemoryStore cannot be shared between
   * processes). Closed by `close()`.
   */
  newStore(): Promise<Store>
  /**
   * Removes what the stores wrote (Redis: the keys under the prefix; PostgreSQL: the table) and closes
   * every connection.
   */
  close(): Promise<void>
  /**
   * Redis kinds: every key under this open()'s prefix (which every store of it writes under), found
   * by SCAN on the one server or on every master of the cluster. PostgreSQL: every row of its table,
   * expired ones included (`ttl` then negative), until connect-pg-simple prunes them.
   */
  keys?(): Promise<StoredKey[]>
  /** PostgreSQL only: the name of the table (in the default schema) this open() made, which every store of it uses. */
  table?: string
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

const PGStore = connectPgSimple(session)

/** connect-pg-simple's own table definition, for a table of another name; its constraint and index names too, so tables never collide. */
function sessionTableDdl(table: string): string {
  return readFileSync(join(require.resolve('connect-pg-simple'), '..', 'table.sql'), 'utf8').replaceAll('session', table)
}

/** A pool on DATABASE_URL that fails, not hangs, when the database is away. */
export function pgPool(url: string): Pool {
  const pool = new Pool({ connectionString: url, connectionTimeoutMillis: 5000, max: 10 })
  // An idle client the server dropped emits 'error' on the pool: without a listener, the Jest worker would crash.
  pool.on('error', () => {})
  return pool
}

/**
 * PostgreSQL: connect-pg-simple over a `pg` pool, one table per open() (as a Redis kind has one prefix),
 * created here with connect-pg-simple's own table.sql — not `createTableIfMissing`, which two stores
 * starting at once would race on.
 */
export const postgresKind: StoreKind = {
  name: 'PostgreSQL',
  sharedAcrossProcesses: true,
  async open(): Promise<OpenedStore> {
    const url = process.env.DATABASE_URL
    if (!url) {
      throw new Error(
        'DATABASE_URL is not set: the PostgreSQL tests need a database. Install postgresql ' +
          '(`apt-get install -y postgresql`) so __tests__/helpers/global-setup.ts can start one, or set DATABASE_URL.',
      )
    }
    const table = `test_${randomBytes(8).toString('hex')}`
    const admin = pgPool(url)
    try {
      await admin.query(sessionTableDdl(table))
    } catch (err) {
      await admin.end()
      throw unreachable(`PostgreSQL at DATABASE_URL=${url}`, err)
    }
    const opened: Array<{ pool: Pool; store: InstanceType<typeof PGStore> }> = []
    const open = (): Store => {
      const pool = pgPool(url)
      const store = new PGStore({ pool, tableName: table })
      opened.push({ pool, store })
      return store
    }
    let closed = false
    return {
      store: open(),
      table,
      newStore: async () => {
        if (closed) throw new Error('newStore() after close()')
        return open()
      },
      keys: async () => {
        const { rows } = await admin.query<{ sid: string; ttl: number }>(`SELECT sid, extract(epoch FROM expire - localtimestamp)::float AS ttl FROM "${table}"`)
        const { hostname, port } = new URL(url)
        return rows.map(({ sid, ttl }) => ({ key: sid, ttl, node: `${hostname}:${port || 5432}` }))
      },
      close: async () => {
        if (closed) return
        closed = true
        const results = await Promise.allSettled(opened.map(async ({ pool, store }) => {
          await store.close()
          await pool.end()
        }))
        try {
          await admin.query(`DROP TABLE IF EXISTS "${table}"`)
        } finally {
          await admin.end()
        }
        const failed = results.find((r) => r.status === 'rejected')
        if (failed) throw failed.reason
      },
    }
  },
}

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
 * Rows for `describe.each`: `[['MemoryStore', kind], ['RedisStore', kind], ['RedisCluster', kind],
 * ['PostgreSQL', kind]]`. Outside CI a row whose variable (REDIS_URL, REDIS_CLUSTER_NODES, DATABASE_URL)
 * is unset is omitted (one warning per test file); with CI=true it never is.
 */
export function storeKinds(): StoreKindRow[] {
  const rows: StoreKindRow[] = [['MemoryStore', memoryStoreKind]]
  const inCi = process.env.CI === 'true'
  if (process.env.REDIS_URL || inCi) rows.push(['RedisStore', redisStoreKind])
  else warnOnce('REDIS_URL', 'redis-server', 'RedisStore')
  if (process.env.REDIS_CLUSTER_NODES || inCi) rows.push(['RedisCluster', redisClusterKind])
  else warnOnce('REDIS_CLUSTER_NODES', 'redis-server or redis-cli', 'RedisCluster')
  if (process.env.DATABASE_URL || inCi) rows.push(['PostgreSQL', postgresKind])
  else warnOnce('DATABASE_URL', 'PostgreSQL (initdb, pg_ctl)', 'PostgreSQL')
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
