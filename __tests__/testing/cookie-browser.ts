/**
 * A bare browser for the mock EHR's pages: one cookie jar kept across requests (so a second
 * authorization finds the session the first one left), redirects followed within the EHR's origin.
 * Unlike `ehr.authorize()` it shows each page instead of answering it.
 */
export type Visit =
  | { kind: 'page'; url: URL; status: number; html: string; headers: Headers }
  | { kind: 'left'; url: URL }

export class CookieBrowser {
  private readonly jar = new Map<string, string>()

  constructor(private readonly origin: string) {}

  /** One request, cookies kept; a form is posted. */
  async step(url: string | URL, form?: Record<string, string>): Promise<Response> {
    const headers: Record<string, string> = {}
    if (this.jar.size > 0) headers.cookie = [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ')
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded'
    const response = await fetch(url, { redirect: 'manual', headers, ...(form ? { method: 'POST', body: new URLSearchParams(form).toString() } : {}) })
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(';')
      const [name, value] = [pair.slice(0, pair.indexOf('=')).trim(), pair.slice(pair.indexOf('=') + 1).trim()]
      if (value === '' || attributes.some((a) => /^\s*max-age=0/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a))) this.jar.delete(name)
      else this.jar.set(name, value)
    }
    return response
  }

  /** Follows redirects within the EHR until a page answers or a redirect leaves it. */
  async open(url: string | URL, form?: Record<string, string>): Promise<Visit> {
    let current = new URL(url)
    let response = await this.step(current, form)
    for (let hop = 0; hop < 20; hop++) {
      const location = response.headers.get('location')
      if (response.status < 300 || response.status >= 400 || !location) {
        return { kind: 'page', url: current, status: response.status, html: await response.text(), headers: response.headers }
      }
      await response.body?.cancel()
      current = new URL(location, current)
      if (current.origin !== this.origin) return { kind: 'left', url: current }
      response = await this.step(current)
    }
    throw new Error('too many redirects')
  }
}

export function page(visit: Visit): Extract<Visit, { kind: 'page' }> {
  if (visit.kind !== 'page') throw new Error(`expected a page, the browser left for ${visit.url.href}`)
  return visit
}

export function left(visit: Visit): URL {
  if (visit.kind !== 'left') throw new Error(`expected to leave the EHR, got ${visit.status} at ${visit.url.href}: ${visit.html.slice(0, 300)}`)
  return visit.url
}

/** The patient picker's rows: patient id → row HTML. */
export function pickerRows(html: string): Map<string, string> {
  const rows = new Map<string, string>()
  const table = /<form id="patient-picker"[\s\S]*?<\/form>/.exec(html)?.[0] ?? ''
  for (const match of table.matchAll(/<tr data-patient-id="([^"]+)">([\s\S]*?)<\/tr>/g)) rows.set(match[1], match[2])
  return rows
}

export function pickerAction(html: string, base: URL): URL {
  const match = /<form id="patient-picker" method="post" action="([^"]+)">/.exec(html)
  if (!match) throw new Error(`no patient picker in ${html.slice(0, 300)}`)
  return new URL(match[1], base)
}
