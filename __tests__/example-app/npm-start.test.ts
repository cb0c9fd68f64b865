import { spawn } from 'node:child_process'
import { get } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { join } from 'node:path'

jest.setTimeout(60_000)

/** GET over https from the app's self-signed certificate: the JSON body and the certificate's names. */
function getSelfSigned(url: URL): Promise<{ status: number; body: unknown; subjectAltName: string | undefined }> {
  return new Promise((resolve, reject) => {
    // The certificate is made at start and trusted by nobody: check what it names instead.
    get(url, { rejectUnauthorized: false }, (res) => {
      const subjectAltName = (res.socket as TLSSocket).getPeerCertificate().subjectaltname
      let text = ''
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), subjectAltName })
        } catch (err) {
          reject(err)
        }
      })
    }).on('error', reject)
  })
}

describe('npm start', () => {
  it('prints both ways in and serves the EHR page (EHR launch, also in the EHR frame) and the app page over https (standalone sign-in) within 30 s', async () => {
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
          if (match && /Example app:\s+https:\/\/\S+/.test(output)) {
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
      expect(ehrPage).toMatch(/Launch in the EHR frame/)
      expect(ehrPage).toMatch(/standalone/i)
      expect(output).toMatch(/click "Launch" \(a new tab\) or "Launch in the EHR frame"/)
      // The app on another site than the EHR (localhost, 127.0.0.1), over https: its cookie may be Secure, so it works in the EHR's frame.
      const appUrl = new URL(/Example app:\s+(https:\/\/\S+)/.exec(output)![1])
      expect(appUrl.hostname).toBe('localhost')
      expect(new URL(ehrUrl).hostname).toBe('127.0.0.1')
      expect(output).toMatch(/standalone: open this and click "Sign in with the EHR"/)
      expect(output).toMatch(/self-signed/)
      const ehrs = await getSelfSigned(new URL('/ehrs', appUrl))
      expect(ehrs).toEqual({
        status: 200,
        body: [{ iss: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/fhir$/), name: expect.stringContaining('EHR') }],
        subjectAltName: 'DNS:localhost, IP Address:127.0.0.1',
      })
      expect(Date.now() - started).toBeLessThan(60_000)
    } finally {
      // npm runs the app in a child of its own: end the whole process group.
      if (child.pid) process.kill(-child.pid, 'SIGTERM')
    }
  })
})
