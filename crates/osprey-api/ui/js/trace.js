// The trace view: summary, "where the time went", the timeline with the critical path, span details.

import { flattenSpans, getJSON, openAnswer } from './api.js';
import { attributes, duration, el, serviceColor, time } from './format.js';
import { Timeline } from './timeline.js';

const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
const STATUS = ['unset', 'ok', 'error'];

/** Builds the timeline's span model from the API answer. */
export function buildModel(answer) {
  const flat = flattenSpans(answer.resourceSpans);
  const { analysis } = answer;
  const traceStart = BigInt(analysis.startTimeUnixNano);
  const spans = flat.map(({ span, service, resource, scope }, i) => ({
    otlp: span,
    service,
    resource,
    scope,
    name: span.name,
    start: Number(BigInt(span.startTimeUnixNano) - traceStart),
    // A span that ends before it starts (unfinished, clock skew) is shown as an instant, as the
    // server's analysis treats it.
    end: Math.max(Number(BigInt(span.endTimeUnixNano) - traceStart), Number(BigInt(span.startTimeUnixNano) - traceStart)),
    error: span.status?.code === 2,
    self: analysis.selfNanos[i],
    parent: analysis.parents[i],
    children: [],
    depth: 0,
    critical: [],
  }));
  const roots = [];
  spans.forEach((span, i) => (span.parent === null ? roots : spans[span.parent].children).push(i));
  const byStart = (a, b) => spans[a].start - spans[b].start;
  roots.sort(byStart);
  for (const span of spans) span.children.sort(byStart);
  const stack = roots.map((r) => [r, 0]);
  while (stack.length) {
    const [i, depth] = stack.pop();
    spans[i].depth = depth;
    for (const child of spans[i].children) stack.push([child, depth + 1]);
  }
  for (const section of analysis.criticalPath) spans[section.span].critical.push([section.startNanos, section.endNanos]);
  return { spans, roots, total: analysis.durationNanos, analysis };
}

function shareRows(totals, total, label) {
  const max = Math.max(...totals.map((t) => t.selfNanos), 1);
  return el('div', { class: 'shares' }, totals.map((t) => el('div', { class: 'share' },
    el('span', { class: 'name', title: label(t) }, label(t)),
    el('span', {}, el('div', { class: 'bar', style: { width: `${(100 * t.selfNanos) / max}%`, background: serviceColor(t.service) } })),
    el('span', { class: 'value' }, `${duration(t.selfNanos)} · ${((100 * t.selfNanos) / total).toFixed(0)}%`))));
}

function timePanel(analysis) {
  // Shares are of the trace's duration while spans run (nearly) one after another; when they overlap a
  // lot (concurrent calls each count their own time), of all self time instead.
  const wall = Math.max(analysis.durationNanos, 1);
  const selfTotal = analysis.byService.reduce((sum, t) => sum + t.selfNanos, 0);
  const total = selfTotal > wall * 1.05 ? selfTotal : wall;
  const b = analysis.bottleneck;
  const sentence = b
    ? el('div', { class: 'bottleneck', 'data-bottleneck': `${b.service.service}|${b.operation.operation}` },
      'Bottleneck: ', el('strong', {}, b.service.service), `: ${duration(b.service.selfNanos)} of ${duration(wall)} `,
      `(${((100 * b.service.selfNanos) / total).toFixed(0)}%${total > wall * 1.05 ? ' of all self time; spans overlap' : ''}), of which `,
      el('code', {}, b.operation.operation), ` ${duration(b.operation.selfNanos)}`)
    : el('div', { class: 'bottleneck muted' }, 'No spans.');
  return el('section', { class: 'time-panel', 'aria-label': 'Where the time went' },
    sentence,
    el('div', {}, el('h2', {}, 'Self time by service'), shareRows(analysis.byService, total, (t) => t.service)),
    el('div', {}, el('h2', {}, 'Self time by operation'),
      shareRows(analysis.byOperation.slice(0, 8), total, (t) => `${t.service}: ${t.operation}`)));
}

function table(rows) {
  return el('table', {}, el('tbody', {}, rows.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v)))));
}

