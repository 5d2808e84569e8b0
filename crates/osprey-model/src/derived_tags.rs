//! The tags the Jaeger view derives from a span's own fields rather than its attributes, as Jaeger's
//! OTLP translator does: `span.kind`, `otel.scope.name`, `otel.scope.version`, `otel.status_code`,
//! `error`, `otel.status_description`, `w3c.tracestate`. The Jaeger UI shows them beside the
//! attributes and offers `error=true` as its example search, so a search by tag matches them too.

use crate::otlp::{span::SpanKind, status::StatusCode, InstrumentationScope, Span};

/// A tag derived from a span's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivedTag {
    SpanKind,
    ScopeName,
    ScopeVersion,
    StatusCode,
    Error,
    StatusDescription,
    TraceState,
}

/// The fields of a span its derived tags read: from a decoded span, or from a block's columns.
#[derive(Debug, Clone, Copy)]
pub struct SpanFields<'a> {
    pub kind: i32,
    /// `None`: the span has no status.
    pub status_code: Option<i32>,
    pub status_message: &'a str,
    pub scope_name: &'a str,
    pub scope_version: &'a str,
    pub trace_state: &'a str,
}

impl<'a> SpanFields<'a> {
    /// The fields of a decoded span, sent under `scope`.
    pub fn of(span: &'a Span, scope: Option<&'a InstrumentationScope>) -> SpanFields<'a> {
        SpanFields {
            kind: span.kind,
            status_code: span.status.as_ref().map(|s| s.code),
            status_message: span.status.as_ref().map_or("", |s| s.message.as_str()),
            scope_name: scope.map_or("", |s| s.name.as_str()),
            scope_version: scope.map_or("", |s| s.version.as_str()),
            trace_state: &span.trace_state,
        }
    }
}

impl DerivedTag {
    /// Every derived tag, in the order the Jaeger view lists them after the attributes.
    pub const ALL: [DerivedTag; 7] = [
        DerivedTag::SpanKind,
        DerivedTag::ScopeName,
        DerivedTag::ScopeVersion,
        DerivedTag::StatusCode,
        DerivedTag::Error,
        DerivedTag::StatusDescription,
        DerivedTag::TraceState,
    ];

    pub fn key(self) -> &'static str {
        match self {
            DerivedTag::SpanKind => "span.kind",
            DerivedTag::ScopeName => "otel.scope.name",
            DerivedTag::ScopeVersion => "otel.scope.version",
            DerivedTag::StatusCode => "otel.status_code",
            DerivedTag::Error => "error",
            DerivedTag::StatusDescription => "otel.status_description",
            DerivedTag::TraceState => "w3c.tracestate",
        }
    }

    pub fn of_key(key: &str) -> Option<DerivedTag> {
        DerivedTag::ALL.into_iter().find(|t| t.key() == key)
    }

    /// The tag's value for a span, as text (`error`'s is the boolean `true`); `None` when the span
    /// has no such tag (no kind, no status, an empty scope name…).
    pub fn value<'a>(self, span: &SpanFields<'a>) -> Option<&'a str> {
        let non_empty = |s: &'a str| (!s.is_empty()).then_some(s);
        match self {
            DerivedTag::SpanKind => span_kind_name(span.kind),
            DerivedTag::ScopeName => non_empty(span.scope_name),
            DerivedTag::ScopeVersion => non_empty(span.scope_version),
            DerivedTag::StatusCode => match StatusCode::try_from(span.status_code?).ok()? {
                StatusCode::Error => Some("ERROR"),
                StatusCode::Ok => Some("OK"),
                StatusCode::Unset => None,
            },
            DerivedTag::Error => {
                (span.status_code == Some(StatusCode::Error as i32)).then_some("true")
            }
            DerivedTag::StatusDescription => span.status_code.and(non_empty(span.status_message)),
            DerivedTag::TraceState => non_empty(span.trace_state),
        }
    }
}

/// Whether the span's tag `key`, if it is a derived one, reads as `text`.
pub fn reads_as(key: &str, text: &str, span: &SpanFields) -> bool {
    DerivedTag::of_key(key).is_some_and(|t| t.value(span) == Some(text))
}

/// The Jaeger name of an OTLP span kind (`span.kind` tag), `None` for UNSPECIFIED.
pub fn span_kind_name(kind: i32) -> Option<&'static str> {
    match SpanKind::try_from(kind).ok()? {
        SpanKind::Unspecified => None,
        SpanKind::Internal => Some("internal"),
        SpanKind::Server => Some("server"),
        SpanKind::Client => Some("client"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_from_the_span_fields() {
        let span = SpanFields {
            kind: SpanKind::Server as i32,
            status_code: Some(StatusCode::Error as i32),
            status_message: "card declined",
            scope_name: "checkout",
            scope_version: "",
            trace_state: "",
        };
        let values: Vec<_> = DerivedTag::ALL.iter().map(|t| t.value(&span)).collect();
        assert_eq!(
            values,
            [
                Some("server"),
                Some("checkout"),
                None,
                Some("ERROR"),
                Some("true"),
                Some("card declined"),
                None
            ]
        );
        let unset = SpanFields {
            status_code: None,
            kind: 0,
            ..span
        };
        assert!(DerivedTag::ALL
            .iter()
            .filter(|t| !matches!(t, DerivedTag::ScopeName))
            .all(|t| t.value(&unset).is_none()));
        assert_eq!(DerivedTag::of_key("error"), Some(DerivedTag::Error));
        assert_eq!(DerivedTag::of_key("http.method"), None);
    }
}
