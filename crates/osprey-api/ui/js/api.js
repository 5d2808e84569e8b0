// Fetching from Osprey's APIs; errors carry the server's own message.

export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: 'application/json' } });
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
