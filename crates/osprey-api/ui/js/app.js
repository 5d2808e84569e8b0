// The UI shell: routing (every view is a URL), the trace-id jump box, theme, global keys.

import { renderCompare } from './compare.js';
import { renderMap } from './map.js';
import { renderSearch } from './search.js';
import { renderServices } from './services.js';
import { renderTrace } from './trace.js';

const ROUTES = [
  [/^\/search\/?$/, renderSearch],
  [/^\/trace\/([0-9a-fA-F]{1,32})\/?$/, renderTrace],
  [/^\/map\/?$/, renderMap],
  [/^\/services\/?$/, renderServices],
  [/^\/compare\/?$/, renderCompare],
];

const view = document.getElementById('view');
let cleanup = null;

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

function render() {
  if (cleanup) cleanup();
  cleanup = null;
  view.replaceChildren();
  const path = location.pathname;
  for (const link of document.querySelectorAll('.top nav a')) {
    link.toggleAttribute('aria-current', path.startsWith(link.getAttribute('href')));
    if (link.hasAttribute('aria-current')) link.setAttribute('aria-current', 'page');
  }
  for (const [pattern, handler] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      cleanup = handler(view, match, new URLSearchParams(location.search)) || null;
      return;
    }
  }
  view.textContent = `No page at ${path}.`;
}

/** A trace id, or the trace id inside a W3C traceparent header (version-traceid-parentid-flags). */
export function traceIdFrom(text) {
  const value = text.trim().replace(/^traceparent:\s*/i, '');
  const parent = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/i.exec(value);
  if (parent) return parent[1].toLowerCase();
  if (/^[0-9a-f]{16}$|^[0-9a-f]{32}$/i.test(value)) return value.toLowerCase();
  return null;
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-link]');
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', render);

const jump = document.getElementById('jump');
const jumpInput = document.getElementById('jump-input');
jump.addEventListener('submit', (event) => {
  event.preventDefault();
  const id = traceIdFrom(jumpInput.value);
  if (!id) {
    jumpInput.setCustomValidity('Paste a 16 or 32 digit trace id, or a traceparent header');
    jumpInput.reportValidity();
    return;
  }
  jumpInput.setCustomValidity('');
  jumpInput.value = '';
  navigate(`/trace/${id}`);
});
jumpInput.addEventListener('input', () => jumpInput.setCustomValidity(''));

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}
applyTheme(localStorage.getItem('osprey-theme'));
function toggleTheme() {
  const dark = getComputedStyle(document.documentElement).colorScheme.includes('dark');
  const next = dark ? 'light' : 'dark';
  localStorage.setItem('osprey-theme', next);
  applyTheme(next);
}
document.getElementById('theme').addEventListener('click', toggleTheme);

document.addEventListener('keydown', (event) => {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName);
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === '/') {
    event.preventDefault();
    jumpInput.focus();
  } else if (event.key === 't') {
    toggleTheme();
  }
});

render();
