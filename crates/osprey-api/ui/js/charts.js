// Small SVG charts: no library, no network.

const SVG = 'http://www.w3.org/2000/svg';

/** Builds an SVG element, as el() builds HTML ones. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** "Nice" tick values covering [min, max]. */
export function ticks(min, max, count = 5) {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const step = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(min / nice) * nice; v <= max; v += nice) out.push(v);
  return out;
}

/**
 * A scatter plot: points {x, y, r, color, title, onclick}; xLabel / yLabel format axis values.
 * Returns an <svg> that scales to its box.
 */
export function scatter(points, { xLabel, yLabel, width = 900, height = 180 }) {
  const pad = { left: 60, right: 12, top: 10, bottom: 22 };
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  const y1 = Math.max(...ys, 1) * 1.1;
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const sy = (y) => height - pad.bottom - (y / y1) * (height - pad.top - pad.bottom);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'scatter', preserveAspectRatio: 'none', role: 'img' });
  for (const t of ticks(0, y1, 4)) {
    root.append(svg('line', { x1: pad.left, x2: width - pad.right, y1: sy(t), y2: sy(t) }));
    root.append(svg('text', { x: pad.left - 6, y: sy(t) + 3, 'text-anchor': 'end' }, yLabel(t)));
  }
  for (const t of ticks(x0, x1, 6)) {
    root.append(svg('text', { x: sx(t), y: height - 6, 'text-anchor': 'middle' }, xLabel(t)));
  }
  for (const p of points) {
    const dot = svg('circle', {
      cx: sx(p.x), cy: sy(p.y), r: p.r || 5, fill: p.color, 'fill-opacity': 0.75, stroke: p.stroke || 'none',
      'stroke-width': 2, onclick: p.onclick, 'data-trace': p.id || '',
    }, svg('title', {}, p.title || ''));
    root.append(dot);
  }
  return root;
}

/**
 * A line chart over time: series [{name, color, points: [{x, y}]}]; x in ms since the epoch.
 * yLabel formats the axis values.
 */
export function lineChart(series, { title, yLabel, width = 440, height = 170 }) {
  const pad = { left: 58, right: 10, top: 22, bottom: 22 };
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (!(x1 > x0)) [x0, x1] = [x0 - 1, x0 + 1];
  const y1 = Math.max(...all.map((p) => p.y), 0) * 1.1 || 1;
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const sy = (y) => height - pad.bottom - (y / y1) * (height - pad.top - pad.bottom);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': title });
  root.append(svg('text', { x: pad.left, y: 14, class: 'chart-title' }, title));
  for (const t of ticks(0, y1, 3)) {
    root.append(svg('line', { x1: pad.left, x2: width - pad.right, y1: sy(t), y2: sy(t) }));
    root.append(svg('text', { x: pad.left - 6, y: sy(t) + 3, 'text-anchor': 'end' }, yLabel(t)));
  }
  for (const t of ticks(x0, x1, 4)) {
    root.append(svg('text', { x: sx(t), y: height - 6, 'text-anchor': 'middle' },
      new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false })));
  }
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join('');
    root.append(svg('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2, 'data-series': s.name }));
    for (const p of s.points) root.append(svg('circle', { cx: sx(p.x), cy: sy(p.y), r: 2.5, fill: s.color }));
    root.append(svg('text', { x: width - pad.right - 70 * (series.length - i), y: 14, fill: s.color }, s.name));
  });
  return root;
}
