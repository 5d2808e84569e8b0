// Fetching from Osprey's APIs; errors carry the server's own message.

const TOKEN_KEY = 'osprey.token';

/**
 * fetch() with the bearer token this browser was given, when the server requires one
 * (`--auth-tokens`): a refused call (401) asks for a token once, keeps it in local storage and
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
  if (response.status === 401) {
    // Calls refused together (a page loads several) ask once: a later one finds the token the
    // first was given and uses it.
    let token = localStorage.getItem(TOKEN_KEY);
    if (!token || token === sentWith) {
      token = window.prompt('This Osprey requires an access token (bearer token):')?.trim();
      if (token) localStorage.setItem(TOKEN_KEY, token);
    }
    if (token) response = await send(token);
  }
  return response;
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
