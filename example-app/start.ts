import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { createMockEhr } from 'express-smart-on-fhir/testing'
import { createExampleApp } from './server'
import { settingsFromEnv } from './settings'
import { selfSignedCertificate } from './tls'

/**
 * `npm start`: the built-in mock EHR on http://127.0.0.1 and the example app on https://localhost — two sites, as
 * an EHR and an app are. Three ways in: open the EHR's URL and click "Launch" (the app in a new tab) or "Launch in
 * the EHR frame" (the app inside the EHR's page), or open the app and sign in with the EHR, which asks for a patient
 * (standalone launch). One configuration serves all three: https with a self-signed certificate made at start (for
 * localhost and 127.0.0.1, valid a day) and the session cookie `SameSite=None; Secure; Partitioned`; the EHR's origin
 * may frame the app, no other. APP_URL=http://... serves plain http instead (top-level only). PORT (default 3000)
 * and EHR_PORT (default: a free port) choose the ports; ACCESS_TOKEN_TTL the mock's token lifetime in seconds.
 */
async function main(): Promise<void> {
  const https = !process.env.APP_URL?.startsWith('http:')
  const server: Server = https ? createHttpsServer(selfSignedCertificate()) : createHttpServer()
  await new Promise<void>((resolve) => server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const publicUrl = (process.env.APP_URL ?? `https://localhost:${port}`).replace(/\/$/, '')
  const ehr = await createMockEhr({
    appLaunchUrl: `${publicUrl}/launch`,
    appLoginUrl: `${publicUrl}/login`,
    port: Number(process.env.EHR_PORT ?? 0),
    accessTokenTtlSeconds: Number(process.env.ACCESS_TOKEN_TTL ?? 3600),
  })
  const ehrHome = new URL('/', ehr.iss)
  const { app, close } = await createExampleApp(settingsFromEnv(process.env, {
    issuers: [ehr.iss], publicUrl, allowHttpIssuer: true, frameAncestors: [ehrHome.origin],
  }))
  server.on('request', app)
  console.log(`Mock EHR:    ${ehrHome.href}   <- EHR launch: open this and click "Launch" (a new tab) or "Launch in the EHR frame" (inside the EHR's page)`)
  console.log(`Example app: ${publicUrl}/   <- standalone: open this and click "Sign in with the EHR" (sessions in ${process.env.REDIS_URL ? 'Redis' : process.env.DATABASE_URL ? 'PostgreSQL' : 'memory'})`)
  if (https) console.log('The app\'s certificate is self-signed (made now, for localhost): open the app\'s URL first and let the browser proceed, or the EHR\'s frame shows a certificate error.')
  const stop = async () => {
    server.closeAllConnections()
    server.close()
    await Promise.all([ehr.close(), close()])
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
