import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMockEhr } from 'express-smart-on-fhir/testing'
import { createExampleApp } from './server'
import { settingsFromEnv } from './settings'

/**
 * `npm start`: the built-in mock EHR and the example app, both on 127.0.0.1. Two ways in: open the EHR's
 * URL and launch a patient (each launch opens the app in a new tab), or open the app and sign in with the
 * EHR, which asks for a patient (standalone launch). PORT (default 3000) and EHR_PORT (default:
 * a free port) choose the ports; ACCESS_TOKEN_TTL the mock's token lifetime in seconds.
 */
async function main(): Promise<void> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const publicUrl = process.env.APP_URL ?? `http://127.0.0.1:${port}`
  const ehr = await createMockEhr({
    appLaunchUrl: `${publicUrl}/launch`,
    appLoginUrl: `${publicUrl}/login`,
    port: Number(process.env.EHR_PORT ?? 0),
    accessTokenTtlSeconds: Number(process.env.ACCESS_TOKEN_TTL ?? 3600),
  })
  const { app, close } = await createExampleApp(settingsFromEnv(process.env, { issuers: [ehr.iss], publicUrl, allowHttpIssuer: true }))
  server.on('request', app)
  console.log(`Mock EHR:    ${new URL('/', ehr.iss).href}   <- EHR launch: open this and click "Launch"`)
  console.log(`Example app: ${publicUrl}/   <- standalone: open this and click "Sign in with the EHR" (sessions in ${process.env.REDIS_URL ? 'Redis' : 'memory'})`)
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
