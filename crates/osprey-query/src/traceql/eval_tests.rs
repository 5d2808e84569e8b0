//! The evaluator over one checkout trace:
//!
//! ```text
//! gateway  GET /checkout (1)              0 ms – 2000 ms, server
//! ├─ auth  check (2)                     10 –   60, client→ error, event "exception"
//! ├─ orders  create (3)                  70 – 1950, internal, link to another trace
//! │  └─ payments  charge (4)            100 – 1900, client, http.status_code 503
//! │     └─ payments  SELECT payments (5) 110 – 1850, client, db.system postgresql
//! └─ gateway  render (6)               1960 – 1990, internal
//! ```

use osprey_model::fixtures::{service_spans, span, string_attribute};
use osprey_model::otlp::any_value::Value as Any;
use osprey_model::otlp::span::{Event, Link};
use osprey_model::otlp::{AnyValue, ArrayValue, KeyValue, ResourceSpans, Status};

use super::eval::evaluate;
use super::trace::TraceView;
use super::*;

const MS: u64 = 1_000_000;

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Any::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn checkout() -> Vec<ResourceSpans> {
    let mut root = span(9, 1, None, "GET /checkout", 0, 2000 * MS);
    root.kind = 2;
    root.attributes = vec![
        string_attribute("http.route", "/checkout"),
        KeyValue {
            key: "tags".into(),
            value: Some(AnyValue {
                value: Some(Any::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Any::StringValue("a".into())),
                        },
                        AnyValue {
                            value: Some(Any::StringValue("b".into())),
                        },
                    ],
                })),
            }),
            ..Default::default()
        },
    ];
    let mut render = span(9, 6, Some(1), "render", 1960 * MS, 1990 * MS);
    render.kind = 1;
    let mut auth = span(9, 2, Some(1), "check", 10 * MS, 60 * MS);
    auth.kind = 3;
    auth.status = Some(Status {
        code: 2,
        message: "denied".into(),
    });
    auth.events = vec![Event {
        name: "exception".into(),
        time_unix_nano: 50 * MS,
        attributes: vec![string_attribute("exception.type", "Timeout")],
        ..Default::default()
    }];
    let mut orders = span(9, 3, Some(1), "create", 70 * MS, 1950 * MS);
    orders.kind = 1;
    orders.links = vec![Link {
        trace_id: vec![7; 16],
        span_id: vec![7; 8],
        attributes: vec![string_attribute("link.kind", "follows")],
        ..Default::default()
    }];
    let mut charge = span(9, 4, Some(3), "charge", 100 * MS, 1900 * MS);
    charge.kind = 3;
    charge.attributes = vec![int("http.status_code", 503)];
    let mut select = span(9, 5, Some(4), "SELECT payments", 110 * MS, 1850 * MS);
    select.kind = 3;
    select.attributes = vec![string_attribute("db.system", "postgresql")];
    let mut payments = service_spans("payments", vec![charge, select]);
    payments
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(string_attribute("deployment.environment", "prod"));
    vec![
        service_spans("gateway", vec![root, render]),
        service_spans("auth", vec![auth]),
        service_spans("orders", vec![orders]),
        payments,
    ]
}

/// The span names each spanset of the answer holds.
fn names(query: &str) -> Vec<Vec<String>> {
    let trace = checkout();
    let view = TraceView::new(&trace);
    let Root::Spans(expr) = parse(query).unwrap_or_else(|e| panic!("{query}: {e}")).root else {
        panic!("{query}: not a spanset query")
    };
    evaluate(&expr, &view)
        .into_iter()
        .map(|set| {
            set.spans
                .iter()
                .map(|&i| view.spans[i].span.name.clone())
                .collect()
        })
        .collect()
}

/// The span names of the answer, all spansets together.
fn matched(query: &str) -> Vec<String> {
    let mut all: Vec<String> = names(query).into_iter().flatten().collect();
    all.sort();
    all.dedup();
    all
}

