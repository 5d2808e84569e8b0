// The trace timeline: a collapsible span tree beside a waterfall of bars, virtualised (only the rows
// in view are in the DOM, so 50,000-span traces scroll smoothly), with a minimap that selects the
// zoomed time window and the critical path drawn over the bars.

import { ticks } from './charts.js';
import { duration, el, serviceColor } from './format.js';

const ROW = 24;
const BUFFER = 15;

export class Timeline {
  /**
   * spans: [{service, name, start, end (ns from trace start), error, children: [index], depth, critical: [[s, e]]}]
   * roots: indices of spans without a parent in the trace.
   */
  constructor(spans, roots, total, onSelect) {
    this.spans = spans;
    this.roots = roots;
    this.total = Math.max(total, 1);
    this.onSelect = onSelect;
    this.collapsed = new Set();
    this.window = [0, this.total];
    this.selected = null;
    this.minimap = el('canvas', { class: 'minimap', title: 'Drag to zoom into a time window; double-click to reset', height: 64 });
    this.ticks = el('div', { class: 'ticks' });
    this.layer = el('div', { class: 'layer' });
    this.spacer = el('div', { style: { height: '0px' } });
    this.rows = el('div', { class: 'rows', tabindex: 0, 'aria-label': 'Spans' }, this.spacer, this.layer);
    this.root = el('div', {},
      this.minimap,
      el('div', { class: 'timeline', style: { '--label-width': '38%' } },
        el('div', { class: 'axis' }, el('div', { style: { paddingLeft: '8px', paddingTop: '4px' } }, 'Service: operation'), this.ticks),
        this.rows));
    this.rows.addEventListener('scroll', () => this.drawRows());
    this.rows.addEventListener('click', (event) => this.click(event));
    this.bindMinimap();
    this.relayout();
  }

  /** Visible rows in tree order, skipping collapsed subtrees. */
  relayout() {
    const order = [];
    const stack = [...this.roots].reverse();
    while (stack.length) {
      const i = stack.pop();
      order.push(i);
      if (!this.collapsed.has(i)) {
        const kids = this.spans[i].children;
        for (let k = kids.length - 1; k >= 0; k--) stack.push(kids[k]);
      }
    }
    this.order = order;
    this.position = new Map(order.map((span, row) => [span, row]));
    this.spacer.style.height = `${order.length * ROW}px`;
    this.rows.style.height = `${Math.min(order.length * ROW + 2, Math.max(window.innerHeight * 0.6, 240))}px`;
    this.drawRows();
  }

  x(ns) {
    const [w0, w1] = this.window;
    return ((ns - w0) / (w1 - w0)) * 100;
  }

  drawAxis() {
    const [w0, w1] = this.window;
    this.ticks.replaceChildren(...ticks(w0, w1, 6).map((t) => el('span', { class: 'tick', style: { left: `${this.x(t)}%` } }, duration(t))));
  }

  drawRows() {
    this.drawAxis();
    const first = Math.max(0, Math.floor(this.rows.scrollTop / ROW) - BUFFER);
    const last = Math.min(this.order.length, Math.ceil((this.rows.scrollTop + this.rows.clientHeight) / ROW) + BUFFER);
    const rows = [];
    for (let row = first; row < last; row++) rows.push(this.row(this.order[row], row));
    this.layer.replaceChildren(...rows);
  }

  row(i, rowIndex) {
    const span = this.spans[i];
    const hasChildren = span.children.length > 0;
    const left = this.x(span.start);
    const width = Math.max(this.x(span.end) - left, 0);
    const lane = el('div', { class: 'lane' },
      el('div', { class: `bar${span.error ? ' error' : ''}`, style: { left: `${left}%`, width: `${width}%`, background: serviceColor(span.service) } }),
      span.critical.map(([s, e]) => el('div', { class: 'crit', style: { left: `${this.x(s)}%`, width: `${Math.max(this.x(e) - this.x(s), 0)}%` } })),
      el('span', { class: 'dur', style: left + width < 85 ? { left: `calc(${left + width}% + 4px)` } : { right: `calc(${100 - left}% + 4px)` } },
        duration(span.end - span.start)));
    return el('div', {
      class: `row${this.selected === i ? ' selected' : ''}`, style: { top: `${rowIndex * ROW}px` }, 'data-span': i, 'data-row': rowIndex,
      'data-critical': span.critical.length ? 'true' : null, role: 'row', 'aria-selected': this.selected === i ? 'true' : 'false',
    },
    el('div', { class: 'label', style: { paddingLeft: `${4 + span.depth * 14}px` }, title: `${span.service}: ${span.name}` },
      el('span', { class: 'toggle', 'data-toggle': hasChildren ? i : null }, hasChildren ? (this.collapsed.has(i) ? '▸' : '▾') : ''),
      el('span', { class: 'svc', style: { color: serviceColor(span.service) } }, span.service), ': ', span.name,
      span.error ? el('span', { class: 'err', title: 'Error status' }, ' ✗') : null),
    lane);
  }

