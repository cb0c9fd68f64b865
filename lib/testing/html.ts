import type { Response } from 'express'
import type { FhirResource } from './seed-data'

/** The mock EHR's own pages (home page, patient picker): escaping, patient display and the page frame. */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c])
}

type HumanName = { use?: string; family?: string; given?: string[]; prefix?: string[] }
type Identifier = { value?: string; type?: { coding?: Array<{ code?: string }> } }

export function officialName(resource: FhirResource | undefined): HumanName {
  const names = Array.isArray(resource?.name) ? (resource.name as HumanName[]) : []
  return names.find((n) => n.use === 'official') ?? names[0] ?? {}
}

/** "Dr. Susan Clark": how a signed-in user is greeted. */
export function displayName(resource: FhirResource | undefined): string {
  const name = officialName(resource)
  return [...(name.prefix ?? []), ...(name.given ?? []), name.family].filter(Boolean).join(' ')
}

/** "SHAW, Amy V.": how patient lists show a patient. */
export function listName(patient: FhirResource): string {
  const { family = '', given = [] } = officialName(patient)
  return [family.toUpperCase(), given.join(' ')].filter(Boolean).join(', ') || patient.id
}

export function mrn(patient: FhirResource): string {
  const identifiers = Array.isArray(patient.identifier) ? (patient.identifier as Identifier[]) : []
  const mr = identifiers.find((i) => i.type?.coding?.some((c) => c.code === 'MR')) ?? identifiers[0]
  return mr?.value ?? ''
}

export function age(birthDate: unknown, today: Date): string {
  if (typeof birthDate !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(birthDate)) return ''
  const [y, m, d] = birthDate.split('-').map(Number)
  const years = today.getUTCFullYear() - y - (today.getUTCMonth() + 1 < m || (today.getUTCMonth() + 1 === m && today.getUTCDate() < d) ? 1 : 0)
  return ` (${years} y)`
}

const STYLE = `
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933; background: #eef1f4; }
  header { display: flex; justify-content: space-between; align-items: center; padding: 10px 24px; background: #23395b; color: #fff; }
  header h1 { margin: 0; font-size: 17px; font-weight: 600; letter-spacing: .02em; }
  main { max-width: 1000px; margin: 24px auto; padding: 0 16px; }
  section { background: #fff; border: 1px solid #d5dbe1; border-radius: 6px; margin-bottom: 16px; }
  h2 { margin: 0; padding: 12px 16px; font-size: 15px; border-bottom: 1px solid #d5dbe1; }
  table { width: 100%; border-collapse: collapse; }
  th, td { padding: 9px 16px; text-align: left; border-bottom: 1px solid #eef1f4; }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #52606d; background: #f7f9fa; }
  tr:last-child td { border-bottom: 0; }
  td.name { font-weight: 600; }
  td.sex { text-transform: capitalize; }
  a.launch, a.launch-in-frame, button.choose { display: inline-block; padding: 4px 14px; border: 0; border-radius: 4px; background: #2f6fb3; color: #fff; text-decoration: none; font: inherit; font-weight: 600; cursor: pointer; }
  a.launch:hover, a.launch:focus, a.launch-in-frame:hover, a.launch-in-frame:focus, button.choose:hover, button.choose:focus { background: #23578f; }
  a.launch-in-frame { margin-left: 6px; background: #52606d; }
  main.chart { max-width: none; margin: 0; padding: 0; }
  .chart-banner { display: flex; gap: 24px; align-items: baseline; padding: 8px 24px; background: #fff; border-bottom: 1px solid #d5dbe1; }
  .chart-banner .name { font-weight: 600; font-size: 16px; }
  iframe.app-frame { display: block; width: 100%; height: calc(100vh - 90px); border: 0; background: #fff; }
  button.deny { padding: 4px 14px; border: 1px solid #9aa5b1; border-radius: 4px; background: #fff; color: #1f2933; font: inherit; cursor: pointer; }
  .actions { margin: 0; padding: 12px 16px; border-top: 1px solid #d5dbe1; }
  .intro { margin: 0; padding: 12px 16px; }
  .notice { margin: 0; padding: 12px 16px; color: #8a4b08; background: #fff7e6; border-bottom: 1px solid #f0d9a8; }
`

/** A page of the mock EHR; `mainClass` `chart` for a page as wide as the window (the app's frame). */
export function page(title: string, header: string, body: string, mainClass?: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>Mock EHR</h1><span id="ehr-user">${header}</span></header>
<main${mainClass ? ` class="${escapeHtml(mainClass)}"` : ''}>${body}</main>
</body>
</html>
`
}

// The pages have no scripts; only their own inline style may apply, and only the EHR's own pages may frame
// them (its frame page shows its patient picker inside the app's frame). A page with a form (the patient
// picker) leaves form-action open, as Chromium applies it to the redirects after the submission too and the
// picker's answer ends in a redirect to the app on another origin. Only the frame page frames anything:
// the origins of `frameSrc`.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'self'"

export function sendPage(res: Response, status: number, html: string, options: { form?: boolean; frameSrc?: string[] } = {}): void {
  const directives = [CSP]
  if (!options.form) directives.push("form-action 'none'")
  if (options.frameSrc) directives.push(`frame-src ${options.frameSrc.join(' ')}`)
  res.set('Content-Security-Policy', directives.join('; '))
  res.set('Cache-Control', 'no-store')
  res.status(status).type('html').send(html)
}
