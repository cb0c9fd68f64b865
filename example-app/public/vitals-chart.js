// The example clinician app's vital-signs chart: one SVG line chart per unit, drawn without libraries.
// Plain browser JavaScript, no build step: an ES module imported by app.js.

import { $, decimalsOf, el, formatDate, formatValue, monthFormat, svg, toTime, unitLabel } from './format.js'

const SERIES_COLOURS = ['#2f6fb3', '#1d9a8a', '#8e5cc4', '#d9822b']
const BLOOD_PRESSURE = ['8480-6', '8462-4']

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

export function renderVitals(vitals) {
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
