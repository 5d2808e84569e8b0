//! What a span source can check before a trace is assembled: from a spanset expression, the
//! conditions one span of every matching trace must meet (service, name, attribute values,
//! duration bounds), as a [`TraceQuery`] the sources answer from their indexes and columns. It is a
//! necessary condition only; every candidate trace is then evaluated in full.

use osprey_store::{SpanParts, TraceQuery};

use super::ast::*;
use super::value::Value;

/// The conditions one span of every matching trace meets, or `None` when nothing can be said.
pub fn prefilter(expr: &SpansetExpr) -> Option<TraceQuery> {
    match expr {
        SpansetExpr::Filter(f) => from_filter(f),
        SpansetExpr::Pair(op, lhs, rhs) => match op {
            SpansetOp::Union => None,
            // The right side's spans are what these keep; the left may be empty.
            SpansetOp::NotChild
            | SpansetOp::NotParent
            | SpansetOp::NotDescendant
            | SpansetOp::NotAncestor
            | SpansetOp::NotSibling => prefilter(rhs),
            // Both sides must have spans: the one with more conditions narrows more.
            _ => match (prefilter(lhs), prefilter(rhs)) {
                (Some(a), Some(b)) => Some(if weight(&b) > weight(&a) { b } else { a }),
                (a, b) => a.or(b),
            },
        },
        SpansetExpr::Pipeline(stages) => match stages.first() {
            Some(Stage::Spans(first)) => prefilter(first),
            _ => None,
        },
        SpansetExpr::ScalarFilter(_) => None,
    }
}

/// The parts of spans that `fields` read: a source need not read the others.
pub fn parts<'a>(fields: impl IntoIterator<Item = &'a FieldExpr>) -> SpanParts {
    let mut parts = SpanParts::LEAST;
    for field in fields {
        field.visit_fields(&mut |f| match f {
            FieldExpr::Attribute(a) => match a.scope {
                Scope::Span => parts.span_attributes = true,
                Scope::Resource => parts.resource_attributes = true,
                Scope::Any => {
                    parts.span_attributes = true;
                    parts.resource_attributes = true;
                }
                Scope::Event => parts.events = true,
                Scope::Link => parts.links = true,
                Scope::Instrumentation => parts.scope_attributes = true,
            },
            FieldExpr::Intrinsic(Intrinsic::EventName | Intrinsic::EventTimeSinceStart) => {
                parts.events = true
            }
            FieldExpr::Intrinsic(Intrinsic::LinkTraceId | Intrinsic::LinkSpanId) => {
                parts.links = true
            }
            _ => {}
        });
    }
    parts
}

/// The parts of spans a spanset expression reads.
pub fn expr_parts(expr: &SpansetExpr) -> SpanParts {
    let mut fields = Vec::new();
    expr.visit_fields(&mut |f| fields.push(f.clone()));
    parts(&fields)
}

fn weight(query: &TraceQuery) -> usize {
    query.service.is_some() as usize
        + query.operation.is_some() as usize
        + query.attributes.len()
        + query.min_duration_ns.is_some() as usize
        + query.max_duration_ns.is_some() as usize
}

