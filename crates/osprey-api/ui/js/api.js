// Fetching from Osprey's APIs; errors carry the server's own message.

const TOKEN_KEY = 'osprey.token';

/**
 * fetch() with the bearer token this browser was given, when the server requires one
 * (`--auth-tokens`): a call refused for want of a token (401), or because the kept token may not
 * read here (403: an ingest-only token, say), asks for a token once, keeps it in local storage and
 * tries again.
 */
export async function apiFetch(url) {
  const send = (token) => {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    return fetch(url, { headers });
  };
  const sentWith = localStorage.getItem(TOKEN_KEY);
  let response = await send(sentWith);
  if (response.status === 401 || (response.status === 403 && sentWith)) {
    // Calls refused together (a page loads several) ask once: a later one finds the token the
    // first was given and uses it.
    let token = localStorage.getItem(TOKEN_KEY);
    if (!token || token === sentWith) {
      const question = response.status === 403
        ? 'The access token kept in this browser may not read here (403). Another token:'
        : 'This Osprey requires an access token (bearer token):';
      token = window.prompt(question)?.trim();
      if (token) localStorage.setItem(TOKEN_KEY, token);
    }
    if (token && token !== sentWith) response = await send(token);
  }
  return response;
}

/**
 * Opens an API answer in a new tab. A plain link cannot carry the token a secured server wants,
 * so with a token kept the answer is fetched with it and shown from memory.
 */
export function openAnswer(event, url) {
  if (!localStorage.getItem(TOKEN_KEY)) return; // the link opens it as it is
  event.preventDefault();
  const tab = window.open('', '_blank'); // now, while the click still allows it
  apiFetch(url)
    .then((response) => response.blob())
    .then((blob) => { if (tab) tab.location = URL.createObjectURL(blob); })
    .catch((error) => { if (tab) tab.document.body.textContent = String(error); });
}

export async function getJSON(url) {
  const response = await apiFetch(url);
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body?.error?.message || body?.error || body?.errors?.[0]?.msg || response.statusText;
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

/** Flattens a trace's OTLP/JSON resourceSpans into spans in resource → scope → span order. */
export function flattenSpans(resourceSpans) {
  const spans = [];
  for (const rs of resourceSpans || []) {
    const resourceAttributes = rs.resource?.attributes || [];
    const service = resourceAttributes.find((kv) => kv.key === 'service.name')?.value?.stringValue || 'unknown_service';
    for (const ss of rs.scopeSpans || []) {
      for (const span of ss.spans || []) {
        spans.push({ span, service, resource: rs.resource || {}, scope: ss.scope || {} });
      }
    }
  }
  return spans;
}
