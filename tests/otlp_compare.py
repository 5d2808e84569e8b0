"""Turns OTLP protobuf messages and Osprey's OTLP/JSON answers into one comparable form."""

import base64

from google.protobuf.json_format import MessageToDict

ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def _strip(value):
    """Drops default values (protobuf JSON omits them; Osprey writes them out) and hex-encodes ids."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = _strip(item)
            if item is None or item == "" or item == [] or item == {}:
                continue
            if type(item) in (int, float) and item == 0:
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _ids_to_hex(value):
    if isinstance(value, dict):
        return {
            k: (base64.b64decode(v).hex() if k in ID_KEYS and isinstance(v, str) else _ids_to_hex(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_ids_to_hex(v) for v in value]
    return value


def _lower_ids(value):
    if isinstance(value, dict):
        return {k: (v.lower() if k in ID_KEYS and isinstance(v, str) else _lower_ids(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_ids(v) for v in value]
    return value


def flatten(resource_spans):
    """(resource, scope, span) triples keyed by span id, whatever the grouping."""
    out = {}
    for rs in resource_spans:
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                key = (span["spanId"], span.get("kind", 0))
                out[key] = {
                    "resource": rs.get("resource", {}),
                    "resourceSchemaUrl": rs.get("schemaUrl", ""),
                    "scope": ss.get("scope", {}),
                    "scopeSchemaUrl": ss.get("schemaUrl", ""),
                    "span": span,
                }
    return out


def from_protobuf(request):
    """An ExportTraceServiceRequest (protobuf) in the comparable form."""
    as_dict = MessageToDict(request, use_integers_for_enums=True)
    return flatten(_strip(_ids_to_hex(as_dict)).get("resourceSpans", []))


def from_json(resource_spans):
    """Osprey's OTLP/JSON `resourceSpans` in the comparable form."""
    return flatten(_strip(_lower_ids(resource_spans)))
