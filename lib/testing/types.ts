/**
 * How a faulty endpoint misbehaves: answer 500, never answer (until `close()`), answer 200 with a body that is
 * not what the caller expects, or `drop`: do the work (a grant is issued, a refresh token rotates) and never
 * deliver the answer (until `close()`), as when the caller crashes while the answer is on its way.
 *
 * @example
 * ehr.faults.token = 'hang'      // the next token request never answers
 * delete ehr.faults.token        // heal
 */
export type Fault = '500' | 'hang' | 'malformed' | 'drop'

/**
 * The EHR context a launch id stands for; returned to the app in the token response.
 *
 * @example
 * const url = ehr.launchUrl('http://127.0.0.1:3000/launch', { patient: 'patient-1', encounter: 'patient-1-encounter-1', intent: 'reconcile-medications' })
 */
export interface LaunchContext {
  patient: string
  encounter?: string
  intent?: string
  needPatientBanner?: boolean
  smartStyleUrl?: string
  fhirContext?: Array<{ reference?: string; canonical?: string; type?: string; role?: string }>
}

/**
 * A client registered at the mock authorization server. Without `redirectUris` any http(s) redirect_uri is accepted.
 *
 * @example
 * const ehr = await createMockEhr({ clients: [
 *   { clientId: 'my-app', type: 'public' },
 *   { clientId: 'my-backend', type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 's3cret' },
 * ] })
 */
export type MockEhrClient = { clientId: string; redirectUris?: string[] } & (
  | { type: 'public' }
  | {
      type: 'confidential-symmetric'
      clientSecret: string
      method: 'client_secret_basic' | 'client_secret_post'
      /**
       * Compare Basic credentials as sent, without form-decoding them, like EHRs that never decode
       * (`my%2Dapp` is then not `my-app`). Default false: decoded, as RFC 6749 §2.3.1 says.
       */
      rawBasicCredentials?: boolean
    }
  | {
      type: 'confidential-asymmetric'
      /** The client's public keys; each needs a `kid`, which the client's assertions must name. */
      jwks: { keys: Array<JsonWebKey & { kid?: string }> }
      alg?: 'RS384' | 'ES384'
    }
)

/**
 * Options of `createMockEhr()`; all optional.
 *
 * @example
 * const ehr = await createMockEhr({ accessTokenTtlSeconds: 60, appLaunchUrl: 'http://127.0.0.1:3000/launch' })
 */
export interface MockEhrOptions {
  /** Default: one public client `mock-app` accepting any redirect_uri. */
  clients?: MockEhrClient[]
  /** Default 3600. */
  accessTokenTtlSeconds?: number
  /** Default 14 days. */
  refreshTokenTtlSeconds?: number
  /**
   * Default true: each refresh consumes the refresh token and answers a new one. false: the refresh
   * token stays valid and refresh answers carry none (as several EHRs do); the app keeps its own.
   */
  rotateRefreshTokens?: boolean
  /**
   * The practitioner who "logs in" and approves every authorization, unless `authorize()` signs in a
   * patient or a related person instead (see {@link AuthorizeOptions.user}). Default `smart-practitioner-1`.
   */
  practitionerId?: string
  /** The id_token's `fhirUser` as `Practitioner/<id>` (`Patient/<id>`, ...) instead of an absolute URL on the FHIR base. */
  fhirUserRelative?: boolean
  /** Default: a free port. */
  port?: number
  /**
   * The registered app's launch URL (e.g. `http://127.0.0.1:3000/launch`). The EHR home page (`GET /`)
   * then shows a "Launch" link per patient; each click mints a launch id and redirects to
   * `appLaunchUrl?iss=...&launch=...`. Beside it, "Launch in the EHR frame" opens the EHR's page
   * `/app-frame?patient=<id>`, which runs the same launch inside an `<iframe>` of its own (sandbox
   * `allow-scripts allow-same-origin allow-forms allow-popups`); an app on `localhost` is then a cross-site
   * frame of the EHR's `127.0.0.1`. Without it the page lists patients only.
   */
  appLaunchUrl?: string
  /**
   * Which SMART scope syntax the EHR speaks (README "EHR notes"). `'v1'`: its smart-configuration lists
   * `permission-v1` and not `permission-v2`, and it grants only v1 resource scopes (`patient/*.read`) — v2
   * scopes asked of it are dropped from the grant, as a v1-only EHR does. Default `'both'`.
   */
  scopeSyntax?: 'v1' | 'both'
  /** false: no refresh tokens, whatever the app asks (an "online" provider app at Oracle Health). Default true. */
  refreshTokens?: boolean
  /** false: no revocation endpoint, advertised or served (many EHRs have none). Default true. */
  revocation?: boolean
  /**
   * The registered app's standalone login URL (its `smartLogin()` route, e.g. `http://127.0.0.1:3000/login`).
   * The EHR home page then shows an "Open the app outside the EHR (standalone)" link to
   * `appLoginUrl?iss=<FHIR base>`, and "Open the app in the EHR frame (standalone)": the same inside the
   * EHR's frame page (`/app-frame`), where the patient picker shows in the frame.
   */
  appLoginUrl?: string
}

