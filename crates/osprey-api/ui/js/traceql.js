// TraceQL on the search page: a query box above the Jaeger form, errors shown at their place in
// the query, and results that list each trace's matched spans.

import { apiFetch } from './api.js';
import { navigate } from './app.js';
import { attributes, duration, el, serviceColor, time } from './format.js';

/** The TraceQL box; submitting it keeps the form's lookback and limit. */
export function traceqlForm(params, lookback, limit) {
  const box = el('textarea', {
    name: 'q', rows: 3, spellcheck: 'false', 'aria-label': 'TraceQL query',
    placeholder: '{ resource.service.name = "payments" && duration > 1s }',
  });
  box.value = params.get('q') || '';
  const form = el('form', { class: 'traceql', 'aria-label': 'TraceQL' },
    el('label', {}, 'TraceQL', box),
    el('button', { class: 'primary', type: 'submit' }, 'Run query'));
  const submit = (event) => {
    event?.preventDefault();
    const query = new URLSearchParams({ q: box.value.trim() || '{ }', lookback: lookback.value, limit: limit.value || '20' });
    navigate(`/search?${query}`);
  };
  form.addEventListener('submit', submit);
  // Ctrl/Cmd+Enter runs the query from the box.
  box.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) submit(event);
  });
  return form;
}

/** The query's line with a caret under `column`, and the message. */
function errorAt(query, { message, line, column }) {
  const shown = [el('p', {}, message)];
  if (line && column) {
    const text = query.split('\n')[line - 1] ?? '';
    shown.unshift(el('pre', { class: 'caret' }, `${text}\n${' '.repeat(Math.max(column - 1, 0))}^`));
    shown.push(el('p', { class: 'muted' }, `line ${line}, column ${column}`));
  }
  return el('div', { class: 'traceql-error', role: 'alert' }, ...shown);
}

export async function traceqlSearch(results, params, [from, to]) {
  const q = params.get('q');
  const query = new URLSearchParams({
    q, start: String(Math.floor(from * 1000)), end: String(Math.ceil(to * 1000)), limit: params.get('limit') || '20',
  });
  results.replaceChildren(el('p', { class: 'muted' }, 'Searching…'));
  let answer;
  try {
    // Not getJSON: a refused query's answer carries the line and column the box points at.
    const response = await apiFetch(`/api/osprey/traceql?${query}`);
    answer = await response.json();
    if (!response.ok) {
      results.replaceChildren(errorAt(q, answer.error || { message: response.statusText }));
      return;
    }
  } catch (error) {
    results.replaceChildren(el('p', { class: 'error-text' }, `Search failed: ${error.message}`));
    return;
  }
  const traces = answer.traces || [];
  if (!traces.length) {
    results.replaceChildren(el('p', { class: 'notice' }, 'No traces match. Widen the time range or loosen the query.'));
    return;
  }
  const rows = traces.map((t) => {
    const id = t.traceID.padStart(32, '0');
    const sets = (t.spanSets || []).map((set) => el('div', { class: 'spanset' },
      attributes(set.attributes).length
        ? el('div', { class: 'muted' }, attributes(set.attributes).map(([k, v]) => `${k} = ${v}`).join(', '))
        : null,
      ...(set.spans || []).map((s) => el('div', { class: 'matched-span' },
        el('span', { class: 'chip', style: { '--chip': serviceColor(s.service || '') } }, s.service || ''),
        ` ${s.name} `,
        el('span', { class: 'muted' }, duration(Number(s.durationNanos))),
        ...attributes(s.attributes).map(([k, v]) => el('span', { class: 'tag' }, `${k}=${v}`)))),
      set.matched > (set.spans || []).length
        ? el('div', { class: 'muted' }, `${set.matched} spans matched`)
        : null));
    return el('tr', { class: 'result', 'data-trace': id, onclick: () => navigate(`/trace/${id}`) },
      el('td', {},
        el('a', { href: `/trace/${id}`, 'data-link': true }, `${t.rootServiceName}: ${t.rootTraceName}`),
        el('div', { class: 'mono muted' }, id.slice(0, 16))),
      el('td', {}, sets),
      el('td', { class: 'num' }, duration((t.durationMs || 0) * 1e6)),
      el('td', { class: 'num muted' }, time(t.startTimeUnixNano)));
  });
  results.replaceChildren(
    el('div', { class: 'toolbar' }, el('h1', {}, `${traces.length} traces`)),
    el('table', {},
      el('thead', {}, el('tr', {}, ['Trace', 'Matched spans', 'Duration', 'Started'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)),
  );
}
