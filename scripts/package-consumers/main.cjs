// A CommonJS app using the installed package: the middlewares answer over HTTP.
const assert = require('node:assert/strict')
const express = require('express')
const session = require('express-session')
const { requireSmartContext, smartCallback, smartErrorHandler, smartLaunch } = require('express-smart-on-fhir')

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
app.get('/callback', smartCallback(smart))
app.get('/api', requireSmartContext(smart), (req, res) => res.json(req.smart.patient))
app.use(smartErrorHandler())

const server = app.listen(0, '127.0.0.1', async () => {
  try {
    const base = `http://127.0.0.1:${server.address().port}`
    const launch = await fetch(`${base}/launch`)
    assert.equal(launch.status, 400)
    assert.equal((await launch.json()).code, 'MISSING_PARAMETER')
    const api = await fetch(`${base}/api`)
    assert.equal(api.status, 401)
    assert.equal((await api.json()).code, 'NO_SESSION')
    console.log('CommonJS consumer: ok')
  } finally {
    server.close()
  }
})
