// Services: an overview of every service (rate, error rate, p50/p95/p99, a sparkline of its
// requests), and per service and operation: request rate, errors and duration percentiles over
// time. Rates are per second of the stretch of the window that holds spans.

import { getJSON } from './api.js';
import { navigate } from './app.js';
import { lineChart, svg } from './charts.js';
import { duration, el, rateNote } from './format.js';

const LOOKBACKS = ['15m', '1h', '6h', '24h', '7d'];

export function renderServices(view, _match, params) {
  const service = params.get('service') || '';
  const operation = params.get('operation') || '';
  const lookback = params.get('lookback') || '1h';
  const go = (changes) => {
    const next = new URLSearchParams({ service, operation, lookback, ...changes });
    for (const [k, v] of [...next]) if (!v) next.delete(k);
    navigate(`/services?${next}`);
  };
  const servicePicker = el('select', { 'aria-label': 'Service', onchange: (e) => go({ service: e.target.value, operation: '' }) },
    el('option', { value: '' }, 'Choose a service'));
  const operationPicker = el('select', { 'aria-label': 'Operation', onchange: (e) => go({ operation: e.target.value }) },
    el('option', { value: '' }, 'All operations'));
  const lookbackPicker = el('select', { 'aria-label': 'Lookback', onchange: (e) => go({ lookback: e.target.value }) },
    LOOKBACKS.map((l) => el('option', { value: l, selected: l === lookback }, `Last ${l}`)));
  const body = el('div');
  view.append(el('div', { class: 'toolbar' }, el('h1', {}, 'Services'), servicePicker, operationPicker, lookbackPicker), body);

  getJSON('/api/v3/services').then(({ services }) => {
    for (const name of services) servicePicker.append(el('option', { value: name, selected: name === service }, name));
  });
  if (!service) {
    renderOverview(body, view, lookback);
    return;
  }
  getJSON(`/api/v3/operations?service=${encodeURIComponent(service)}&spanKind=server`).then(({ operations }) => {
    for (const name of new Set(operations.map((o) => o.name))) operationPicker.append(el('option', { value: name, selected: name === operation }, name));
  });
  const query = new URLSearchParams({ service, lookback });
  if (operation) query.set('operation', operation);
  getJSON(`/api/osprey/red?${query}`).then((red) => {
    const seconds = red.stepNanos / 1e9;
    const x = (p) => Number(BigInt(p.startTimeUnixNano) / 1000000n);
    const charts = el('div', { class: 'charts' },
      lineChart([{ name: 'req/s', color: 'var(--accent)', points: red.series.map((p) => ({ x: x(p), y: p.requests / seconds })) }],
        { title: 'Requests per second', yLabel: (v) => v.toFixed(1) }),
      lineChart([{ name: 'errors %', color: 'var(--error)', points: red.series.map((p) => ({ x: x(p), y: p.requests ? (100 * p.errors) / p.requests : 0 })) }],
        { title: 'Error rate', yLabel: (v) => `${v.toFixed(0)}%` }),
      lineChart(['p50', 'p95', 'p99'].map((q, i) => ({
        name: q, color: ['#2da44e', '#bf8700', '#cf222e'][i], points: red.series.filter((p) => p.requests).map((p) => ({ x: x(p), y: p[`${q}Nanos`] })),
      })), { title: 'Duration', yLabel: duration }));
    // Rates over the buckets that hold requests, not the whole lookback.
    const busy = red.series.map((p, i) => (p.requests ? i : -1)).filter((i) => i >= 0);
    const windowSeconds = busy.length ? (busy[busy.length - 1] - busy[0] + 1) * seconds : 1;
    const rows = red.operations.map((o) => el('tr', { 'data-operation': o.name },
      el('td', {}, el('a', { href: `/search?${new URLSearchParams({ service, operation: o.name, lookback })}`, 'data-link': true }, o.name)),
      el('td', { class: 'num' }, String(o.requests)),
      el('td', { class: 'num' }, `${(o.requests / windowSeconds).toFixed(2)}/s`),
      el('td', { class: `num${o.errors ? ' error-text' : ''}` }, `${((100 * o.errors) / Math.max(o.requests, 1)).toFixed(1)}%`),
      el('td', { class: 'num' }, duration(o.p50Nanos)), el('td', { class: 'num' }, duration(o.p95Nanos)), el('td', { class: 'num' }, duration(o.p99Nanos))));
    body.replaceChildren(charts, el('section', { class: 'results' }, el('h2', {}, 'Operations'),
      el('table', {}, el('thead', {}, el('tr', {}, ['Operation', 'Requests', 'Rate', 'Errors', 'p50', 'p95', 'p99'].map((h) => el('th', {}, h)))),
        el('tbody', {}, rows))));
    view.dataset.ready = 'true';
  }, (error) => body.replaceChildren(el('p', { class: 'error-text' }, error.message)));
}

/** A small line of a service's requests per step. */
function sparkline(counts) {
  const [w, h] = [120, 24];
  const max = Math.max(1, ...counts);
  const step = counts.length > 1 ? w / (counts.length - 1) : w;
  const points = counts.map((c, i) => `${(i * step).toFixed(1)},${(h - 2 - (c / max) * (h - 4)).toFixed(1)}`).join(' ');
  return svg('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: 'sparkline' }, svg('polyline', { points }));
}

/** Every service at a glance; each row opens that service's charts. */
function renderOverview(body, view, lookback) {
  body.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
  getJSON(`/api/osprey/services?lookback=${encodeURIComponent(lookback)}`).then((overview) => {
    if (!overview.services.length) {
      body.replaceChildren(el('p', { class: 'notice' }, 'No spans in this window.'));
      view.dataset.ready = 'true';
      return;
    }
    const seconds = overview.rateWindowNanos / 1e9;
    const open = (name) => navigate(`/services?${new URLSearchParams({ service: name, lookback })}`);
    const rows = overview.services.map((s) => el('tr', { class: 'result', 'data-service': s.name, onclick: () => open(s.name) },
      el('td', {}, el('a', { href: `/services?${new URLSearchParams({ service: s.name, lookback })}`, 'data-link': true }, s.name)),
      el('td', { class: 'num' }, `${(s.requests / seconds).toFixed(2)}/s`),
      el('td', { class: `num${s.errors ? ' error-text' : ''}` }, `${((100 * s.errors) / Math.max(s.requests, 1)).toFixed(1)}%`),
      el('td', { class: 'num' }, duration(s.p50Nanos)), el('td', { class: 'num' }, duration(s.p95Nanos)),
      el('td', { class: 'num' }, duration(s.p99Nanos)),
      el('td', {}, sparkline(s.requestsPerStep))));
    body.replaceChildren(rateNote(overview, lookback) || '', el('table', { class: 'overview' },
      el('thead', {}, el('tr', {}, ['Service', 'Rate', 'Errors', 'p50', 'p95', 'p99', 'Requests over time'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)));
    view.dataset.ready = 'true';
  }, (error) => body.replaceChildren(el('p', { class: 'error-text' }, error.message)));
}