fn set(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn filters_on_attributes_and_intrinsics() {
    assert_eq!(
        matched(r#"{ resource.service.name = "payments" }"#),
        set(&["SELECT payments", "charge"])
    );
    assert_eq!(
        matched("{ span.http.status_code >= 500 }"),
        set(&["charge"])
    );
    assert_eq!(matched("{ .http.status_code = 503 }"), set(&["charge"]));
    // The unscoped form falls back to the resource.
    assert_eq!(
        matched(r#"{ .deployment.environment = "prod" }"#),
        set(&["SELECT payments", "charge"])
    );
    // A string never equals a number.
    assert_eq!(matched(r#"{ span.http.status_code = "503" }"#), set(&[]));
    assert_eq!(matched("{ status = error }"), set(&["check"]));
    assert_eq!(matched(r#"{ statusMessage = "denied" }"#), set(&["check"]));
    assert_eq!(matched("{ kind = server }"), set(&["GET /checkout"]));
    assert_eq!(
        matched("{ span:kind = internal }"),
        set(&["create", "render"])
    );
    assert_eq!(
        matched("{ duration > 1s }"),
        set(&["GET /checkout", "SELECT payments", "charge", "create"])
    );
    assert_eq!(matched("{ duration < 40ms }"), set(&["render"]));
    assert_eq!(matched("{ span:childCount = 3 }"), set(&["GET /checkout"]));
    assert_eq!(matched("{ span:parentID = nil }"), set(&["GET /checkout"]));
    assert_eq!(
        matched(r#"{ span:id = "0404040404040404" }"#),
        set(&["charge"])
    );
    assert_eq!(
        matched(r#"{ parent.resource.service.name = "orders" }"#),
        set(&["charge"])
    );
    // Arrays match when any element does.
    assert_eq!(matched(r#"{ span.tags = "b" }"#), set(&["GET /checkout"]));
    assert_eq!(
        matched("{ span.db.system != nil }"),
        set(&["SELECT payments"])
    );
    assert_eq!(
        matched("{ span.db.system = nil && kind = client }"),
        set(&["charge", "check"])
    );
    assert_eq!(
        matched("{ duration * 2 > 3s }"),
        set(&["GET /checkout", "SELECT payments", "charge", "create"])
    );
}

#[test]
fn regexes_are_fully_anchored() {
    assert_eq!(matched(r#"{ name =~ "SELECT" }"#), set(&[]));
    assert_eq!(
        matched(r#"{ name =~ "SELECT.*" }"#),
        set(&["SELECT payments"])
    );
    assert_eq!(
        matched(r#"{ name =~ "c.*|r.*" }"#),
        set(&["charge", "check", "create", "render"])
    );
    assert_eq!(
        matched(r#"{ resource.service.name !~ "pay.*|gate.*" }"#),
        set(&["check", "create"])
    );
}

#[test]
fn trace_level_events_links_and_instrumentation() {
    assert_eq!(
        matched(r#"{ trace:rootService = "gateway" && trace:duration > 1s && kind = server }"#),
        set(&["GET /checkout"])
    );
    assert_eq!(matched(r#"{ rootName = "GET /other" }"#), set(&[]));
    assert_eq!(matched(r#"{ event:name = "exception" }"#), set(&["check"]));
    assert_eq!(
        matched(r#"{ event:name = "exception" && event.exception.type = "Timeout" }"#),
        set(&["check"])
    );
    assert_eq!(matched("{ event:timeSinceStart > 30ms }"), set(&["check"]));
    assert_eq!(matched("{ event:timeSinceStart > 50ms }"), set(&[]));
    assert_eq!(
        matched(
            r#"{ link:traceID = "07070707070707070707070707070707" && link.link.kind = "follows" }"#
        ),
        set(&["create"])
    );
    assert_eq!(
        matched(r#"{ trace:id = "09090909090909090909090909090909" && name = "render" }"#),
        set(&["render"])
    );
}

#[test]
fn spanset_operators_relate_spans_through_parents() {
    let gateway = r#"{ resource.service.name = "gateway" && kind = server }"#;
    assert_eq!(
        matched(&format!("{gateway} > {{ }}")),
        set(&["check", "create", "render"])
    );
    assert_eq!(
        matched(&format!("{gateway} >> {{ kind = client }}")),
        set(&["SELECT payments", "charge", "check"])
    );
    assert_eq!(matched(r#"{ name = "charge" } < { }"#), set(&["create"]));
    assert_eq!(
        matched(r#"{ name = "SELECT payments" } << { }"#),
        set(&["GET /checkout", "charge", "create"])
    );
    assert_eq!(
        matched(r#"{ name = "check" } ~ { }"#),
        set(&["create", "render"])
    );
    // Negated: spans of the right side with no such relation.
    assert_eq!(
        matched(&format!("{gateway} !> {{ kind = client }}")),
        set(&["SELECT payments", "charge"])
    );
    assert_eq!(
        matched(
            r#"{ resource.service.name = "orders" } !>> { resource.service.name = "payments" }"#
        ),
        set(&[])
    );
    // Union forms keep both sides of each related pair.
    assert_eq!(
        matched(r#"{ name = "create" } &> { }"#),
        set(&["charge", "create"])
    );
    assert_eq!(
        matched(r#"{ name = "charge" } &< { }"#),
        set(&["charge", "create"])
    );
    // && needs both sides, || either.
    assert_eq!(
        matched(r#"{ name = "check" } && { name = "charge" }"#),
        set(&["charge", "check"])
    );
    assert_eq!(
        matched(r#"{ name = "check" } && { name = "nope" }"#),
        set(&[])
    );
    assert_eq!(
        matched(r#"{ name = "check" } || { name = "nope" }"#),
        set(&["check"])
    );
}

#[test]
fn pipelines_group_count_and_aggregate() {
    assert_eq!(names("{ } | count() > 5").len(), 1);
    assert!(names("{ } | count() > 6").is_empty());
    assert_eq!(
        matched("{ kind = client } | avg(duration) > 1s"),
        set(&["SELECT payments", "charge", "check"])
    );
    assert!(matched("{ kind = client } | min(duration) > 100ms").is_empty());
    let by_service = names("{ } | by(resource.service.name) | count() > 1");
    assert_eq!(
        by_service,
        vec![
            vec!["GET /checkout".to_string(), "render".to_string()],
            vec!["charge".to_string(), "SELECT payments".to_string()]
        ]
    );
    assert_eq!(
        names("{ } | by(resource.service.name) | coalesce()").len(),
        1
    );
    assert_eq!(
        matched("{ } | by(resource.service.name) | max(duration) - min(duration) > 1s"),
        set(&["GET /checkout", "render"])
    );
    // A pipeline inside a spanset operation.
    assert_eq!(
        matched(r#"({ kind = client } | count() > 2) && { name = "render" }"#),
        set(&["SELECT payments", "charge", "check", "render"])
    );
    assert_eq!(matched("({ kind = client } | count()) > 2").len(), 6);
    assert_eq!(matched("{ } | select(span.http.route)").len(), 6);
}
