// Jest's globalSetup and globalTeardown run in one process and share its globalThis, but not their modules'
// state: a running server started by one is handed to the other through a property of globalThis.

/** A named place on globalThis holding one `T` between global-setup.ts and global-teardown.ts. */
export function globalSlot<T>(key: string): { remember(value: T | undefined): void; recall(): T | undefined } {
  const slots = globalThis as typeof globalThis & Record<string, T | undefined>
  return {
    remember: (value) => void (slots[key] = value),
    recall: () => slots[key],
  }
}