/**
 * Who signs in at the mock EHR's authorization server when {@link MockEhr.authorize} plays the browser:
 * - `'practitioner'` (default): the practitioner of `MockEhrOptions.practitionerId`; id_token `fhirUser`
 *   `Practitioner/<id>`. A standalone launch asking for `launch/patient` shows them the patient picker.
 * - `'patient'`: the patient named by `AuthorizeOptions.patient` themselves (a patient portal login);
 *   `fhirUser` `Patient/<id>`. No picker: the launch context is their own record.
 * - `'related-person'`: the seeded RelatedPerson of that patient (`<patient>-related-person`, e.g. a
 *   parent), signing in on the patient's behalf; `fhirUser` `RelatedPerson/<id>`. No picker either.
 *
 * Patient and related-person logins see only that patient's compartment at the FHIR server, whatever
 * the scopes. `fhirUser` is absolute on the FHIR base unless `fhirUserRelative`.
 *
 * @example
 * await ehr.authorize(authorizationUrl, { user: 'patient', patient: 'patient-2' })
 */
export type MockEhrUser = 'practitioner' | 'patient' | 'related-person'

/**
 * How {@link MockEhr.authorize} answers at the authorization server.
 *
 * @example
 * const callback = await ehr.authorize(authorizationUrl, { patient: 'patient-3' })   // picks patient-3 at the picker
 * const denied = await ehr.authorize(otherUrl, { deny: true })                      // ?error=access_denied
 */
export interface AuthorizeOptions {
  /**
   * The patient of this authorization. Signed in as the practitioner: the patient to choose at the
   * patient picker, which the EHR shows for a standalone launch (no `launch` parameter) whose scope asks
   * for `launch/patient`; `authorize()` fails if the picker does not list this patient, or if no picker
   * came and the EHR issued a code anyway. Signed in as `'patient'` or `'related-person'`: whose login it
   * is (required then).
   */
  patient?: string
  /** Who signs in. Default `'practitioner'`. */
  user?: MockEhrUser
  /** Answer "Deny" at the patient picker: the app gets `error=access_denied`. */
  deny?: boolean
}

/**
 * What the mock EHR counted since it started.
 *
 * @example
 * const before = ehr.stats.refreshGrants
 * // ... requests that should refresh once ...
 * expect(ehr.stats.refreshGrants - before).toBe(1)
 */
export interface MockEhrStats {
  discoveryFetches: number
  codeGrants: number
  refreshGrants: number
  fhirRequests: number
  revocations: number
}

/**
 * One request the FHIR server received (`ehr.fhirLog`), with the access token it carried.
 *
 * @example
 * expect(ehr.fhirLog.at(-1)).toMatchObject({ method: 'GET', status: 200 })
 */
export interface FhirLogEntry {
  method: string
  url: string
  accessToken: string | null
  status: number
}

/**
 * The faults in force, per endpoint (`ehr.faults`): set a field to make that endpoint misbehave.
 *
 * @example
 * ehr.faults = { discovery: '500', authorize: 'deny' }
 */
export interface MockEhrFaults {
  discovery?: Fault
  token?: Fault
  fhir?: Fault
  jwks?: Fault
  authorize?: 'deny'
}

/**
 * A running mock SMART EHR (`createMockEhr()`): its URLs, the browser it plays, its counters and faults.
 *
 * @example
 * const ehr = await createMockEhr()
 * const launchUrl = ehr.launchUrl('http://127.0.0.1:3000/launch', { patient: 'patient-1' })
 * await ehr.close()
 */
export interface MockEhr {
  /** The FHIR base URL, `http://127.0.0.1:<port>/fhir`: what an EHR launch sends as `iss`. */
  readonly iss: string
  /** The authorization server's issuer (id_token `iss`, RFC 9207 `iss`). Differs from `iss`. */
  readonly issuer: string
  /** Mints a launch id bound to `context` and returns `appLaunchUrl?iss=...&launch=...`. */
  launchUrl(appLaunchUrl: string, context: LaunchContext): string
  /**
   * Plays the user's browser: follows the authorization flow and resolves with the redirect back to the
   * app (never requested). Without options it signs in as the practitioner and fails at a patient picker,
   * saying that a patient must be picked; see {@link AuthorizeOptions}.
   *
   * @example
   * ```ts
   * // a standalone launch: the app asked for launch/patient and sent no launch parameter
   * const back = await ehr.authorize(authorizationUrl, { patient: 'patient-2' })      // picks patient-2
   * const denied = await ehr.authorize(authorizationUrl, { deny: true })              // ?error=access_denied
   * const portal = await ehr.authorize(authorizationUrl, { user: 'patient', patient: 'patient-2' })
   * ```
   */
  authorize(authorizationUrl: string, options?: AuthorizeOptions): Promise<URL>
  /** Makes every access token issued so far invalid at the FHIR server (401). */
  expireAccessTokens(): void
  readonly stats: MockEhrStats
  readonly fhirLog: FhirLogEntry[]
  /** Mutable: set a field to make that endpoint misbehave, delete it to heal. */
  faults: MockEhrFaults
  close(): Promise<void>
}
