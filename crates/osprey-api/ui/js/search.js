// Search: a TraceQL box, the Jaeger UI's form (service, operation, tags, durations, time range,
// limit), a duration-over-time scatter plot, and the list of matching traces.

import { getJSON } from './api.js';
import { navigate } from './app.js';
import { scatter } from './charts.js';
import { duration, el, parseDuration, serviceColor, time } from './format.js';
import { traceqlForm, traceqlSearch } from './traceql.js';

const LOOKBACKS = [['5m', 5 * 60e3], ['15m', 15 * 60e3], ['1h', 3600e3], ['6h', 6 * 3600e3],
  ['12h', 12 * 3600e3], ['24h', 24 * 3600e3], ['2d', 48 * 3600e3], ['7d', 7 * 24 * 3600e3]];

/** `k=v k2="two words"` → {k: 'v', k2: 'two words'}. */
export function parseLogfmt(text) {
  const out = {};
  const re = /([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))/g;
  let match;
  while ((match = re.exec(text || '')) !== null) {
    out[match[1]] = match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : match[3];
  }
  return out;
}

function toLogfmt(tags) {
  return Object.entries(tags).map(([k, v]) => (/[\s"]/.test(v) ? `${k}="${v.replace(/"/g, '\\"')}"` : `${k}=${v}`)).join(' ');
}

/** The URL's tags: Jaeger UI links carry JSON; logfmt typed by hand is accepted too. */
function tagsFrom(params) {
  const raw = params.get('tags');
  if (!raw) return {};
  try {
    const parsed = JSON.parse(raw);
    if (parsed && typeof parsed === 'object') return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
  } catch { /* not JSON: logfmt */ }
  return parseLogfmt(raw);
}

function timeWindow(params) {
  const start = Number(params.get('start'));
  const end = Number(params.get('end'));
  if (start && end) return [start / 1000, end / 1000];
  const lookback = LOOKBACKS.find(([name]) => name === (params.get('lookback') || '1h')) || LOOKBACKS[2];
  const now = Date.now();
  return [now - lookback[1], now + 60e3];
}

export function renderSearch(view, _match, params) {
  const form = el('form', { 'aria-label': 'Find traces' });
  const service = el('select', { name: 'service', 'aria-label': 'Service' }, el('option', { value: '' }, 'All services'));
  const operation = el('select', { name: 'operation', 'aria-label': 'Operation' }, el('option', { value: '' }, 'All operations'));
  const tags = el('input', { name: 'tags', placeholder: 'http.response.status_code=500 error=true', value: toLogfmt(tagsFrom(params)) });
  const minDuration = el('input', { name: 'minDuration', placeholder: 'e.g. 1.5s', value: params.get('minDuration') || '' });
  const maxDuration = el('input', { name: 'maxDuration', placeholder: 'e.g. 100ms', value: params.get('maxDuration') || '' });
  const custom = params.get('lookback') === 'custom' || (params.get('start') && params.get('end'));
  const lookback = el('select', { name: 'lookback', 'aria-label': 'Lookback' },
    LOOKBACKS.map(([name]) => el('option', { value: name, selected: !custom && name === (params.get('lookback') || '1h') }, `Last ${name}`)),
    el('option', { value: 'custom', selected: custom }, 'Custom range'));
  // datetime-local works in local time, as the Jaeger UI's custom range does; the URL keeps µs.
  const local = (micros) => {
    if (!micros) return '';
    const d = new Date(Number(micros) / 1000);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 19);
  };
  const from = el('input', { name: 'start', type: 'datetime-local', step: 1, value: local(params.get('start')) });
  const to = el('input', { name: 'end', type: 'datetime-local', step: 1, value: local(params.get('end')) });
  const range = el('div', { class: 'pair', hidden: !custom }, el('label', {}, 'From', from), el('label', {}, 'To', to));
  lookback.addEventListener('change', () => { range.hidden = lookback.value !== 'custom'; });
  const limit = el('input', { name: 'limit', type: 'number', min: 1, max: 1000, value: params.get('limit') || 20 });
  form.append(
    el('label', {}, 'Service', service),
    el('label', {}, 'Operation', operation),
    el('label', {}, 'Tags (logfmt)', tags),
    el('div', { class: 'pair' }, el('label', {}, 'Min duration', minDuration), el('label', {}, 'Max duration', maxDuration)),
    el('div', { class: 'pair' }, el('label', {}, 'Lookback', lookback), el('label', {}, 'Limit', limit)),
    range,
    el('button', { class: 'primary', type: 'submit' }, 'Find traces'),
  );
  const results = el('section', { class: 'results', 'aria-live': 'polite' });
  view.append(el('div', { class: 'search' }, el('div', { class: 'forms' }, traceqlForm(params, lookback, limit), form), results));

  async function loadOperations(selected) {
    operation.replaceChildren(el('option', { value: '' }, 'All operations'));
    if (!service.value) return;
    const { operations } = await getJSON(`/api/v3/operations?service=${encodeURIComponent(service.value)}`);
    const names = [...new Set(operations.map((o) => o.name))];
    for (const name of names) operation.append(el('option', { value: name, selected: name === selected }, name));
  }
  service.addEventListener('change', () => loadOperations(''));

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    for (const input of [minDuration, maxDuration]) {
      const bad = input.value && parseDuration(input.value) === null;
      input.setCustomValidity(bad ? 'A duration like 300ms, 1.5s or 2m' : '');
      if (bad) return input.reportValidity();
    }
    const query = new URLSearchParams();
    if (service.value) query.set('service', service.value);
    if (operation.value) query.set('operation', operation.value);
    const tagMap = parseLogfmt(tags.value);
    if (Object.keys(tagMap).length) query.set('tags', JSON.stringify(tagMap));
    if (minDuration.value) query.set('minDuration', minDuration.value.trim());
    if (maxDuration.value) query.set('maxDuration', maxDuration.value.trim());
    query.set('lookback', lookback.value);
    if (lookback.value === 'custom') {
      if (!from.value || !to.value || new Date(from.value) >= new Date(to.value)) {
        to.setCustomValidity('Choose a start before the end');
        return to.reportValidity();
      }
      to.setCustomValidity('');
      query.set('start', String(new Date(from.value).getTime() * 1000));
      query.set('end', String(new Date(to.value).getTime() * 1000));
    }
    query.set('limit', limit.value || '20');
    navigate(`/search?${query}`);
  });

  (async () => {
    try {
      const { services } = await getJSON('/api/v3/services');
      for (const name of services) service.append(el('option', { value: name, selected: name === params.get('service') }, name));
      await loadOperations(params.get('operation') || '');
    } catch (error) {
      results.replaceChildren(el('p', { class: 'error-text' }, `Could not list services: ${error.message}`));
    }
    if (params.get('q')) await traceqlSearch(results, params, timeWindow(params));
    else if ([...params.keys()].length) await search(results, params);
    else results.replaceChildren(el('p', { class: 'muted' }, 'Write a TraceQL query, or choose a service (or none, for all) and find traces. Paste a trace id or a traceparent header in the box above to open one.'));
  })();
}

async function search(results, params) {
  const [from, to] = timeWindow(params);
  const query = new URLSearchParams({
    'query.start_time_min': new Date(from).toISOString(),
    'query.start_time_max': new Date(to).toISOString(),
    'query.search_depth': params.get('limit') || '20',
  });
  if (params.get('service')) query.set('query.service_name', params.get('service'));
  if (params.get('operation')) query.set('query.operation_name', params.get('operation'));
  const tags = tagsFrom(params);
  if (Object.keys(tags).length) query.set('query.attributes', JSON.stringify(tags));
  if (params.get('minDuration')) query.set('query.duration_min', params.get('minDuration'));
  if (params.get('maxDuration')) query.set('query.duration_max', params.get('maxDuration'));
  results.replaceChildren(el('p', { class: 'muted' }, 'Searching…'));
  let summaries;
  try {
    ({ summaries } = await getJSON(`/api/v3/trace-summaries?${query}`));
  } catch (error) {
    results.replaceChildren(el('p', { class: 'error-text' }, `Search failed: ${error.message}`));
    return;
  }
  if (!summaries.length) {
    results.replaceChildren(el('p', { class: 'notice' }, 'No traces match. Widen the time range or remove a condition.'));
    return;
  }
  for (const s of summaries) s.durationNanos = Number(BigInt(s.maxEndTimeUnixNano) - BigInt(s.minStartTimeUnixNano));
  summaries.sort((a, b) => (BigInt(b.minStartTimeUnixNano) > BigInt(a.minStartTimeUnixNano) ? 1 : -1));
  const open = (id) => navigate(`/trace/${id}`);
  const starts = summaries.map((s) => Number(BigInt(s.minStartTimeUnixNano) / 1000000n));
  const span = Math.max(...starts) - Math.min(...starts);
  const clock = (ms) => {
    const d = new Date(ms);
    const text = d.toLocaleTimeString([], { hour12: false });
    return span < 120e3 ? `${text}.${String(d.getMilliseconds()).padStart(3, '0')}` : text;
  };
  const plot = scatter(summaries.map((s) => ({
    id: s.traceId,
    x: Number(BigInt(s.minStartTimeUnixNano) / 1000000n),
    y: s.durationNanos,
    r: Math.min(4 + Math.sqrt(s.spanCount), 14),
    color: s.errorSpanCount ? 'var(--error)' : 'var(--accent)',
    title: `${s.rootServiceName}: ${s.rootOperationName} — ${duration(s.durationNanos)}, ${s.spanCount} spans`,
    onclick: () => open(s.traceId),
  })), {
    xLabel: clock,
    yLabel: (ns) => duration(ns),
  });
  const compareButton = el('button', { type: 'button', disabled: true, onclick: () => {
    const [a, b] = [...results.querySelectorAll('input.pick:checked')].map((c) => c.value);
    navigate(`/compare?a=${a}&b=${b}`);
  } }, 'Compare selected');
  const picked = () => {
    compareButton.disabled = results.querySelectorAll('input.pick:checked').length !== 2;
  };
  const rows = summaries.map((s) => el('tr', { class: 'result', 'data-trace': s.traceId, onclick: () => open(s.traceId) },
    el('td', {}, el('input', { type: 'checkbox', class: 'pick', value: s.traceId, 'aria-label': 'Pick for comparison',
      onclick: (e) => e.stopPropagation(), onchange: picked })),
    el('td', {},
      el('a', { href: `/trace/${s.traceId}`, 'data-link': true }, `${s.rootServiceName}: ${s.rootOperationName}`),
      el('div', { class: 'mono muted' }, s.traceId.slice(0, 16))),
    el('td', {}, s.services.map((svc) => el('span', { class: 'chip', style: { '--chip': serviceColor(svc.name) } },
      `${svc.name} ${svc.spanCount}`, svc.errorSpanCount ? el('span', { class: 'error-text' }, ` ✗${svc.errorSpanCount}`) : null))),
    el('td', { class: 'num' }, String(s.spanCount),
      s.errorSpanCount ? el('div', { class: 'error-text' }, `${s.errorSpanCount} errors`) : null),
    el('td', { class: 'num' }, duration(s.durationNanos)),
    el('td', { class: 'num muted' }, time(s.minStartTimeUnixNano))));
  results.replaceChildren(
    el('div', { class: 'toolbar' }, el('h1', {}, `${summaries.length} traces`), compareButton),
    plot,
    el('table', {},
      el('thead', {}, el('tr', {}, ['', 'Trace', 'Services', 'Spans', 'Duration', 'Started'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)),
  );
}
