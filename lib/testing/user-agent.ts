import { PICKER_DENY_FIELD, PICKER_FORM_ID, PICKER_PATIENT_FIELD } from './patient-picker'
import type { AuthorizeOptions } from './types'
import { USER_COOKIE, userCookieValue } from './users'

/**
 * Plays the user's browser at the EHR's authorization server: follows redirects within the EHR's
 * origin, keeping the cookies oidc-provider relies on (interaction, resume, session), answers the
 * patient picker of a standalone launch, and stops at the first redirect that leaves the EHR, which is
 * the one back to the app's redirect_uri. That URL is returned, never requested.
 */
const MAX_REDIRECTS = 20

type CookieJar = Map<string, string>

function storeCookies(jar: CookieJar, response: Response): void {
  for (const header of response.headers.getSetCookie()) {
    const [pair, ...attributes] = header.split(';')
    const separator = pair.indexOf('=')
    if (separator < 1) continue
    const name = pair.slice(0, separator).trim()
    const value = pair.slice(separator + 1).trim()
    const expired = attributes.some((attribute) => {
      const [key, attributeValue = ''] = attribute.split('=').map((part) => part.trim())
      if (key.toLowerCase() === 'max-age') return Number(attributeValue) <= 0
      if (key.toLowerCase() === 'expires') return Date.parse(attributeValue) <= Date.now()
      return false
    })
    if (expired || value === '') jar.delete(name)
    else jar.set(name, value)
  }
}

function cookieHeader(jar: CookieJar): string {
  return [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
}

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" }
const unescapeHtml = (value: string) => value.replace(/&(?:amp|lt|gt|quot|#39);/g, (entity) => ENTITIES[entity])

/** What a page says, for an error message: an HTML page's main text rather than its markup and style. */
function pageText(body: string): string {
  const main = /<main>([\s\S]*)<\/main>/.exec(body)?.[1]
  return main === undefined ? body : unescapeHtml(main.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim())
}

async function describe(url: URL, response: Response): Promise<string> {
  const body = await response.text().catch(() => '')
  return `${response.status} at ${url.href}: ${pageText(body).slice(0, 300)}`
}

interface Picker {
  action: string
  patients: string[]
}

/** The patient picker on a page of the EHR, as `patient-picker.ts` renders it; null on any other page. */
function findPicker(html: string): Picker | null {
  const form = new RegExp(`<form id="${PICKER_FORM_ID}" method="post" action="([^"]*)">`).exec(html)
  if (!form) return null
  const buttons = html.matchAll(new RegExp(`<button class="choose" type="submit" name="${PICKER_PATIENT_FIELD}" value="([^"]*)"`, 'g'))
  return { action: unescapeHtml(form[1]), patients: [...buttons].map((match) => unescapeHtml(match[1])) }
}

function checkOptions(options: AuthorizeOptions): void {
  const { user = 'practitioner', patient, deny } = options
  if (!['practitioner', 'patient', 'related-person'].includes(user)) {
    throw new TypeError(`authorize(): user must be 'practitioner', 'patient' or 'related-person', not ${JSON.stringify(user)}`)
  }
  if (patient !== undefined && (typeof patient !== 'string' || patient === '')) throw new TypeError('authorize(): patient must be a patient id')
  if (user !== 'practitioner' && patient === undefined) {
    throw new TypeError(`authorize(): user '${user}' signs in for a patient: pass { patient } too`)
  }
  if (deny && (patient !== undefined || user !== 'practitioner')) {
    throw new TypeError('authorize(): { deny: true } answers the practitioner\'s patient picker; it takes no patient and no other user')
  }
}

const quote = (ids: string[]) => ids.map((id) => `'${id}'`).join(', ')

export function createUserAgent(ehrOrigin: string): (authorizationUrl: string, options?: AuthorizeOptions) => Promise<URL> {
  return async function authorize(authorizationUrl: string, options: AuthorizeOptions = {}): Promise<URL> {
    checkOptions(options)
    let url = new URL(authorizationUrl)
    if (url.origin !== ehrOrigin) {
      throw new Error(`authorize(): ${url.origin} is not this mock EHR (${ehrOrigin})`)
    }
    const { user = 'practitioner', patient, deny = false } = options
    const jar: CookieJar = new Map()
    if (user !== 'practitioner') jar.set(USER_COOKIE, userCookieValue(user, patient!))
    const expectsPicker = user === 'practitioner' && (patient !== undefined || deny)
    let pickerShown = false
    let form: URLSearchParams | null = null
    for (let hop = 0; hop < MAX_REDIRECTS; hop++) {
      const response = await fetch(url, {
        redirect: 'manual',
        headers: { ...(jar.size > 0 ? { cookie: cookieHeader(jar) } : {}), ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        ...(form ? { method: 'POST', body: form.toString() } : {}),
      })
      form = null
      storeCookies(jar, response)
      const location = response.headers.get('location')
      if (response.status === 200 && !pickerShown) {
        const html = await response.text()
        const picker = findPicker(html)
        if (!picker) throw new Error(`authorize(): the authorization server answered 200 at ${url.href}: ${pageText(html).slice(0, 300)}`)
        pickerShown = true
        if (!deny && patient === undefined) {
          throw new Error(`authorize(): the EHR shows its patient picker at ${url.href} (a standalone launch asking for launch/patient), so a patient must be picked: ` +
            `pass { patient } (it lists ${quote(picker.patients)}), or { deny: true }`)
        }
        if (!deny && !picker.patients.includes(patient!)) {
          throw new Error(`authorize(): the patient picker at ${url.href} does not list '${patient}'; it lists ${quote(picker.patients)}`)
        }
        form = new URLSearchParams(deny ? { [PICKER_DENY_FIELD]: PICKER_DENY_FIELD } : { [PICKER_PATIENT_FIELD]: patient! })
        url = new URL(picker.action, url)
        continue
      }
      if (response.status < 300 || response.status >= 400 || location === null) {
        throw new Error(`authorize(): the authorization server answered ${await describe(url, response)}`)
      }
      await response.body?.cancel()
      url = new URL(location, url)
      if (url.origin === ehrOrigin) continue
      // An error answer ends the authorization before any picker could come: it is the app's to handle.
      if (expectsPicker && !pickerShown && !url.searchParams.has('error')) {
        throw new Error(`authorize(): ${deny ? '{ deny: true }' : `{ patient: '${patient}' }`} answers the patient picker, but the EHR showed none and ` +
          `sent a code back to ${url.origin}${url.pathname}: the picker comes for a standalone launch only (no launch parameter, launch/patient in the scope)`)
      }
      return url
    }
    throw new Error(`authorize(): more than ${MAX_REDIRECTS} redirects`)
  }
}
