/**
 * oidc-provider storage adapter for one mock EHR instance. The provider's built-in one is the same
 * idea but warns on every start. Clients are served from here rather than the `clients` option:
 * oidc-provider structuredClone()s static clients, and under Jest that yields objects of another
 * realm which its metadata validation rejects (a client `jwks` becomes "invalid"). Payloads are
 * copied through JSON for the same reason.
 */
type Payload = Record<string, unknown> & { grantId?: string; userCode?: string; uid?: string; consumed?: number }

interface Entry {
  payload: Payload
  expiresAt: number
}

const copy = (payload: Payload): Payload => JSON.parse(JSON.stringify(payload))

export function memoryAdapterFactory(clients: Array<Record<string, unknown>>): (model: string) => object {
  const entries = new Map<string, Entry>()
  for (const client of clients) {
    entries.set(`Client:${String(client.client_id)}`, { payload: copy(client), expiresAt: Infinity })
  }
  const grantIndex = new Map<string, Set<string>>()

  function live(key: string): Payload | undefined {
    const entry = entries.get(key)
    if (!entry) return undefined
    if (entry.expiresAt <= Date.now()) {
      entries.delete(key)
      return undefined
    }
    return copy(entry.payload)
  }

  return function createAdapter(model: string) {
    const key = (id: string) => `${model}:${id}`
    return {
      async upsert(id: string, payload: Payload, expiresIn: number) {
        entries.set(key(id), { payload: copy(payload), expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity })
        if (payload.grantId) {
          const keys = grantIndex.get(payload.grantId) ?? new Set<string>()
          keys.add(key(id))
          grantIndex.set(payload.grantId, keys)
        }
      },
      async find(id: string) {
        return live(key(id))
      },
      async findByUid(uid: string) {
        for (const [entryKey, entry] of entries) {
          if (entryKey.startsWith(`${model}:`) && entry.payload.uid === uid) return live(entryKey)
        }
        return undefined
      },
      async findByUserCode(userCode: string) {
        for (const [entryKey, entry] of entries) {
          if (entryKey.startsWith(`${model}:`) && entry.payload.userCode === userCode) return live(entryKey)
        }
        return undefined
      },
      async consume(id: string) {
        const entry = entries.get(key(id))
        if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000)
      },
      async destroy(id: string) {
        entries.delete(key(id))
      },
      async revokeByGrantId(grantId: string) {
        for (const entryKey of grantIndex.get(grantId) ?? []) entries.delete(entryKey)
        grantIndex.delete(grantId)
      },
    }
  }
}
