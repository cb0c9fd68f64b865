// The example clinician app's formatting (dates, numbers, names, units) and small DOM helpers.
// Plain browser JavaScript, no build step: an ES module imported by app.js and vitals-chart.js.

const SVG_NS = 'http://www.w3.org/2000/svg'
const UNIT_LABELS = { C: '°C', Cel: '°C', 'beats/minute': 'bpm', '/min': '/min', 'mm[Hg]': 'mmHg' }

// ---- formatting -----------------------------------------------------------------------------

const dateFormat = new Intl.DateTimeFormat('en-US', { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' })
const dateTimeFormat = new Intl.DateTimeFormat('en-US', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })
export const monthFormat = new Intl.DateTimeFormat('en-US', { month: 'short', timeZone: 'UTC' })

/** FHIR date, dateTime or partial date to a time value; date-only values are read as UTC days. */
export function toTime(value) {
  if (typeof value !== 'string' || value === '') return NaN
  if (/^\d{4}$/.test(value)) return Date.UTC(Number(value), 0, 1)
  if (/^\d{4}-\d{2}$/.test(value)) return Date.UTC(Number(value.slice(0, 4)), Number(value.slice(5, 7)) - 1, 1)
  return Date.parse(value)
}

export function formatDate(value) {
  const time = toTime(value)
  return Number.isNaN(time) ? (value || '') : dateFormat.format(time)
}

export function formatDateTime(value) {
  if (typeof value !== 'string') return ''
  if (!value.includes('T')) return formatDate(value)
  const time = Date.parse(value)
  return Number.isNaN(time) ? value : dateTimeFormat.format(time)
}

export function ageInYears(birthDate) {
  const born = toTime(birthDate)
  if (Number.isNaN(born)) return null
  const b = new Date(born)
  const now = new Date()
  let years = now.getUTCFullYear() - b.getUTCFullYear()
  if (now.getUTCMonth() < b.getUTCMonth() || (now.getUTCMonth() === b.getUTCMonth() && now.getUTCDate() < b.getUTCDate())) years--
  return years
}

export function capitalise(text) {
  return typeof text === 'string' && text ? text.charAt(0).toUpperCase() + text.slice(1).replace(/-/g, ' ') : ''
}

export function officialName(resource) {
  const names = (resource && Array.isArray(resource.name)) ? resource.name : []
  return names.find((n) => n.use === 'official') || names[0] || null
}

export function displayName(resource, { withPrefix = false } = {}) {
  const name = officialName(resource)
  if (!name) return ''
  if (name.text) return name.text
  const parts = [...(withPrefix ? name.prefix || [] : []), ...(name.given || []), name.family]
  return parts.filter(Boolean).join(' ')
}

/** "FAMILY, Given" — how clinical banners show a patient, so the family name cannot be misread. */
export function bannerName(patient) {
  const name = officialName(patient)
  if (!name) return patient.id
  if (name.text) return name.text
  return [name.family ? name.family.toUpperCase() : '', (name.given || []).join(' ')].filter(Boolean).join(', ')
}

export function mrnOf(patient) {
  const identifiers = Array.isArray(patient.identifier) ? patient.identifier : []
  const isMrn = (i) => i.type && Array.isArray(i.type.coding) && i.type.coding.some((c) => c.code === 'MR')
  const mrn = identifiers.find(isMrn) || identifiers[0]
  return mrn && mrn.value ? mrn.value : '—'
}

export function unitLabel(unit) {
  return Object.prototype.hasOwnProperty.call(UNIT_LABELS, unit) ? UNIT_LABELS[unit] : (unit || '')
}

/** Whole numbers stay whole; a series with any decimal shows one decimal throughout (36.8, 37.0). */
export function decimalsOf(values) {
  return values.every((v) => Number.isInteger(v)) ? 0 : 1
}

export function formatValue(value, decimals = decimalsOf([value])) {
  return value.toFixed(decimals)
}

// ---- DOM helpers ----------------------------------------------------------------------------

export const $ = (id) => document.getElementById(id)

export function el(tag, attributes, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value)
  for (const child of children) if (child !== null && child !== undefined) node.append(child)
  return node
}

export function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG_NS, tag)
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value))
  if (text !== undefined) node.textContent = text
  return node
}
