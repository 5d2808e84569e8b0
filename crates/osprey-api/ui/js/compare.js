// Compare two traces: which calls were added or are missing, which got slower or faster.
// Spans are matched by their path from the root ("gateway: POST /checkout > payments: POST /charge").

import { getJSON } from './api.js';
import { navigate } from './app.js';
import { duration, el } from './format.js';
import { buildModel } from './trace.js';

/** Path signature → {count, total} for one trace. */
export function signatures(model) {
  const out = new Map();
  const path = (i) => {
    const parts = [];
    for (let at = i; at !== null; at = model.spans[at].parent) parts.unshift(`${model.spans[at].service}: ${model.spans[at].name}`);
    return parts.join(' > ');
  };
  model.spans.forEach((span, i) => {
    const key = path(i);
    const entry = out.get(key) || { count: 0, total: 0 };
    entry.count += 1;
    entry.total += span.end - span.start;
    out.set(key, entry);
  });
  return out;
}

/** Rows of the comparison, biggest change first. */
export function compare(a, b) {
  const keys = new Set([...a.keys(), ...b.keys()]);
  const rows = [...keys].map((key) => {
    const x = a.get(key);
    const y = b.get(key);
    let verdict = 'same';
    if (!x) verdict = 'added';
    else if (!y) verdict = 'missing';
    else {
      const delta = y.total - x.total;
      if (Math.abs(delta) > Math.max(0.1 * x.total, 1e6)) verdict = delta > 0 ? 'slower' : 'faster';
    }
    return { key, a: x, b: y, delta: (y?.total || 0) - (x?.total || 0), verdict };
  });
  return rows.sort((r, s) => Math.abs(s.delta) - Math.abs(r.delta));
}

export function renderCompare(view, _match, params) {
  const inputA = el('input', { name: 'a', value: params.get('a') || '', placeholder: 'Trace A', class: 'mono', size: 34 });
  const inputB = el('input', { name: 'b', value: params.get('b') || '', placeholder: 'Trace B', class: 'mono', size: 34 });
  const form = el('form', { class: 'toolbar', onsubmit: (e) => {
    e.preventDefault();
    navigate(`/compare?a=${encodeURIComponent(inputA.value.trim())}&b=${encodeURIComponent(inputB.value.trim())}`);
  } }, el('h1', {}, 'Compare traces'), inputA, inputB, el('button', { class: 'primary', type: 'submit' }, 'Compare'));
  const body = el('div');
  view.append(form, body);
  if (!params.get('a') || !params.get('b')) {
    body.append(el('p', { class: 'muted' }, 'Enter two trace ids, or tick two traces in the search results.'));
    return;
  }
  Promise.all([params.get('a'), params.get('b')].map((id) => getJSON(`/api/osprey/traces/${encodeURIComponent(id)}`))).then(([ta, tb]) => {
    const [ma, mb] = [buildModel(ta), buildModel(tb)];
    const rows = compare(signatures(ma), signatures(mb));
    const cell = (side) => (side ? `${side.count}× ${duration(side.total)}` : '—');
    body.replaceChildren(
      el('p', {}, `A: ${duration(ma.total)}, ${ma.spans.length} spans · B: ${duration(mb.total)}, ${mb.spans.length} spans · `,
        el('strong', {}, `B is ${duration(Math.abs(mb.total - ma.total))} ${mb.total >= ma.total ? 'slower' : 'faster'}`)),
      el('section', { class: 'results' }, el('table', {},
        el('thead', {}, el('tr', {}, ['Call path', 'A', 'B', 'Change', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, rows.map((r) => el('tr', { 'data-verdict': r.verdict, 'data-path': r.key },
          el('td', { class: 'mono' }, r.key), el('td', { class: 'num' }, cell(r.a)), el('td', { class: 'num' }, cell(r.b)),
          el('td', { class: 'num' }, `${r.delta >= 0 ? '+' : '−'}${duration(Math.abs(r.delta))}`),
          el('td', { class: `verdict ${r.verdict}` }, r.verdict)))))));
    view.dataset.ready = 'true';
  }, (error) => body.replaceChildren(el('p', { class: 'error-text' }, `Could not load both traces: ${error.message}`)));
}
