// A strict TypeScript app (CommonJS output under nodenext): req.smart is typed through the package's
// declaration merging on Express.Request. Type-checked only (tsc --noEmit), never run.
import express from 'express'
import session from 'express-session'
import 'express-smart-on-fhir'
import { requireSmartContext, SmartError, type SmartMiddlewareOptions } from 'express-smart-on-fhir'

const opts: SmartMiddlewareOptions = {
  config: {
    clientId: 'consumer',
    scope: 'openid fhirUser launch launch/patient patient/*.rs',
    callbackUrl: 'https://app.example.org/callback',
    redirectUrl: '/',
    knownFhirServers: [{ issuer: 'https://ehr.example.org/fhir', type: 'public' }],
  },
  options: { enableMultiLaunch: true },
}

const app = express()
app.use(session({ secret: 'consumer', resave: false, saveUninitialized: false }))
app.get('/', requireSmartContext(opts), (req, res) => {
  const id: string | undefined = req.smart.patient?.id
  res.send(id)
})
app.get('/patient', requireSmartContext(opts), async (req, res) => {
  const patient = await req.smart.read('Patient', req.smart.patient!.id)
  const name: string | undefined = patient.name?.[0]?.family
  res.json({ name, scope: req.smart.scope })
})
app.get('/typed', requireSmartContext(opts), (req, res) => {
  // req.smart is the package's ReadyClient, not `any`: an unknown member is an error.
  // @ts-expect-error no such member on ReadyClient
  req.smart.notAMember()
  res.end()
})
app.use((err: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => {
  if (err instanceof SmartError) {
    const code: string = err.code
    res.status(err.status).json({ code })
    return
  }
  next(err)
})

// @ts-expect-error the configuration is checked: clientId must be a string
const wrong: SmartMiddlewareOptions = { config: { ...opts.config, clientId: 42 } }
export { app, wrong }
