//! Spans put back under their resource and scope: consecutive spans of the same resource and scope
//! share one `ResourceSpans` and `ScopeSpans`, as an exporter sends them.

use std::collections::HashMap;

use crate::otlp::{InstrumentationScope, Resource, ResourceSpans, ScopeSpans, Span};

/// Where a span was sent from: its resource and scope, with their schema URLs.
pub struct Origin<'a> {
    pub resource: &'a Option<Resource>,
    pub resource_schema_url: &'a str,
    pub scope: &'a Option<InstrumentationScope>,
    pub scope_schema_url: &'a str,
}

/// Appends `span` to `out`: under the last resource and scope when they are its own, else under
/// new ones (copied from `origin`).
pub fn push_span(out: &mut Vec<ResourceSpans>, origin: &Origin, span: Span) {
    let same_resource = out.last().is_some_and(|rs| {
        rs.resource == *origin.resource && rs.schema_url == origin.resource_schema_url
    });
    if !same_resource {
        out.push(ResourceSpans {
            resource: origin.resource.clone(),
            scope_spans: Vec::new(),
            schema_url: origin.resource_schema_url.to_string(),
        });
    }
    let rs = out.last_mut().expect("just ensured");
    let same_scope = rs
        .scope_spans
        .last()
        .is_some_and(|ss| ss.scope == *origin.scope && ss.schema_url == origin.scope_schema_url);
    if !same_scope {
        rs.scope_spans.push(ScopeSpans {
            scope: origin.scope.clone(),
            spans: Vec::new(),
            schema_url: origin.scope_schema_url.to_string(),
        });
    }
    rs.scope_spans
        .last_mut()
        .expect("just ensured")
        .spans
        .push(span);
}

/// Spans grouped by their scope, in the order each scope first comes; a map finds a span's group,
/// so a list of many scopes costs no more than a list of one.
pub fn by_scope(spans: Vec<(InstrumentationScope, Span)>) -> Vec<ScopeSpans> {
    let mut groups: Vec<ScopeSpans> = Vec::new();
    let mut index: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (scope, span) in spans {
        let candidates = index
            .entry((scope.name.clone(), scope.version.clone()))
            .or_default();
        // Scopes of one name and version that differ otherwise (attributes) stay apart.
        match candidates
            .iter()
            .find(|&&i| groups[i].scope.as_ref() == Some(&scope))
        {
            Some(&i) => groups[i].spans.push(span),
            None => {
                candidates.push(groups.len());
                groups.push(ScopeSpans {
                    scope: Some(scope),
                    spans: vec![span],
                    ..Default::default()
                });
            }
        }
    }
    groups
}