  click(event) {
    const row = event.target.closest('.row');
    if (!row) return;
    const i = Number(row.dataset.span);
    if (event.target.dataset.toggle !== undefined) this.toggle(i);
    else this.select(i);
  }

  toggle(i) {
    if (!this.spans[i].children.length) return;
    if (this.collapsed.has(i)) this.collapsed.delete(i);
    else this.collapsed.add(i);
    this.relayout();
  }

  setAllCollapsed(collapsed) {
    this.collapsed = new Set(collapsed ? this.spans.map((s, i) => (s.children.length ? i : -1)).filter((i) => i >= 0) : []);
    for (const root of this.roots) this.collapsed.delete(root);
    this.relayout();
  }

  select(i) {
    this.selected = i;
    const row = this.position.get(i);
    if (row !== undefined) {
      const top = row * ROW;
      if (top < this.rows.scrollTop || top + ROW > this.rows.scrollTop + this.rows.clientHeight) {
        this.rows.scrollTop = top - this.rows.clientHeight / 2;
      }
    }
    this.drawRows();
    this.onSelect(i);
  }

  /** Moves the selection by `delta` visible rows. */
  step(delta) {
    if (!this.order.length) return;
    const row = this.selected === null ? -1 : this.position.get(this.selected) ?? -1;
    const next = Math.min(Math.max(row + delta, 0), this.order.length - 1);
    this.select(this.order[next]);
  }

  zoom(w0, w1) {
    const min = this.total / 10000;
    if (w1 - w0 < min) [w0, w1] = [(w0 + w1) / 2 - min / 2, (w0 + w1) / 2 + min / 2];
    this.window = [Math.max(0, w0), Math.min(this.total, w1)];
    this.drawRows();
    this.drawMinimap();
  }

  zoomBy(factor) {
    const [w0, w1] = this.window;
    const middle = (w0 + w1) / 2;
    const half = ((w1 - w0) * factor) / 2;
    this.zoom(middle - half, middle + half);
  }

  drawMinimap() {
    const canvas = this.minimap;
    const width = canvas.clientWidth || 800;
    if (canvas.width !== width) canvas.width = width;
    const height = canvas.height;
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, width, height);
    if (!this.fullOrder) {
      this.fullOrder = [];
      const stack = [...this.roots].reverse();
      while (stack.length) {
        const i = stack.pop();
        this.fullOrder.push(i);
        const kids = this.spans[i].children;
        for (let k = kids.length - 1; k >= 0; k--) stack.push(kids[k]);
      }
    }
    const n = this.fullOrder.length;
    const step = Math.max(1, Math.floor(n / (height * 4)));
    for (let r = 0; r < n; r += step) {
      const span = this.spans[this.fullOrder[r]];
      ctx.fillStyle = span.error ? '#d1242f' : serviceColor(span.service);
      const x = (span.start / this.total) * width;
      const w = Math.max(((span.end - span.start) / this.total) * width, 1);
      ctx.fillRect(x, (r / n) * height, w, Math.max(height / n, 1));
    }
    const [w0, w1] = this.window;
    if (w0 > 0 || w1 < this.total) {
      ctx.fillStyle = 'rgba(120, 130, 150, 0.25)';
      ctx.fillRect(0, 0, (w0 / this.total) * width, height);
      ctx.fillRect((w1 / this.total) * width, 0, width, height);
      ctx.strokeStyle = '#1f6feb';
      ctx.strokeRect((w0 / this.total) * width, 0.5, ((w1 - w0) / this.total) * width, height - 1);
    }
  }

  bindMinimap() {
    let from = null;
    const at = (event) => {
      const rect = this.minimap.getBoundingClientRect();
      return Math.min(Math.max((event.clientX - rect.left) / rect.width, 0), 1) * this.total;
    };
    this.minimap.addEventListener('mousedown', (event) => { from = at(event); });
    window.addEventListener('mouseup', (event) => {
      if (from === null) return;
      const to = at(event);
      if (Math.abs(to - from) > this.total / 500) this.zoom(Math.min(from, to), Math.max(from, to));
      from = null;
    });
    this.minimap.addEventListener('dblclick', () => this.zoom(0, this.total));
  }
}
