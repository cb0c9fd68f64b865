// What SMART state leaves in Redis: prefixes that keep the hash tags of the keys intact, and a session's
// keys in one Redis Cluster slot.
import { randomBytes } from 'node:crypto'
import { RedisStore } from 'connect-redis'
import { MemoryStore } from 'express-session'
import { createClient } from 'redis'
import { expressSessionStorage, failFastStore } from '../../lib'
import { redisClusterKind, type OpenedStore } from '../helpers/stores'

const inCi = process.env.CI === 'true'
const clusterExpected = Boolean(process.env.REDIS_CLUSTER_NODES) || inCi

describe('key prefixes and Redis Cluster hash tags', () => {
  it('expressSessionStorage refuses a prefix with a brace, naming the option', () => {
    for (const prefix of ['{smart}:', 'smart{', 'smart}:']) {
      expect(() => expressSessionStorage(new MemoryStore(), { prefix })).toThrow(TypeError)
      expect(() => expressSessionStorage(new MemoryStore(), { prefix })).toThrow(/"prefix" option/)
    }
    expect(() => expressSessionStorage(new MemoryStore(), { prefix: 'app:smart:' })).not.toThrow()
  })

  if (clusterExpected) describe('over RedisCluster', () => {
    let opened: OpenedStore
    /** A client of one node, for CLUSTER KEYSLOT. */
    let node: ReturnType<typeof createClient>
    beforeAll(async () => {
      opened = await redisClusterKind.open()
      node = createClient({ url: `redis://${process.env.REDIS_CLUSTER_NODES!.split(',')[0]}`, socket: { connectTimeout: 5000, reconnectStrategy: false } })
      node.on('error', () => {})
      await node.connect()
    })
    afterAll(async () => {
      await opened.close()
      await node.close()
    })

    it('refuses a RedisStore whose own prefix has a brace, also behind failFastStore', () => {
      const { client } = opened.store as RedisStore
      for (const prefix of ['{app}:', 'app{:']) {
        const store = new RedisStore({ client, prefix })
        expect(() => expressSessionStorage(store)).toThrow(/RedisStore "prefix" option/)
        expect(() => expressSessionStorage(failFastStore(store))).toThrow(TypeError)
      }
    })

    it("a session's keys share the slot of their hash tag, with connect-redis's prefix and ours in front", async () => {
      const storage = expressSessionStorage(opened.store)
      const { prefix } = opened.store as RedisStore
      const tags = Array.from({ length: 12 }, () => randomBytes(6).toString('hex'))
      for (const tag of tags) {
        // The two writes of expressSessionStorage: through the store (set) and straight to Redis (SET NX).
        await storage.set(`session:{${tag}}`, { launches: {} }, 60)
        await expect(storage.setIfAbsent!(`lock:{${tag}}`, 'owner', 60)).resolves.toBe(true)
      }
      const written = new Map((await opened.keys!()).map(({ key, node }) => [key, node]))
      expect(written.size).toBe(2 * tags.length)

      const slotOf = (key: string) => node.clusterKeySlot(key)
      const masters = new Set<string>()
      for (const tag of tags) {
        const [session, lock] = [`${prefix}smart:session:{${tag}}`, `${prefix}smart:lock:{${tag}}`]
        expect(written.has(session) && written.has(lock)).toBe(true)
        expect(await slotOf(session)).toBe(await slotOf(tag))
        expect(await slotOf(lock)).toBe(await slotOf(tag))
        expect(written.get(lock)).toBe(written.get(session))
        masters.add(written.get(session)!)
      }
      // The prefixes carry no tag of their own: sessions spread over the masters (all on one: 3 in 3^12).
      expect(masters.size).toBeGreaterThan(1)
    })
  })
})
