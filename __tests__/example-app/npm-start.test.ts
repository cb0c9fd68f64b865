import { spawn } from 'node:child_process'
import { join } from 'node:path'

jest.setTimeout(60_000)

describe('npm start', () => {
  it('serves the EHR page within 30 s', async () => {
    const started = Date.now()
    const child = spawn('npm', ['start'], {
      cwd: join(__dirname, '..', '..'),
      env: { ...process.env, PORT: '0', REDIS_URL: '' },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    try {
      const ehrUrl = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`npm start printed no EHR URL within 30 s:\n${output}`)), 30_000)
        const onData = (chunk: Buffer) => {
          output += chunk.toString()
          const match = /Mock EHR:\s+(http:\/\/\S+)/.exec(output)
          if (match) {
            clearTimeout(timer)
            resolve(match[1])
          }
        }
        child.stdout.on('data', onData)
        child.stderr.on('data', onData)
        child.once('exit', (code) => reject(new Error(`npm start exited (${code}):\n${output}`)))
      })
      const page = await fetch(ehrUrl)
      expect(page.status).toBe(200)
      expect(await page.text()).toMatch(/Launch/)
      expect(Date.now() - started).toBeLessThan(30_000)
    } finally {
      // npm runs the app in a child of its own: end the whole process group.
      if (child.pid) process.kill(-child.pid, 'SIGTERM')
    }
  })
})
