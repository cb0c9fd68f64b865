// The example clinician app's page: plain browser JavaScript, no build step.
// Multi-launch: each tab keeps its own patient id in sessionStorage and names it in every API call.
'use strict'

;(function clinicianPage() {
  const STORAGE_KEY = 'activePatient'
  // These answers mean the session cannot serve this tab: only a new launch from the EHR helps.
  const RELAUNCH_CODES = ['NO_SESSION', 'SESSION_EXPIRED', 'UNKNOWN_PATIENT', 'ACTIVE_PATIENT_REQUIRED']
  const SVG_NS = 'http://www.w3.org/2000/svg'
  const SERIES_COLOURS = ['#2f6fb3', '#1d9a8a', '#8e5cc4', '#d9822b']
  const UNIT_LABELS = { C: '°C', Cel: '°C', 'beats/minute': 'bpm', '/min': '/min', 'mm[Hg]': 'mmHg' }
  const BLOOD_PRESSURE = ['8480-6', '8462-4']

  const $ = (id) => document.getElementById(id)

  // ---- active patient -------------------------------------------------------------------------

  /** Moves `?patient=` from the URL into this tab's sessionStorage; returns the tab's patient or null. */
  function takeActivePatient() {
    const url = new URL(window.location.href)
    const fromUrl = url.searchParams.get('patient')
    if (fromUrl) {
      sessionStorage.setItem(STORAGE_KEY, fromUrl)
      url.searchParams.delete('patient')
      // Keep the id out of bookmarks, history and shared links.
      history.replaceState(history.state, '', url.pathname + url.search + url.hash)
    }
    return sessionStorage.getItem(STORAGE_KEY) || null
  }

  // ---- API ------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message)
      this.status = status
      this.code = code
    }

    get needsRelaunch() {
      return RELAUNCH_CODES.includes(this.code)
    }
  }

  async function api(path, patient) {
    let response
    try {
      response = await fetch(path, {
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'application/json', 'X-Active-Patient': patient },
      })
    } catch {
      throw new ApiError(0, 'NETWORK', 'The app could not be reached. Check the connection and try again.')
    }
    const body = await response.json().catch(() => undefined)
    if (!response.ok) {
      const code = body && typeof body.code === 'string' ? body.code : 'HTTP_' + response.status
      const message = body && typeof body.message === 'string' ? body.message : 'The app answered ' + response.status + '.'
      throw new ApiError(response.status, code, message)
    }
    if (body === undefined) throw new ApiError(response.status, 'INVALID_RESPONSE', 'The app sent an answer the page cannot read.')
    return body
  }

  // ---- formatting -----------------------------------------------------------------------------

  const dateFormat = new Intl.DateTimeFormat('en-US', { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' })
  const dateTimeFormat = new Intl.DateTimeFormat('en-US', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })
  const monthFormat = new Intl.DateTimeFormat('en-US', { month: 'short', timeZone: 'UTC' })

  /** FHIR date, dateTime or partial date to a time value; date-only values are read as UTC days. */
  function toTime(value) {
    if (typeof value !== 'string' || value === '') return NaN
    if (/^\d{4}$/.test(value)) return Date.UTC(Number(value), 0, 1)
    if (/^\d{4}-\d{2}$/.test(value)) return Date.UTC(Number(value.slice(0, 4)), Number(value.slice(5, 7)) - 1, 1)
    return Date.parse(value)
  }

  function formatDate(value) {
    const time = toTime(value)
    return Number.isNaN(time) ? (value || '') : dateFormat.format(time)
  }

  function formatDateTime(value) {
    if (typeof value !== 'string') return ''
    if (!value.includes('T')) return formatDate(value)
    const time = Date.parse(value)
    return Number.isNaN(time) ? value : dateTimeFormat.format(time)
  }

  function ageInYears(birthDate) {
    const born = toTime(birthDate)
    if (Number.isNaN(born)) return null
    const b = new Date(born)
    const now = new Date()
    let years = now.getUTCFullYear() - b.getUTCFullYear()
    if (now.getUTCMonth() < b.getUTCMonth() || (now.getUTCMonth() === b.getUTCMonth() && now.getUTCDate() < b.getUTCDate())) years--
    return years
  }

  function capitalise(text) {
    return typeof text === 'string' && text ? text.charAt(0).toUpperCase() + text.slice(1).replace(/-/g, ' ') : ''
  }

  function officialName(resource) {
    const names = (resource && Array.isArray(resource.name)) ? resource.name : []
    return names.find((n) => n.use === 'official') || names[0] || null
  }

  function displayName(resource, { withPrefix = false } = {}) {
    const name = officialName(resource)
    if (!name) return ''
    if (name.text) return name.text
    const parts = [...(withPrefix ? name.prefix || [] : []), ...(name.given || []), name.family]
    return parts.filter(Boolean).join(' ')
  }

  /** "FAMILY, Given" — how clinical banners show a patient, so the family name cannot be misread. */
  function bannerName(patient) {
    const name = officialName(patient)
    if (!name) return patient.id
    if (name.text) return name.text
    return [name.family ? name.family.toUpperCase() : '', (name.given || []).join(' ')].filter(Boolean).join(', ')
  }

  function mrnOf(patient) {
    const identifiers = Array.isArray(patient.identifier) ? patient.identifier : []
    const isMrn = (i) => i.type && Array.isArray(i.type.coding) && i.type.coding.some((c) => c.code === 'MR')
    const mrn = identifiers.find(isMrn) || identifiers[0]
    return mrn && mrn.value ? mrn.value : '—'
  }

  function unitLabel(unit) {
    return Object.prototype.hasOwnProperty.call(UNIT_LABELS, unit) ? UNIT_LABELS[unit] : (unit || '')
  }

  /** Whole numbers stay whole; a series with any decimal shows one decimal throughout (36.8, 37.0). */
  function decimalsOf(values) {
    return values.every((v) => Number.isInteger(v)) ? 0 : 1
  }

  function formatValue(value, decimals = decimalsOf([value])) {
    return value.toFixed(decimals)
  }

  // ---- DOM helpers ----------------------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag)
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value)
    for (const child of children) if (child !== null && child !== undefined) node.append(child)
    return node
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag)
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value))
    if (text !== undefined) node.textContent = text
    return node
  }

  // ---- page states ----------------------------------------------------------------------------

  function clearPatientData() {
    const banner = $('patient-banner')
    banner.hidden = true
    banner.removeAttribute('data-patient-id')
    for (const field of banner.querySelectorAll('[data-field]')) field.textContent = ''
    for (const id of ['practitioner', 'encounter', 'vitals-chart', 'conditions', 'medications']) $(id).replaceChildren()
    document.body.removeAttribute('data-patient-id')
  }

  /** Shows exactly one of: loading, relaunch, error, content. */
  function showState(state) {
    for (const id of ['loading', 'relaunch', 'error', 'content']) $(id).hidden = id !== state
    document.body.setAttribute('data-state', state)
  }

  function showRelaunch() {
    clearPatientData()
    document.title = 'Launch again — Clinician view'
    showState('relaunch')
  }

  function showError(error) {
    clearPatientData()
    $('error').querySelector('[data-field="message"]').textContent =
      error instanceof ApiError ? error.message : 'The clinical data could not be loaded.'
    document.title = 'Error — Clinician view'
    showState('error')
  }

  // ---- rendering ------------------------------------------------------------------------------

  function renderBanner(patient, show) {
    const banner = $('patient-banner')
    const field = (name) => banner.querySelector('[data-field="' + name + '"]')
    const age = ageInYears(patient.birthDate)
    field('name').textContent = bannerName(patient)
    field('sex').textContent = capitalise(patient.gender) || 'Unknown'
    field('birthDate').textContent = patient.birthDate ? formatDate(patient.birthDate) + (age === null ? '' : ' (' + age + ' y)') : 'Unknown'
    field('mrn').textContent = mrnOf(patient)
    banner.setAttribute('data-patient-id', patient.id)
    banner.hidden = !show
  }

  function renderPractitioner(practitioner) {
    const name = displayName(practitioner, { withPrefix: true })
    $('practitioner').replaceChildren(name ? el('span', { class: 'signed-in' }, 'Signed in as ', el('strong', {}, name)) : '')
  }

  function renderEncounter(encounter) {
    const target = $('encounter')
    if (!encounter) {
      target.replaceChildren(el('p', { class: 'empty' }, 'No current encounter.'))
      return
    }
    const type = Array.isArray(encounter.type) && encounter.type[0]
      ? encounter.type[0].text || (encounter.type[0].coding && encounter.type[0].coding[0] && encounter.type[0].coding[0].display)
      : ''
    const klass = encounter.class ? encounter.class.display || encounter.class.code : ''
    const period = encounter.period || {}
    const when = period.start
      ? formatDateTime(period.start) + (period.end ? ' – ' + formatDateTime(period.end) : ' – ongoing')
      : ''
    const facts = [['Type', type], ['Class', capitalise(klass)], ['Status', capitalise(encounter.status)], ['Period', when]]
    target.replaceChildren(el('dl', { class: 'facts' },
      ...facts.filter(([, value]) => value).map(([label, value]) => el('div', {}, el('dt', {}, label), el('dd', {}, value)))))
  }

  function renderList(id, items, emptyText, describe) {
    const list = $(id)
    if (!Array.isArray(items) || items.length === 0) {
      list.replaceChildren(el('li', { class: 'empty' }, emptyText))
      return
    }
    list.replaceChildren(...items.map((item) => {
      const { title, detail, status } = describe(item)
      return el('li', {},
        el('span', { class: 'item-title' }, title),
        status ? el('span', { class: 'status status-' + status.replace(/[^a-z-]/gi, '') }, status) : null,
        detail ? el('span', { class: 'item-detail' }, detail) : null)
    }))
  }

  function renderConditions(conditions) {
    renderList('conditions', conditions, 'No conditions recorded.', (c) => ({
      title: c.text || 'Unnamed condition',
      status: c.clinicalStatus || '',
      detail: c.onset ? 'Onset ' + formatDate(c.onset) : '',
    }))
  }

  function renderMedications(medications) {
    renderList('medications', medications, 'No medications recorded.', (m) => ({
      title: m.text || 'Unnamed medication',
      status: m.status || '',
      detail: m.authoredOn ? 'Prescribed ' + formatDate(m.authoredOn) : '',
    }))
  }

  // ---- vital signs chart ----------------------------------------------------------------------

  /** Series sharing a unit share a chart (systolic and diastolic blood pressure above all). */
  function groupSeries(series) {
    const groups = new Map()
    for (const s of series) {
      const points = (Array.isArray(s.points) ? s.points : [])
        .map((p) => ({ time: toTime(p.date), value: Number(p.value), date: p.date }))
        .filter((p) => !Number.isNaN(p.time) && Number.isFinite(p.value))
        .sort((a, b) => a.time - b.time)
      if (points.length === 0) continue
      const key = s.unit || s.code
      if (!groups.has(key)) groups.set(key, [])
      groups.get(key).push({ code: s.code, display: s.display || s.code, unit: s.unit, points })
    }
    return [...groups.values()]
  }

  function groupTitle(group) {
    const codes = group.map((s) => s.code)
    if (BLOOD_PRESSURE.every((code) => codes.includes(code))) return 'Blood pressure'
    return group.map((s) => s.display).join(' / ')
  }

  function legendLabel(group, series) {
    return groupTitle(group) === 'Blood pressure' ? series.display.replace(/ blood pressure$/i, '') : series.display
  }

  function latestText(group) {
    const codes = group.map((s) => s.code)
    const unit = unitLabel(group[0].unit)
    if (BLOOD_PRESSURE.every((code) => codes.includes(code))) {
      const [sys, dia] = BLOOD_PRESSURE.map((code) => group.find((s) => s.code === code).points.at(-1).value)
      return formatValue(sys) + '/' + formatValue(dia) + ' ' + unit
    }
    return group.map((s) => formatValue(s.points.at(-1).value, decimalsOf(s.points.map((p) => p.value)))).join(' / ') + ' ' + unit
  }

  /** About five round tick values covering [min, max]. */
  function niceTicks(min, max) {
    if (min === max) { min -= 1; max += 1 }
    const rough = (max - min) / 4
    const magnitude = Math.pow(10, Math.floor(Math.log10(rough)))
    const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough)
    const ticks = []
    for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toFixed(6)))
    if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toFixed(6)))
    return ticks
  }

  function dateLabels(times) {
    // At most eight labels, evenly picked, always including the first and the last measurement.
    const count = Math.min(times.length, 8)
    const picked = count <= 1 ? times.slice(0, 1)
      : Array.from({ length: count }, (_, i) => times[Math.round(i * (times.length - 1) / (count - 1))])
    let lastYear = null
    return [...new Set(picked)].map((time) => {
      const year = new Date(time).getUTCFullYear()
      const label = monthFormat.format(time) + (year !== lastYear ? ' ' + year : '')
      lastYear = year
      return { time, label }
    })
  }

  function chart(group) {
    const width = 460
    const height = 220
    const margin = { top: 22, right: 18, bottom: 30, left: 46 }
    const inset = 16  // keeps the first and last points clear of the axes and their labels
    const innerW = width - margin.left - margin.right
    const innerH = height - margin.top - margin.bottom
    const all = group.flatMap((s) => s.points)
    const times = [...new Set(all.map((p) => p.time))].sort((a, b) => a - b)
    const values = all.map((p) => p.value)
    const spread = Math.max(...values) - Math.min(...values)
    const ticks = niceTicks(Math.min(...values) - spread * 0.15, Math.max(...values) + spread * 0.15)
    const yMin = ticks[0]
    const yMax = ticks[ticks.length - 1]
    const tMin = times[0]
    const tMax = times[times.length - 1]
    const x = (t) => margin.left + inset + (tMax === tMin ? (innerW - 2 * inset) / 2 : ((t - tMin) / (tMax - tMin)) * (innerW - 2 * inset))
    const y = (v) => margin.top + innerH - ((v - yMin) / (yMax - yMin)) * innerH
    const unit = unitLabel(group[0].unit)
    const title = groupTitle(group)

    const root = svg('svg', {
      viewBox: '0 0 ' + width + ' ' + height,
      class: 'chart',
      role: 'img',
      'aria-label': title + ' over time, latest ' + latestText(group),
      preserveAspectRatio: 'xMidYMid meet',
    })
    root.append(svg('text', { x: 4, y: 12, class: 'axis-unit' }, unit))

    const tickDecimals = decimalsOf(ticks)
    root.append(svg('line', { x1: margin.left, x2: margin.left, y1: margin.top, y2: margin.top + innerH, class: 'axis' }))
    for (const tick of ticks) {
      root.append(svg('line', { x1: margin.left, x2: width - margin.right, y1: y(tick), y2: y(tick), class: 'grid' }))
      root.append(svg('text', { x: margin.left - 6, y: y(tick) + 4, class: 'axis-label', 'text-anchor': 'end' }, formatValue(tick, tickDecimals)))
    }
    root.append(svg('line', { x1: margin.left, x2: width - margin.right, y1: margin.top + innerH, y2: margin.top + innerH, class: 'axis' }))
    for (const { time, label } of dateLabels(times)) {
      root.append(svg('line', { x1: x(time), x2: x(time), y1: margin.top + innerH, y2: margin.top + innerH + 4, class: 'axis' }))
      root.append(svg('text', { x: x(time), y: height - 10, class: 'axis-label', 'text-anchor': 'middle' }, label))
    }

    group.forEach((series, index) => {
      const colour = SERIES_COLOURS[index % SERIES_COLOURS.length]
      const decimals = decimalsOf(series.points.map((p) => p.value))
      // Labels sit off the line: in a two-line chart the lower line's go below, the upper line's above;
      // in a one-line chart a dip is labelled below and everything else above.
      const below = (i) => {
        if (group.length > 1) return index === group.length - 1
        const p = series.points
        const neighbours = [p[i - 1], p[i + 1]].filter(Boolean)
        return neighbours.length > 0 && neighbours.every((n) => n.value > p[i].value)
      }
      const path = series.points.map((p, i) => (i === 0 ? 'M' : 'L') + x(p.time).toFixed(1) + ' ' + y(p.value).toFixed(1)).join(' ')
      root.append(svg('path', { d: path, class: 'series-line', stroke: colour }))
      series.points.forEach((p, i) => {
        const point = svg('circle', { cx: x(p.time), cy: y(p.value), r: 3.5, fill: colour, class: 'series-point' })
        point.append(svg('title', {}, series.display + ': ' + formatValue(p.value, decimals) + ' ' + unit + ' on ' + formatDate(p.date)))
        root.append(point)
        root.append(svg('text', {
          x: x(p.time), y: y(p.value) + (below(i) ? 16 : -8), class: 'value-label', 'text-anchor': 'middle', fill: colour,
        }, formatValue(p.value, decimals)))
      })
    })
    return root
  }

  function renderVitals(vitals) {
    const container = $('vitals-chart')
    const groups = groupSeries(vitals && Array.isArray(vitals.series) ? vitals.series : [])
    if (groups.length === 0) {
      container.replaceChildren(el('p', { class: 'empty' }, 'No vital signs recorded.'))
      return
    }
    container.replaceChildren(...groups.map((group) => {
      const legend = group.length > 1
        ? el('ul', { class: 'legend' }, ...group.map((s, i) =>
          el('li', { style: '--swatch: ' + SERIES_COLOURS[i % SERIES_COLOURS.length] }, legendLabel(group, s))))
        : null
      return el('figure', { class: 'vital', 'data-codes': group.map((s) => s.code).join(' ') },
        el('figcaption', {},
          el('span', { class: 'vital-title' }, groupTitle(group)),
          legend,
          el('span', { class: 'vital-latest' }, latestText(group))),
        chart(group))
    }))
  }

  // ---- start ----------------------------------------------------------------------------------

  let loading = false

  async function load(patient) {
    if (loading) return
    loading = true
    clearPatientData()
    showState('loading')
    try {
      // The context first: a session that cannot serve this tab is found with one request.
      const context = await api('/api/context', patient)
      if (context.patient !== patient) throw new ApiError(403, 'UNKNOWN_PATIENT', 'This tab\'s patient is not the launched one.')
      const [record, practitioner, encounter, vitals, conditions, medications] = await Promise.all(
        ['/api/patient', '/api/practitioner', '/api/encounter', '/api/vitals', '/api/conditions', '/api/medications']
          .map((path) => api(path, patient)))
      if (!record || record.id !== patient) throw new ApiError(403, 'UNKNOWN_PATIENT', 'The app answered for another patient.')

      renderBanner(record, context.needPatientBanner === true)
      renderPractitioner(practitioner)
      renderEncounter(encounter)
      renderVitals(vitals)
      renderConditions(conditions)
      renderMedications(medications)
      document.body.setAttribute('data-patient-id', patient)
      document.title = bannerName(record) + ' — Clinician view'
      showState('content')
    } catch (error) {
      if (error instanceof ApiError && error.needsRelaunch) showRelaunch()
      else showError(error)
    } finally {
      loading = false
    }
  }

  function start() {
    const patient = takeActivePatient()
    if (!patient) {
      showRelaunch()
      return
    }
    $('retry').addEventListener('click', () => load(patient))
    load(patient)
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start)
  else start()
})()
