/**
 * Request/response over Node's IPC channel between the bench's orchestrator and its child processes
 * (the app under test, the load generator). The child answers named commands; `exit` makes it leave
 * through process.exit(), so that `--cpu-prof` writes its profile.
 */
import { fork, type ChildProcess } from 'node:child_process'

type Handlers = Record<string, (args: never) => unknown>

interface Request { id: number; command: string; args: unknown }
interface Reply { id: number; result?: unknown; error?: string }
interface Hello { hello: unknown }

/** Child side: answer the orchestrator's commands, then say hello with `hello` (e.g. the port listened on). */
export function serveCommands(handlers: Handlers, hello: unknown): void {
  if (!process.send) throw new Error('this script runs as a child process of bench/run.ts (npm run bench)')
  process.on('message', (message: Request) => {
    const { id, command, args } = message
    if (command === 'exit') {
      process.send!({ id, result: null }, () => process.exit(0))
      return
    }
    const handler = handlers[command]
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command ${command}`)
        return handler(args as never)
      })
      .then(
        (result) => process.send!({ id, result } satisfies Reply),
        (err: unknown) => process.send!({ id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies Reply),
      )
  })
  // The channel must not keep a child alive once the orchestrator is gone.
  process.on('disconnect', () => process.exit(0))
  process.send({ hello } satisfies Hello)
}

export interface ChildHandle<H> {
  readonly child: ChildProcess
  /** What the child said when it was ready. */
  readonly hello: H
  call<T>(command: string, args?: unknown): Promise<T>
  /** Asks the child to exit (writing its CPU profile if it has one); kills it after 10 s. */
  stop(): Promise<void>
}

export interface StartOptions {
  env?: Record<string, string>
  /** Extra node flags, e.g. --expose-gc or --cpu-prof. */
  nodeFlags?: string[]
}

/** Orchestrator side: forks `script` (TypeScript, through esbuild-register) and waits for its hello. */
export function startChild<H>(script: string, opts: StartOptions = {}): Promise<ChildHandle<H>> {
  const child = fork(script, [], {
    execArgv: ['-r', 'esbuild-register', ...(opts.nodeFlags ?? [])],
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>()
  let nextId = 1
  let exited: string | null = null

  child.on('exit', (code, signal) => {
    exited = `${script} exited (${signal ?? `code ${code}`})`
    for (const { reject } of pending.values()) reject(new Error(exited))
    pending.clear()
  })

  return new Promise((resolve, reject) => {
    const onEarlyExit = () => reject(new Error(exited ?? `${script} exited before it was ready`))
    child.once('exit', onEarlyExit)
    child.on('message', (message: Reply | Hello) => {
      if ('hello' in message) {
        child.off('exit', onEarlyExit)
        resolve(handle(message.hello as H))
        return
      }
      const waiting = pending.get(message.id)
      if (!waiting) return
      pending.delete(message.id)
      if (message.error !== undefined) waiting.reject(new Error(`${script}: ${message.error}`))
      else waiting.resolve(message.result)
    })
  })

  function handle(hello: H): ChildHandle<H> {
    function call<T>(command: string, args?: unknown): Promise<T> {
      if (exited) return Promise.reject(new Error(exited))
      return new Promise((resolve, reject) => {
        const id = nextId++
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
        child.send({ id, command, args } satisfies Request)
      })
    }
    async function stop(): Promise<void> {
      if (exited) return
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await call('exit').catch(() => undefined)
      await gone
      clearTimeout(timer)
    }
    return { child, hello, call, stop }
  }
}
