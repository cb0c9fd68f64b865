// An ESM app using the installed package: the middlewares answer over HTTP.
import assert from 'node:assert/strict'
import express from 'express'
import session from 'express-session'
import { SmartError, requireSmartContext, smartErrorHandler, smartLaunch } from 'express-smart-on-fhir'

const smart = {
  config: {
    clientId: 'consumer',
    scope: 'openid fhirUser launch launch/patient patient/*.rs',
    callbackUrl: 'http://127.0.0.1/callback',
    redirectUrl: '/',
    knownFhirServers: [{ issuer: 'https://ehr.example.org/fhir', type: 'public' }],
  },
}
const app = express()
app.use(session({ secret: 'consumer', resave: false, saveUninitialized: false }))
app.get('/launch', smartLaunch(smart))
app.get('/api', requireSmartContext(smart), (req, res) => res.json(req.smart.patient))
app.use(smartErrorHandler())

const server = app.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
try {
  const base = `http://127.0.0.1:${server.address().port}`
  const launch = await fetch(`${base}/launch?iss=${encodeURIComponent('https://other.example.org/fhir')}&launch=x`)
  assert.equal(launch.status, 403)
  assert.equal((await launch.json()).code, 'UNKNOWN_ISSUER')
  const api = await fetch(`${base}/api`)
  assert.equal(api.status, 401)
  assert.equal((await api.json()).code, 'NO_SESSION')
  assert.equal(new SmartError('NO_SESSION', 'x').status, 401)
  console.log('ESM consumer: ok')
} finally {
  server.close()
}
