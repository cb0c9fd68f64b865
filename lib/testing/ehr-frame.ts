import type { NextFunction, Request, Response } from 'express'
import { age, escapeHtml, listName, mrn, page, sendPage } from './html'
import type { FhirResource } from './seed-data'

/**
 * The EHR's page that shows the app inside an `<iframe>` of its own, as web EHRs and embedded (ambient,
 * AI-scribe) apps do: the whole launch — the app's launch, the authorization, the patient picker of a
 * standalone login, the app's callback — and the app's work afterwards run in that frame. The EHR is on
 * 127.0.0.1, so an app on `localhost` is a cross-site frame there (its cookies are third-party cookies).
 */
export const EHR_FRAME_PATH = '/app-frame'

/**
 * The frame's sandbox, like a real EHR's: scripts, the app's own origin (its cookies and storage), forms (the
 * patient picker) and popups. No top navigation: everything stays in the frame.
 */
export const EHR_FRAME_SANDBOX = 'allow-scripts allow-same-origin allow-forms allow-popups'

/** What the frame may show (its CSP frame-src): the EHR's own pages and the app's origins. */
export function frameSources(appUrls: Array<string | undefined>): string[] {
  const origins = new Set(appUrls.filter((url): url is string => url !== undefined).map((url) => new URL(url).origin))
  return ["'self'", ...origins]
}

function patientBanner(patient: FhirResource, today: Date): string {
  return `<div class="chart-banner" id="chart-banner" data-patient-id="${escapeHtml(patient.id)}">
  <span class="name">${escapeHtml(listName(patient))}</span>
  <span class="mrn">${escapeHtml(mrn(patient))}</span>
  <span class="sex">${escapeHtml(patient.gender)}</span>
  <span class="birth-date">${escapeHtml(patient.birthDate)}${escapeHtml(age(patient.birthDate, today))}</span>
</div>`
}

/**
 * The page: the EHR's own banner (the patient's chart, or the standalone sign-in) and the app's frame, whose
 * `src` is where the app starts: the EHR's launch route (a fresh launch id per load) or the app's login URL.
 */
export function framePage(options: { user: string; patient: FhirResource | undefined; src: string; today: Date }): string {
  const { patient, src, user, today } = options
  const banner = patient
    ? patientBanner(patient, today)
    : '<div class="chart-banner" id="chart-banner"><span class="name">The app, signed in from the EHR (standalone)</span></div>'
  const title = patient ? `Mock EHR — ${listName(patient)}` : 'Mock EHR — App'
  return page(title, `Signed in as ${escapeHtml(user)}`, `${banner}
<iframe class="app-frame" id="app-frame" title="SMART app" src="${escapeHtml(src)}" sandbox="${EHR_FRAME_SANDBOX}"></iframe>`, 'chart')
}

/**
 * The authorization server's own cookies are SameSite=Lax (oidc-provider's; this EHR is plain http, and
 * SameSite=None needs Secure). In a frame Chromium sets and sends them only on navigations that a page of a
 * site of the frame's ancestors started — not when the app in the EHR's frame sends the user to the
 * authorization endpoint ("Sign in with the EHR" inside the frame): the interaction would find no cookie. Such
 * a request (`Sec-Fetch-Dest: iframe`, `Sec-Fetch-Site: cross-site`) is answered with a page that repeats it
 * from the EHR's own origin. An EHR served over https would use SameSite=None; Secure cookies instead.
 */
export function repeatFramedAuthorizationFromEhr(req: Request, res: Response, next: NextFunction): void {
  if (req.get('sec-fetch-dest') !== 'iframe' || req.get('sec-fetch-site') !== 'cross-site') return next()
  const again = escapeHtml(req.originalUrl)
  sendPage(res, 200, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${again}"><title>Mock EHR — Signing in</title></head>
<body><p>Signing in… <a href="${again}">Continue</a></p></body></html>
`)
}
