// What SMART state leaves in Redis: prefixes that keep the hash tags of the keys intact, a session's keys
// in one Redis Cluster slot, and no key that lives for ever.
import { randomBytes } from 'node:crypto'
import { RedisStore } from 'connect-redis'
import { MemoryStore, type Store } from 'express-session'
import request from 'supertest'
import { createClient } from 'redis'
import { SmartClient, expressSessionStorage, failFastStore } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { testApp } from '../helpers/app'
import { devOptions, openConfig } from '../helpers/smart'
import { keysWithoutTtl, redisClusterKind, storeKinds, type OpenedStore } from '../helpers/stores'

const inCi = process.env.CI === 'true'
const clusterExpected = Boolean(process.env.REDIS_CLUSTER_NODES) || inCi
const redisRows = storeKinds().filter(([name]) => name === 'RedisStore' || name === 'RedisCluster')

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
    let oneNode: ReturnType<typeof createClient>
    beforeAll(async () => {
      opened = await redisClusterKind.open()
      oneNode = createClient({ url: `redis://${process.env.REDIS_CLUSTER_NODES!.split(',')[0]}`, socket: { connectTimeout: 5000, reconnectStrategy: false } })
      oneNode.on('error', () => {})
      await oneNode.connect()
    })
    afterAll(async () => {
      await opened.close()
      await oneNode.close()
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

      const slotOf = (key: string) => oneNode.clusterKeySlot(key)
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

if (redisRows.length) describe.each(redisRows)('no key without a TTL, over %s', (_name, kind) => {
  let ehr: MockEhr
  let opened: OpenedStore
  beforeAll(async () => {
    ehr = await createMockEhr()
    opened = await kind.open()
  })
  afterAll(async () => {
    await opened.close()
    await ehr.close()
  })

  /** The documented setup behind failFastStore, plus a logout route: SMART logout, then the session goes. */
  function appWithLogout(store: Store) {
    const app = testApp({ store })
    app.post('/logout', async (req, res, next) => {
      try {
        await new SmartClient(req.sessionID, expressSessionStorage(req.sessionStore), openConfig(), devOptions).logout()
        req.session.destroy((err) => (err ? next(err) : res.sendStatus(204)))
      } catch (err) {
        next(err)
      }
    })
    return app
  }

  async function expectEveryKeyToExpire(): Promise<string[]> {
    const keys = (await opened.keys!()).map(({ key }) => key)
    expect(await keysWithoutTtl(opened)).toEqual([])
    return keys
  }

  it('launch → callback → API call → logout leaves only keys that expire, the session keys included', async () => {
    const { prefix } = opened.store as RedisStore
    const agent = request.agent(appWithLogout(failFastStore(opened.store)))
    const launch = await agent.get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`).expect(302)
    const afterLaunch = await expectEveryKeyToExpire()
    expect(afterLaunch.some((key) => !key.startsWith(`${prefix}smart:`))).toBe(true) // express-session's own
    expect(afterLaunch.some((key) => key.startsWith(`${prefix}smart:`))).toBe(true) // the pending launch

    const back = await ehr.authorize(launch.headers.location)
    await agent.get(`${back.pathname}${back.search}`).expect(302)
    const afterCallback = await expectEveryKeyToExpire()
    expect(afterCallback.some((key) => key.startsWith(`${prefix}smart:session:`))).toBe(true) // the completed launch

    await agent.get('/api/patient').expect(200)
    await expectEveryKeyToExpire()

    await agent.post('/logout').expect(204)
    await agent.get('/api/context').expect(401)
    const afterLogout = await expectEveryKeyToExpire()
    expect(afterLogout.length).toBeGreaterThan(0) // the retired pre-callback session and its forward outlive the flow, and expire
  })
})
