//! Reading OTLP attributes: the lookups and renderings that search, the APIs and the CLI all need.

use crate::otlp::{any_value::Value, AnyValue, KeyValue, Resource};

/// The `service.name` resource attribute, or OTLP's documented fallback `unknown_service`.
pub fn service_name(resource: Option<&Resource>) -> &str {
    resource
        .and_then(|r| find(&r.attributes, "service.name"))
        .and_then(|v| match v {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
        .unwrap_or("unknown_service")
}

/// The value of attribute `key`, if present and set.
pub fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// A value as the text a user types in a search box: strings bare, numbers and bools as Rust prints them,
/// arrays and maps as JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        // A string-table index only has meaning in OTLP profiles; traces never carry one.
        Value::StringValueStrindex(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BytesValue(b) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b)
        }
        Value::ArrayValue(_) | Value::KvlistValue(_) => value_json(value).to_string(),
    }
}

/// A value as plain JSON (no OTLP type wrappers), for renderings that show arrays and maps as text.
pub fn value_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::StringValue(s) => J::from(s.as_str()),
        Value::BoolValue(b) => J::from(*b),
        Value::IntValue(i) => J::from(*i),
        Value::StringValueStrindex(i) => J::from(*i),
        Value::DoubleValue(d) => J::from(*d),
        Value::BytesValue(_) => J::from(value_text(value)),
        Value::ArrayValue(a) => J::Array(a.values.iter().map(any_json).collect()),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, any_json)))
                .collect(),
        ),
    }
}

fn any_json(value: &AnyValue) -> serde_json::Value {
    value
        .value
        .as_ref()
        .map_or(serde_json::Value::Null, value_json)
}

/// Whether attribute `key` is present with a value whose text is `expected`.
pub fn matches(attributes: &[KeyValue], key: &str, expected: &str) -> bool {
    attributes.iter().any(|kv| {
        kv.key == key
            && kv
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
                .is_some_and(|v| reads_as(v, expected))
    })
}

/// Whether a value's text is `expected`, or (an array) one of its elements' is: what searches by
/// attribute value compare, so `{ span.tags = "a" }` finds `tags = ["a", "b"]`.
pub fn reads_as(value: &Value, expected: &str) -> bool {
    value_text(value) == expected
        || matches!(value, Value::ArrayValue(a) if a.values.iter().any(|v| {
            v.value.as_ref().is_some_and(|v| reads_as(v, expected))
        }))
}
