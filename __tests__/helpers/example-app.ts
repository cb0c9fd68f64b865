import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMockEhr, type MockEhr } from 'express-smart-on-fhir/testing'
import { createExampleApp } from '../../example-app/server'

export interface RunningExample {
  ehr: MockEhr
  /** The EHR's home page with its patient list and Launch links. */
  ehrHome: string
  /** A second EHR (same seed patients, same ids) allowed to launch the app, when asked for. */
  otherEhr?: { ehr: MockEhr; ehrHome: string }
  appUrl: string
  close: () => Promise<void>
}

/** The mock EHR and the example app on free ports, wired as `npm start` wires them. */
export async function startExample(
  opts: { redisUrl?: string; databaseUrl?: string; accessTokenTtlSeconds?: number; refreshLeewaySeconds?: number; twoEhrs?: boolean } = {},
): Promise<RunningExample> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const appUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const ehr = await createMockEhr({ appLaunchUrl: `${appUrl}/launch`, appLoginUrl: `${appUrl}/login`, accessTokenTtlSeconds: opts.accessTokenTtlSeconds })
  const other = opts.twoEhrs ? await createMockEhr({ appLaunchUrl: `${appUrl}/launch` }) : undefined
  const { app, close } = await createExampleApp({
    publicUrl: appUrl,
    sessionSecret: 'example-test-secret',
    redisUrl: opts.redisUrl,
    databaseUrl: opts.databaseUrl,
    clientId: 'mock-app',
    issuers: [ehr.iss, ...(other ? [other.iss] : [])],
    allowHttpIssuer: true,
    refreshLeewaySeconds: opts.refreshLeewaySeconds ?? 60,
  })
  server.on('request', app)
  return {
    ehr,
    ehrHome: new URL('/', ehr.iss).href,
    ...(other ? { otherEhr: { ehr: other, ehrHome: new URL('/', other.iss).href } } : {}),
    appUrl,
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await Promise.all([ehr.close(), other?.close(), close()])
    },
  }
}