fn from_filter(filter: &FieldExpr) -> Option<TraceQuery> {
    let mut conjuncts = Vec::new();
    flatten_and(filter, &mut conjuncts);
    let mut query = TraceQuery::default();
    for c in conjuncts {
        let FieldExpr::Compare(op, lhs, rhs) = c else {
            continue;
        };
        let (FieldExpr::Intrinsic(_) | FieldExpr::Attribute(_), FieldExpr::Static(value)) =
            (&**lhs, &**rhs)
        else {
            continue;
        };
        match (&**lhs, op, value) {
            (
                FieldExpr::Attribute(Attribute {
                    scope: Scope::Resource,
                    parent: false,
                    name,
                }),
                CompareOp::Eq,
                Value::Str(s),
            ) if name == "service.name" => query.service = Some(s.clone()),
            (FieldExpr::Intrinsic(Intrinsic::Name), CompareOp::Eq, Value::Str(s)) => {
                query.operation = Some(s.clone())
            }
            (
                FieldExpr::Attribute(Attribute {
                    scope: Scope::Span | Scope::Resource | Scope::Any,
                    parent: false,
                    name,
                }),
                CompareOp::Eq,
                Value::Str(_) | Value::Int(_) | Value::Bool(_),
            ) => query.attributes.push((name.clone(), value.to_string())),
            (
                FieldExpr::Intrinsic(Intrinsic::Duration),
                CompareOp::Gt | CompareOp::Ge,
                Value::Duration(d),
            ) => {
                let d = (*d).max(0) as u64;
                query.min_duration_ns = Some(query.min_duration_ns.map_or(d, |m| m.max(d)));
            }
            (
                FieldExpr::Intrinsic(Intrinsic::Duration),
                CompareOp::Lt | CompareOp::Le,
                Value::Duration(d),
            ) => {
                let d = (*d).max(0) as u64;
                query.max_duration_ns = Some(query.max_duration_ns.map_or(d, |m| m.min(d)));
            }
            _ => {}
        }
    }
    (weight(&query) > 0).then_some(query)
}

fn flatten_and<'a>(expr: &'a FieldExpr, out: &mut Vec<&'a FieldExpr>) {
    match expr {
        FieldExpr::And(a, b) => {
            flatten_and(a, out);
            flatten_and(b, out);
        }
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traceql::parse;

    fn of(query: &str) -> Option<TraceQuery> {
        let Root::Spans(expr) = parse(query).unwrap().root else {
            panic!()
        };
        prefilter(&expr)
    }

    #[test]
    fn only_conditions_every_match_meets_are_pushed() {
        let q = of(r#"{ resource.service.name = "pay" && name = "charge" && span.http.status_code = 503 && duration > 1s && duration < 2s }"#).unwrap();
        assert_eq!(q.service.as_deref(), Some("pay"));
        assert_eq!(q.operation.as_deref(), Some("charge"));
        assert_eq!(
            q.attributes,
            vec![("http.status_code".to_string(), "503".to_string())]
        );
        assert_eq!(
            (q.min_duration_ns, q.max_duration_ns),
            (Some(1_000_000_000), Some(2_000_000_000))
        );
        // Under || nothing is required of every match.
        assert!(of(r#"{ name = "a" || name = "b" }"#).is_none());
        assert!(of(r#"{ name = "a" } || { name = "b" }"#).is_none());
        // `.service.name` may be a span attribute: pushed as an attribute, not as the service.
        let q = of(r#"{ .service.name = "pay" }"#).unwrap();
        assert_eq!((q.service, q.attributes.len()), (None, 1));
        // Not equal, regexes and floats are left to the evaluation.
        assert!(of(r#"{ name != "a" && name =~ "b.*" && .x = 1.5 }"#).is_none());
        // A negated structural operator requires only its right side.
        assert_eq!(
            of(r#"{ name = "a" } !> { name = "b" }"#)
                .unwrap()
                .operation
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            of(r#"{ name = "a" } > { name = "b" && .c = "d" }"#)
                .unwrap()
                .operation
                .as_deref(),
            Some("b")
        );
        assert!(of("{ } | count() > 1").is_none());
        assert_eq!(
            of(r#"{ name = "a" } | count() > 1"#)
                .unwrap()
                .operation
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn only_the_parts_a_query_reads_are_asked_for() {
        let parts = |q: &str| {
            let Root::Spans(expr) = parse(q).unwrap().root else {
                panic!()
            };
            expr_parts(&expr)
        };
        assert_eq!(parts("{ duration > 1s } | by(name)"), SpanParts::LEAST);
        let p = parts(r#"{ span.a = 1 } | avg(span.b) > 2"#);
        assert!(p.span_attributes && !p.resource_attributes && !p.events);
        let p = parts(r#"{ .a = 1 } >> { event:name = "x" } | select(link.y)"#);
        assert!(p.span_attributes && p.resource_attributes && p.events && p.links);
        assert!(!p.scope_attributes);
        assert!(parts("{ } | by(instrumentation.lib)").scope_attributes);
    }
}
