// The service map: services and the calls between them, with rate, error rate and latency on every
// edge, computed from the spans of the chosen window.

import { getJSON } from './api.js';
import { navigate } from './app.js';
import { svg } from './charts.js';
import { duration, el, rateNote, serviceColor } from './format.js';

const LOOKBACKS = ['15m', '1h', '6h', '24h', '7d'];

/** Columns by call depth: a service sits one column right of its deepest caller. */
export function layers(nodes, edges) {
  const depth = new Map(nodes.map((n) => [n.name, 0]));
  for (let round = 0; round < nodes.length; round++) {
    let changed = false;
    for (const e of edges) {
      const d = depth.get(e.parent) + 1;
      if (e.parent !== e.child && d > depth.get(e.child) && d < nodes.length) {
        depth.set(e.child, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return depth;
}

function drawMap(graph) {
  const depth = layers(graph.nodes, graph.edges);
  const columns = new Map();
  for (const n of graph.nodes) {
    const d = depth.get(n.name);
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d).push(n);
  }
  const colWidth = 320;
  const rowHeight = 110;
  const width = Math.max(columns.size * colWidth, 400);
  const height = Math.max(...[...columns.values()].map((c) => c.length)) * rowHeight + 40;
  const at = new Map();
  for (const [d, column] of columns) {
    column.forEach((n, i) => at.set(n.name, { x: 30 + d * colWidth, y: 30 + i * rowHeight + (height - 40 - column.length * rowHeight) / 2 }));
  }
  const seconds = graph.rateWindowNanos / 1e9;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'map', width, height, role: 'img', 'aria-label': 'Service map' });
  root.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }))));
  const boxW = 150;
  const boxH = 44;
  for (const e of graph.edges) {
    const a = at.get(e.parent);
    const b = at.get(e.child);
    if (!a || !b) continue;
    const [x1, y1, x2, y2] = [a.x + boxW, a.y + boxH / 2, b.x, b.y + boxH / 2];
    const errorRate = e.calls ? e.errors / e.calls : 0;
    const g = svg('g', { class: `edge${errorRate > 0.01 ? ' failing' : ''}`, 'data-edge': `${e.parent}>${e.child}` },
      svg('path', { d: `M${x1},${y1} C${x1 + 50},${y1} ${x2 - 50},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)' }),
      svg('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 14, 'text-anchor': 'middle' }, `${(e.calls / seconds).toFixed(2)}/s · ${(100 * errorRate).toFixed(1)}% err`),
      svg('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 2, 'text-anchor': 'middle' }, `p50 ${duration(e.p50Nanos)} · p95 ${duration(e.p95Nanos)}`),
      svg('title', {}, `${e.parent} → ${e.child}: ${e.calls} calls, ${e.errors} errors, p99 ${duration(e.p99Nanos)}`));
    root.append(g);
  }
  for (const n of graph.nodes) {
    const p = at.get(n.name);
    const open = () => navigate(`/services?service=${encodeURIComponent(n.name)}`);
    root.append(svg('g', {
      class: 'node', 'data-service': n.name, tabindex: 0, role: 'link', 'aria-label': `${n.name}: rate, errors and duration`,
      onclick: open, onkeydown: (e) => e.key === 'Enter' && open(),
    },
      svg('rect', { x: p.x, y: p.y, width: boxW, height: boxH, rx: 8, stroke: serviceColor(n.name) }),
      svg('text', { x: p.x + boxW / 2, y: p.y + 19, 'text-anchor': 'middle', class: 'node-name' }, n.name),
      svg('text', { x: p.x + boxW / 2, y: p.y + 35, 'text-anchor': 'middle' }, `${n.spans} spans${n.errors ? ` · ${n.errors} errors` : ''}`)));
  }
  return root;
}

export function renderMap(view, _match, params) {
  const lookback = params.get('lookback') || '1h';
  const picker = el('select', { 'aria-label': 'Lookback', onchange: (e) => navigate(`/map?lookback=${e.target.value}`) },
    LOOKBACKS.map((l) => el('option', { value: l, selected: l === lookback }, `Last ${l}`)));
  const holder = el('div', { class: 'map-holder' }, el('p', { class: 'muted' }, 'Loading…'));
  view.append(el('div', { class: 'toolbar' }, el('h1', {}, 'Service map'), picker), holder);
  getJSON(`/api/osprey/service-graph?lookback=${encodeURIComponent(lookback)}`).then((graph) => {
    holder.replaceChildren(...(graph.nodes.length
      ? [rateNote(graph, lookback), drawMap(graph)].filter(Boolean)
      : [el('p', { class: 'notice' }, 'No spans in this window.')]));
    view.dataset.ready = 'true';
  }, (error) => holder.replaceChildren(el('p', { class: 'error-text' }, error.message)));
}
