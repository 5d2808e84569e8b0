//! Parsing the query-string forms the compatible APIs use: Go durations, RFC 3339 times, hex ids,
//! repeated keys.

use osprey_model::jaeger::span_kind_from_name;
use osprey_model::TraceId;

/// A query string as (key, value) pairs, keeping repeated keys.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Params, String> {
        serde_urlencoded::from_str(query.unwrap_or(""))
            .map(Params)
            .map_err(|e| format!("malformed query string: {e}"))
    }

    /// The first non-empty value of any of `keys` (APIs accept several spellings of one parameter).
    pub fn get(&self, keys: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| keys.contains(&k.as_str()) && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An optional value parsed with `parse`; the error names the parameter.
    pub fn parsed<T>(
        &self,
        keys: &[&str],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.get(keys) {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .map_err(|e| format!("invalid {}: {e}", keys[0])),
        }
    }
}

/// The `service` (required) and optional `spanKind` of an operations listing, as an OTLP kind.
pub fn operations_filter(params: &Params) -> Result<(String, Option<i32>), String> {
    let service = params
        .get(&["service"])
        .ok_or("parameter 'service' is required")?
        .to_string();
    let kind = match params.get(&["spanKind", "span_kind"]) {
        None => None,
        Some(name) => Some(span_kind_from_name(name).ok_or(format!("unknown spanKind {name:?}"))?),
    };
    Ok((service, kind))
}

/// A JSON object of attribute filters (`{"http.method": "GET"}`); non-string values match their JSON
/// text. `name` is the parameter, for the error message.
pub fn attribute_map(text: &str, name: &str) -> Result<Vec<(String, String)>, String> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| format!("invalid {name}: expected a JSON object: {e}"))?;
    Ok(map
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => (key, s),
            other => (key, other.to_string()),
        })
        .collect())
}

pub fn trace_id(text: &str) -> Result<TraceId, String> {
    TraceId::from_hex(text).map_err(|e| format!("malformed trace id {text:?}: {e}"))
}

pub fn unsigned(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a non-negative integer"))
}

/// A Go `time.Duration` string (`1.5s`, `300ms`, `2h45m`, `10us`) in nanoseconds; also `d` for days,
/// as the Jaeger UI's lookbacks (`2d`, `7d`) use it.
pub fn go_duration(text: &str) -> Result<u64, String> {
    if text == "0" {
        return Ok(0);
    }
    osprey_query::traceql::parse_duration(text)
        .and_then(|ns| u64::try_from(ns).ok())
        .ok_or_else(|| format!("{text:?} is not a duration like 300ms, 1.5s or 2m"))
}

/// A day in nanoseconds: the lookback of the Jaeger and Zipkin APIs when none is given.
pub const DAY_NS: u64 = 86_400_000_000_000;

/// `endTs` (unix ms, default now) and `lookback` (ms, default a day) as a window in nanoseconds:
/// how Jaeger's `/api/dependencies` and Zipkin's API name a time range.
pub fn end_ts_lookback(p: &Params) -> Result<(u64, u64), String> {
    let end = p.parsed(&["endTs"], millis)?.unwrap_or(now_ns());
    let lookback = p.parsed(&["lookback"], millis)?.unwrap_or(DAY_NS);
    Ok((end.saturating_sub(lookback), end))
}

/// Now, in nanoseconds since the Unix epoch: where a window without an end ends.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Milliseconds (a time since the epoch, or a duration), as the Jaeger UI sends them, in
/// nanoseconds.
pub fn millis(text: &str) -> Result<u64, String> {
    unsigned(text).map(|ms| ms.saturating_mul(1_000_000))
}

/// An RFC 3339 time (any precision, any offset) in nanoseconds since the Unix epoch.
pub fn rfc3339(text: &str) -> Result<u64, String> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
    u64::try_from(time.unix_timestamp_nanos()).map_err(|_| format!("{text:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(go_duration("2h45m"), Ok(9_900_000_000_000));
        assert_eq!(go_duration("300ms"), Ok(300_000_000));
        assert_eq!(go_duration("10us"), Ok(10_000));
        assert_eq!(go_duration("10µs"), Ok(10_000));
        assert_eq!(go_duration("7d"), Ok(7 * 86_400_000_000_000));
        assert!(go_duration("10").is_err());
        assert!(go_duration("fast").is_err());
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339("1970-01-01T00:00:01.5Z"), Ok(1_500_000_000));
        assert_eq!(rfc3339("1970-01-01T01:00:01+01:00"), Ok(1_000_000_000));
        assert!(rfc3339("yesterday").is_err());
    }

    #[test]
    fn repeated_and_aliased_keys() {
        let p = Params::parse(Some("tag=a:1&tag=b:2&query.serviceName=x")).unwrap();
        assert_eq!(p.all("tag").collect::<Vec<_>>(), ["a:1", "b:2"]);
        assert_eq!(
            p.get(&["query.service_name", "query.serviceName"]),
            Some("x")
        );
    }
}