function details(model, i, onClose) {
  const span = model.spans[i];
  const o = span.otlp;
  const status = o.status || {};
  const parent = span.parent === null ? null : model.spans[span.parent];
  return el('section', { class: 'details', 'aria-label': 'Span details', 'data-span': i },
    el('button', { class: 'close', type: 'button', onclick: onClose, title: 'Close (Esc)' }, '×'),
    el('h2', {}, el('span', { style: { color: serviceColor(span.service) } }, span.service), `: ${span.name}`),
    table([
      ['duration', duration(span.end - span.start)],
      ['self time', duration(span.self)],
      ['start', `+${duration(span.start)} (${time(o.startTimeUnixNano)})`],
      ['kind', KINDS[o.kind || 0]],
      ['status', `${STATUS[status.code || 0]}${status.message ? `: ${status.message}` : ''}`],
      ['span id', o.spanId],
      ['parent span id', o.parentSpanId ? `${o.parentSpanId}${parent ? ` (${parent.service}: ${parent.name})` : ' (not in this trace)'}` : '(root)'],
      ['trace state', o.traceState || ''],
      ['flags', String(o.flags || 0)],
    ]),
    el('h2', {}, 'Attributes'), table(attributes(o.attributes)),
    el('h2', {}, 'Resource'), table(attributes(span.resource.attributes)),
    el('h2', {}, 'Scope'), table([['name', span.scope.name || ''], ['version', span.scope.version || ''], ...attributes(span.scope.attributes)]),
    (o.events || []).length ? [el('h2', {}, `Events (${o.events.length})`),
      table(o.events.map((e) => [`+${duration(Number(BigInt(e.timeUnixNano) - BigInt(o.startTimeUnixNano)))} ${e.name}`,
        attributes(e.attributes).map(([k, v]) => `${k}=${v}`).join('  ')]))] : null,
    (o.links || []).length ? [el('h2', {}, `Links (${o.links.length})`),
      table(o.links.map((l) => [el('a', { href: `/trace/${l.traceId}`, 'data-link': true }, `${l.traceId}/${l.spanId}`),
        attributes(l.attributes).map(([k, v]) => `${k}=${v}`).join('  ')]))] : null);
}

export function renderTrace(view, match) {
  const id = match[1].toLowerCase();
  view.append(el('p', { class: 'muted' }, `Loading trace ${id}…`));
  const started = performance.now();
  let onKey = null;
  (async () => {
    let answer;
    try {
      answer = await getJSON(`/api/osprey/traces/${id}`);
    } catch (error) {
      view.replaceChildren(el('p', { class: 'notice error-text' },
        error.status === 404 ? `Trace ${id} was not found.` : `Could not load trace ${id}: ${error.message}`));
      return;
    }
    const model = buildModel(answer);
    const { spans, roots, total } = model;
    const root = spans[roots.reduce((best, i) => (spans[i].end - spans[i].start > spans[best].end - spans[best].start ? i : best), roots[0])];
    const services = new Set(spans.map((s) => s.service));
    const errors = spans.filter((s) => s.error).length;
    const detailsHolder = el('div');
    const timeline = new Timeline(spans, roots, total, (i) => {
      detailsHolder.replaceChildren(details(model, i, () => detailsHolder.replaceChildren()));
    });
    view.replaceChildren(
      el('div', { class: 'trace-head' },
        el('span', { class: 'title' }, `${root.service}: ${root.name}`),
        el('span', { class: 'mono muted' }, answer.traceId),
        el('span', {}, time(answer.analysis.startTimeUnixNano)),
        el('span', {}, el('strong', {}, duration(total))),
        el('span', {}, `${spans.length} spans`),
        el('span', {}, `${services.size} services`),
        el('span', { class: errors ? 'error-text' : 'muted' }, `${errors} errors`),
        el('a', {
          href: `/api/v3/traces/${answer.traceId}`,
          target: '_blank',
          onclick: (event) => openAnswer(event, `/api/v3/traces/${answer.traceId}`),
        }, 'JSON')),
      timePanel(model.analysis),
      el('div', { class: 'toolbar' },
        el('button', { type: 'button', onclick: () => timeline.setAllCollapsed(false), title: 'Expand all' }, 'Expand all'),
        el('button', { type: 'button', onclick: () => timeline.setAllCollapsed(true), title: 'Collapse all' }, 'Collapse all'),
        el('button', { type: 'button', onclick: () => timeline.zoomBy(0.5), title: 'Zoom in (+)' }, '+'),
        el('button', { type: 'button', onclick: () => timeline.zoomBy(2), title: 'Zoom out (-)' }, '−'),
        el('button', { type: 'button', onclick: () => timeline.zoom(0, total), title: 'Whole trace (0)' }, 'Reset zoom'),
        el('span', { class: 'muted' }, el('span', { class: 'legend-critical' }), ' critical path · ',
          'keys: j/k move, Enter fold, +/− zoom, 0 reset, Esc close')),
      timeline.root,
      detailsHolder,
    );
    timeline.drawRows();
    timeline.drawMinimap();
    const renderMs = performance.now() - started;
    timeline.root.dataset.renderMs = renderMs.toFixed(1);
    timeline.root.dataset.spanCount = String(spans.length);
    view.dataset.ready = 'true';
    onKey = (event) => {
      if (/^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName) || event.ctrlKey || event.metaKey) return;
      const keys = {
        j: () => timeline.step(1), ArrowDown: () => timeline.step(1),
        k: () => timeline.step(-1), ArrowUp: () => timeline.step(-1),
        Enter: () => timeline.selected !== null && timeline.toggle(timeline.selected),
        '+': () => timeline.zoomBy(0.5), '=': () => timeline.zoomBy(0.5), '-': () => timeline.zoomBy(2),
        0: () => timeline.zoom(0, total), Escape: () => detailsHolder.replaceChildren(),
      };
      if (keys[event.key]) {
        event.preventDefault();
        keys[event.key]();
      }
    };
    document.addEventListener('keydown', onKey);
  })();
  return () => onKey && document.removeEventListener('keydown', onKey);
}
