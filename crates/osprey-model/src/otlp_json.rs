//! The OTLP/JSON encoding (hex ids, integer enums, 64-bit integers as strings or numbers, unknown fields
//! ignored), on top of the serde support `opentelemetry-proto` generates: its messages serialise to
//! OTLP/JSON as they are, and requests decode with [`decode_request`].

use crate::otlp::ExportTraceServiceRequest;

/// Decodes an `ExportTraceServiceRequest` from OTLP/JSON; the error names the offending place.
pub fn decode_request(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid OTLP/JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::any_value::Value;
    use crate::otlp::ResourceSpans;

    const REQUEST: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"checkout"}}]},
      "scopeSpans":[{"scope":{"name":"lib","version":"1.0"},"spans":[{
        "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
        "parentSpanId":"","name":"GET /","kind":2,"flags":257,
        "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
        "attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"f","value":{"doubleValue":1.5}},
                      {"key":"b","value":{"bytesValue":"AQI="}}],
        "status":{"code":2,"message":"boom"},"somethingNew":{"x":1}}]}]}]}"#;

    #[test]
    fn decodes_the_otlp_json_rules() {
        let request = decode_request(REQUEST.as_bytes()).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id[0], 0x5b);
        assert_eq!(span.span_id.len(), 8);
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.kind, 2);
        assert_eq!(span.flags, 257);
        assert_eq!(span.end_time_unix_nano, 1544712661000000000);
        assert_eq!(
            span.attributes[0].value.as_ref().unwrap().value,
            Some(Value::IntValue(42))
        );
        assert_eq!(
            span.attributes[2].value.as_ref().unwrap().value,
            Some(Value::BytesValue(vec![1, 2]))
        );
        assert_eq!(span.status.as_ref().unwrap().code, 2);
    }

    #[test]
    fn encodes_back_to_hex_ids_and_string_int64() {
        let request = decode_request(REQUEST.as_bytes()).unwrap();
        let json = serde_json::to_value(&request.resource_spans).unwrap();
        let span = &json[0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(span["startTimeUnixNano"], "1544712660000000000");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "42");
        let again: Vec<ResourceSpans> = serde_json::from_value(json).unwrap();
        assert_eq!(again, request.resource_spans);
    }

    #[test]
    fn reports_where_the_json_is_wrong() {
        let err = decode_request(
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("invalid OTLP/JSON"), "{err}");
        assert!(decode_request(b"{not json").is_err());
    }
}
