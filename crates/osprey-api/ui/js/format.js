// Formatting and a tiny DOM builder shared by every view.

/** Builds an element: el('a', {href: '/x', class: 'y', onclick: f}, 'text', child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'style' && typeof value === 'object') {
      for (const [property, v] of Object.entries(value)) {
        if (property.startsWith('--')) node.style.setProperty(property, v);
        else node.style[property] = v;
      }
    }
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Nanoseconds as the shortest readable duration: 1.81s, 12.3ms, 450µs. */
export function duration(ns) {
  ns = Number(ns);
  if (ns >= 60e9) return `${(ns / 60e9).toFixed(1)}min`;
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(ns >= 10e9 ? 1 : 2)}s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(ns >= 10e6 ? 1 : 2)}ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(0)}µs`;
  return `${ns}ns`;
}

/** A Unix-nanosecond timestamp (string) as local date and time with milliseconds. */
export function time(unixNanos) {
  const ms = Number(BigInt(unixNanos) / 1000000n);
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A stable colour per service name; never red, which marks errors. */
export function serviceColor(name) {
  let hash = 0;
  for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${25 + (hash % 310)} 60% 50%)`;
}

/** Says what a rate is per: the stretch of the window that holds spans, not the whole window. */
export function rateNote(answer, lookback) {
  if (answer.dataStartNanos === '0') return null;
  return el('p', { class: 'muted rate-note' },
    `Rates are per second of the ${duration(answer.rateWindowNanos)} that hold spans in the last ${lookback} `
    + `(${time(answer.dataStartNanos)} – ${time(answer.dataEndNanos)}).`);
}

/** An OTLP/JSON AnyValue as display text. */
export function anyValue(value) {
  if (!value) return '';
  if ('stringValue' in value) return value.stringValue;
  if ('intValue' in value) return String(value.intValue);
  if ('doubleValue' in value) return String(value.doubleValue);
  if ('boolValue' in value) return String(value.boolValue);
  if ('bytesValue' in value) return `base64:${value.bytesValue}`;
  if ('arrayValue' in value) return `[${(value.arrayValue.values || []).map(anyValue).join(', ')}]`;
  if ('kvlistValue' in value) {
    return `{${(value.kvlistValue.values || []).map((kv) => `${kv.key}: ${anyValue(kv.value)}`).join(', ')}}`;
  }
  return '';
}

/** OTLP/JSON attributes as [key, text] pairs. */
export function attributes(list) {
  return (list || []).map((kv) => [kv.key, anyValue(kv.value)]);
}

/** Parses a Go-style duration (300ms, 1.5s, 2m) to nanoseconds; null when empty or invalid. */
export function parseDuration(text) {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)\s*$/.exec(text || '');
  if (!match) return null;
  const scale = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }[match[2]];
  return Math.round(Number(match[1]) * scale);
}
