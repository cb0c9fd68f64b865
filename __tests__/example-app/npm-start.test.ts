import { spawn } from 'node:child_process'
import { join } from 'node:path'

jest.setTimeout(60_000)

describe('npm start', () => {
  it('prints both ways in and serves the EHR page (EHR launch) and the app page (standalone sign-in) within 30 s', async () => {
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
          if (match && /Example app:\s+http:\/\/\S+/.test(output)) {
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
      const ehrPage = await page.text()
      expect(ehrPage).toMatch(/Launch/)
      expect(ehrPage).toMatch(/standalone/i)
      const appUrl = /Example app:\s+(http:\/\/\S+)/.exec(output)![1]
      expect(output).toMatch(/standalone: open this and click "Sign in with the EHR"/)
      const ehrs = await (await fetch(new URL('/ehrs', appUrl))).json()
      expect(ehrs).toEqual([{ iss: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/fhir$/), name: expect.stringContaining('EHR') }])
      expect(Date.now() - started).toBeLessThan(30_000)
    } finally {
      // npm runs the app in a child of its own: end the whole process group.
      if (child.pid) process.kill(-child.pid, 'SIGTERM')
    }
  })
})
