//! Search and trace assembly over a real store.

use std::sync::Arc;

use bytes::Bytes;
use osprey_model::fixtures::{self, request, string_attribute};
use osprey_model::otlp::any_value::Value;
use osprey_model::otlp::{AnyValue, ArrayValue, ExportTraceServiceRequest, KeyValue, Span};
use osprey_model::TraceId;
use osprey_query::{Query, TraceQuery};
use osprey_store::{Store, StoreOptions};
use prost::Message;

/// A span with an attribute naming it, times in milliseconds.
fn span(trace: u8, id: u8, parent: Option<u8>, name: &str, start_ms: u64, ms: u64) -> Span {
    Span {
        attributes: vec![string_attribute("span.n", &id.to_string())],
        ..fixtures::span(
            trace,
            id,
            parent,
            name,
            start_ms * 1_000_000,
            (start_ms + ms) * 1_000_000,
        )
    }
}

/// Where the spans are when the test asks.
#[derive(Debug, Clone, Copy)]
enum State {
    Head,
    Blocks,
    /// The first half of the batches in a block, the rest in the head.
    Split,
}

/// Runs `check` against the same batches in every state: the answers must not depend on where spans
/// live. Queries run from this (non-runtime) thread, as the API runs them from blocking threads.
fn for_each_state(batches: &[ExportTraceServiceRequest], check: impl Fn(&Query)) {
    for state in [State::Head, State::Blocks, State::Split] {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let query = runtime.block_on(async {
            let (store, _) = Store::open(dir.path(), StoreOptions::default())
                .await
                .unwrap();
            let split = match state {
                State::Head => batches.len(),
                State::Blocks => 0,
                State::Split => batches.len() / 2,
            };
            for (i, b) in batches.iter().enumerate() {
                if i == split {
                    store.flush().await.unwrap();
                }
                store
                    .append(b, Bytes::from(b.encode_to_vec()))
                    .await
                    .unwrap();
            }
            if matches!(state, State::Blocks) {
                store.flush().await.unwrap();
            }
            Query::new(Arc::new(store))
        });
        eprintln!("state: {state:?}");
        check(&query);
    }
}

#[test]
fn assembles_a_trace_from_several_records_without_duplicates() {
    let gateway = request(
        "gateway",
        vec![
            span(1, 1, None, "GET /", 0, 100),
            span(2, 9, None, "other", 0, 5),
        ],
    );
    let db = request("db", vec![span(1, 2, Some(1), "SELECT", 10, 80)]);
    // The gateway batch arrives twice, as after a client retry.
    for_each_state(&[gateway.clone(), db, gateway], |query| {
        let trace = query.trace(&TraceId([1; 16])).unwrap().unwrap();
        assert_eq!(trace.len(), 2, "one resource per service");
        let names: Vec<&str> = trace
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["GET /", "SELECT"]);
        assert!(query.trace(&TraceId([7; 16])).unwrap().is_none());
    });
}
#[test]
fn one_span_must_meet_every_condition() {
    let batches = [
        request("gateway", vec![span(1, 1, None, "GET /", 0, 100)]),
        request("db", vec![span(1, 2, Some(1), "SELECT", 10, 80)]),
        request("gateway", vec![span(2, 3, None, "GET /", 1000, 5)]),
    ];
    for_each_state(&batches, |query| {
        let search = |q: TraceQuery| {
            query
                .search(&TraceQuery { limit: 10, ..q })
                .unwrap()
                .into_iter()
                .map(|id| id.0[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(search(TraceQuery::default()), [2, 1], "newest first");
        let gateway = || TraceQuery {
            service: Some("gateway".into()),
            ..Default::default()
        };
        assert_eq!(
            search(TraceQuery {
                min_duration_ns: Some(50_000_000),
                ..gateway()
            }),
            [1]
        );
        // The db span is long enough but is not the gateway's.
        assert_eq!(
            search(TraceQuery {
                operation: Some("SELECT".into()),
                ..gateway()
            }),
            Vec::<u8>::new()
        );
        assert_eq!(
            search(TraceQuery {
                attributes: vec![
                    ("span.n".into(), "2".into()),
                    ("service.name".into(), "db".into())
                ],
                ..Default::default()
            }),
            [1]
        );
        assert_eq!(
            search(TraceQuery {
                attributes: vec![("span.n".into(), "2".into())],
                ..gateway()
            }),
            Vec::<u8>::new()
        );
        assert_eq!(
            search(TraceQuery {
                start_ns: Some(500_000_000),
                ..Default::default()
            }),
            [2]
        );
        let limited = TraceQuery {
            limit: 1,
            ..TraceQuery::default()
        };
        assert_eq!(query.search(&limited).unwrap().len(), 1);

        let summaries = query.summaries(&[TraceId([1; 16])]).unwrap();
        assert_eq!(summaries[0].root_service, "gateway");
        assert_eq!(summaries[0].span_count, 2);
        assert_eq!(summaries[0].end_ns, 100_000_000);
        assert_eq!(query.services(), ["db", "gateway"]);
    });
}
/// The traces (their ids' first byte, sorted) with a span holding `key` = `value`.
fn by_attribute(query: &Query, key: &str, value: &str) -> Vec<u8> {
    let mut found: Vec<u8> = query
        .search(&TraceQuery {
            attributes: vec![(key.into(), value.into())],
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|id| id.0[0])
        .collect();
    found.sort();
    found
}

/// An attribute with a value of any type.
fn attribute(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[test]
fn attribute_values_of_every_type_are_found_by_their_text() {
    let array = Value::ArrayValue(ArrayValue {
        values: vec![AnyValue {
            value: Some(Value::StringValue("blue".into())),
        }],
    });
    let mut typed = span(1, 1, None, "GET /", 0, 100);
    typed.attributes = vec![
        attribute("retries", Value::IntValue(3)),
        attribute("ratio", Value::DoubleValue(0.5)),
        attribute("cached", Value::BoolValue(true)),
        attribute("colour", array),
    ];
    // Strings only: a block of these is searched by keys and strings alone.
    let mut strings = span(2, 2, None, "GET /", 10, 100);
    strings.attributes = vec![
        string_attribute("retries", "3"),
        string_attribute("colour", "red"),
    ];
    let typed_batch = request("gateway", vec![typed]);
    let strings_batch = request("gateway", vec![strings]);
    for batches in [
        vec![typed_batch.clone(), strings_batch.clone()],
        vec![strings_batch],
    ] {
        for_each_state(&batches, |query| {
            let search = |key: &str, value: &str| by_attribute(query, key, value);
            let with_typed = batches.len() == 2;
            let typed: &[u8] = if with_typed { &[1] } else { &[] };
            let both: &[u8] = if with_typed { &[1, 2] } else { &[2] };
            assert_eq!(search("retries", "3"), both);
            assert_eq!(search("ratio", "0.5"), typed);
            assert_eq!(search("cached", "true"), typed);
            assert_eq!(search("colour", "blue"), typed, "an array by an element");
            assert_eq!(search("colour", "red"), [2]);
            assert_eq!(search("retries", "4"), Vec::<u8>::new());
        });
    }
}

#[test]
fn tags_derived_from_span_fields_are_searchable() {
    use osprey_model::otlp::{InstrumentationScope, Status};
    // A failed server span under a named scope, and a plain one beside it.
    let mut failed = span(1, 1, None, "POST /pay", 0, 100);
    failed.kind = 2;
    failed.status = Some(Status {
        code: 2,
        message: "card declined".into(),
    });
    failed.trace_state = "vendor=1".into();
    let mut batch = request("payments", vec![failed, span(2, 2, None, "GET /", 10, 5)]);
    batch.resource_spans[0].scope_spans[0].scope = Some(InstrumentationScope {
        name: "checkout".into(),
        version: "1.2".into(),
        ..Default::default()
    });
    for_each_state(&[batch], |query| {
        let search = |key: &str, value: &str| by_attribute(query, key, value);
        assert_eq!(search("error", "true"), [1], "the Jaeger UI's own example");
        assert_eq!(search("otel.status_code", "ERROR"), [1]);
        assert_eq!(search("otel.status_description", "card declined"), [1]);
        assert_eq!(search("span.kind", "server"), [1]);
        assert_eq!(search("w3c.tracestate", "vendor=1"), [1]);
        assert_eq!(search("otel.scope.name", "checkout"), [1, 2]);
        assert_eq!(search("otel.scope.version", "1.2").len(), 2);
        assert_eq!(search("error", "false"), Vec::<u8>::new());
        assert_eq!(search("span.kind", "client"), Vec::<u8>::new());
    });
}

#[test]
fn service_graph_and_red_come_from_the_index() {
    let mut call = span(1, 2, Some(1), "SELECT", 10, 80);
    call.kind = 2;
    call.status = Some(osprey_model::otlp::Status {
        code: 2,
        ..Default::default()
    });
    let mut root = span(1, 1, None, "GET /", 0, 100);
    root.kind = 2;
    let mut second = span(2, 3, None, "GET /", 1000, 5);
    second.kind = 2;
    let batches = [
        request("gateway", vec![root, second]),
        request("db", vec![call]),
    ];
    for_each_state(&batches, |query| {
        let graph = query.service_graph(0, u64::MAX).unwrap();
        assert_eq!(graph.nodes.len(), 2);
        assert_eq!(graph.edges.len(), 1);
        let edge = &graph.edges[0];
        assert_eq!(
            (edge.parent.as_str(), edge.child.as_str()),
            ("gateway", "db")
        );
        assert_eq!(
            (edge.calls, edge.errors, edge.latency.p50_ns),
            (1, 1, 80_000_000)
        );

        let red = query
            .red("gateway", None, 0, 2_000_000_000, 500_000_000)
            .unwrap();
        assert_eq!(red.series.len(), 4);
        let requests: Vec<u64> = red.series.iter().map(|p| p.requests).collect();
        assert_eq!(requests, [1, 0, 1, 0]);
        assert_eq!(red.operations[0].name, "GET /");
        assert_eq!(red.operations[0].requests, 2);
        assert_eq!(red.operations[0].latency.p99_ns, 100_000_000);
        assert_eq!(
            query
                .red("db", None, 0, 2_000_000_000, 500_000_000)
                .unwrap()
                .series[0]
                .errors,
            1
        );
    });
}

#[test]
fn newest_by_trace_start_wherever_the_spans_are() {
    // Trace 5 starts later but arrives first; trace 6 starts earlier and arrives last. The newest trace
    // is 5 whichever source holds them.
    let batches = [
        request("gateway", vec![span(5, 1, None, "GET /", 2000, 10)]),
        request("gateway", vec![span(7, 1, None, "GET /", 1000, 10)]),
        request("gateway", vec![span(6, 1, None, "GET /", 500, 10)]),
    ];
    for_each_state(&batches, |query| {
        let newest = |limit| {
            query
                .search(&TraceQuery {
                    limit,
                    ..TraceQuery::default()
                })
                .unwrap()
                .into_iter()
                .map(|id| id.0[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(newest(1), [5]);
        assert_eq!(newest(2), [5, 7]);
        assert_eq!(newest(10), [5, 7, 6]);
    });
}

/// The newest `limit` traces a TraceQL search matches, at any time.
fn traceql(query: &Query, q: &str, limit: usize) -> Vec<osprey_query::TraceMatch> {
    use osprey_query::traceql::{parse, Root};
    let Root::Spans(expr) = parse(q).unwrap().root else {
        panic!("{q} is not a search")
    };
    query
        .traceql_search(&osprey_query::TraceqlSearch {
            expr,
            start_ns: 0,
            end_ns: u64::MAX,
            limit,
            spans_per_spanset: 3,
        })
        .unwrap()
        .0
}

#[test]
fn traceql_evaluates_whole_traces_wherever_their_spans_are() {
    use osprey_query::traceql::Value;
    // Trace 3's root is in the first half of the batches, its child in the second: in the split
    // state one is in a block and the other in the head.
    let batches = [
        request(
            "gateway",
            vec![
                span(1, 1, None, "GET /", 0, 100),
                span(3, 5, None, "POST /", 2000, 300),
            ],
        ),
        request(
            "db",
            vec![{
                use osprey_model::otlp::{any_value::Value as Any, AnyValue, ArrayValue, KeyValue};
                let mut select = span(1, 2, Some(1), "SELECT", 10, 80);
                let text = |s: &str| AnyValue {
                    value: Some(Any::StringValue(s.into())),
                };
                select.attributes.push(KeyValue {
                    key: "tags".into(),
                    value: Some(AnyValue {
                        value: Some(Any::ArrayValue(ArrayValue {
                            values: vec![text("a"), text("b")],
                        })),
                    }),
                    ..Default::default()
                });
                select
            }],
        ),
        request("gateway", vec![span(2, 3, None, "GET /", 1000, 5)]),
        request(
            "db",
            vec![{
                let mut insert = span(3, 6, Some(5), "INSERT", 2010, 200);
                insert.events = vec![osprey_model::otlp::span::Event {
                    name: "retry".into(),
                    time_unix_nano: 2_050_000_000,
                    attributes: vec![string_attribute("attempt", "2")],
                    ..Default::default()
                }];
                insert
            }],
        ),
    ];
    for_each_state(&batches, |query| {
        let search = |q: &str, limit: usize| traceql(query, q, limit);
        let ids = |q: &str| -> Vec<u8> { search(q, 20).iter().map(|m| m.trace_id.0[0]).collect() };
        assert_eq!(
            ids(r#"{ resource.service.name = "gateway" } > { resource.service.name = "db" }"#),
            [3, 1],
            "newest first, the split trace too"
        );
        assert_eq!(ids(r#"{ name = "GET /" }"#), [2, 1]);
        assert_eq!(ids("{ duration > 50ms } | count() > 1"), [3, 1]);
        assert_eq!(ids(r#"{ span.span.n = "6" }"#), [3]);
        // An array attribute matches when an element does (also through the sources' prefilter),
        // and `!=` when none is equal.
        assert_eq!(ids(r#"{ span.tags = "b" }"#), [1]);
        assert_eq!(ids(r#"{ span.tags != "a" }"#), Vec::<u8>::new());
        assert_eq!(ids(r#"{ span.tags != "c" }"#), [1]);
        // Events are read (from blocks too) when the query names them.
        assert_eq!(
            ids(r#"{ event:name = "retry" && event.attempt = "2" }"#),
            [3]
        );
        assert_eq!(ids(r#"{ event.attempt = "3" }"#), Vec::<u8>::new());
        assert_eq!(
            ids(r#"{ span.span.n = "6" && name = "SELECT" }"#),
            Vec::<u8>::new()
        );
        assert_eq!(ids("{ }"), [3, 2, 1]);
        assert_eq!(search("{ }", 1).len(), 1);

        let found = search(r#"{ span.span.n = "2" }"#, 20);
        let m = &found[0];
        assert_eq!(
            (m.root_service.as_str(), m.root_name.as_str()),
            ("gateway", "GET /")
        );
        assert_eq!((m.start_ns, m.duration_ns), (0, 100_000_000));
        assert_eq!(m.service_stats["db"], (1, 0));
        let set = &m.spansets[0];
        assert_eq!(set.matched, 1);
        assert_eq!(set.spans[0].name, "SELECT");
        assert_eq!(
            set.spans[0].attributes,
            vec![("span.n".to_string(), Value::Str("2".into()))]
        );
    });
}

#[test]
fn traceql_metrics_count_spans_per_interval() {
    use osprey_query::traceql::{parse, Root, Value};
    use osprey_query::{MetricsRequest, Series};
    // Spans start at 0–3.5 s (times in ms): gateway at 0.5, 1.5, 2.5 s; db at 0.6 (80 ms),
    // 1.6 (200 ms) and 2.6 s (900 ms).
    let batches = [
        request(
            "gateway",
            vec![
                span(1, 1, None, "GET /", 500, 1000),
                span(2, 3, None, "GET /", 1500, 1000),
                span(3, 5, None, "GET /", 2500, 1000),
            ],
        ),
        request(
            "db",
            vec![
                span(1, 2, Some(1), "SELECT", 600, 80),
                span(2, 4, Some(3), "SELECT", 1600, 200),
                span(3, 6, Some(5), "INSERT", 2600, 900),
            ],
        ),
    ];
    for_each_state(&batches, |query| {
        let run = |q: &str, instant: bool| -> Vec<Series> {
            let Root::Metrics(query_) = parse(q).unwrap().root else {
                panic!("{q}")
            };
            query
                .traceql_metrics(
                    &MetricsRequest {
                        query: query_,
                        start_ns: 0,
                        end_ns: 3_000_000_000,
                        step_ns: 1_000_000_000,
                        instant,
                        exemplars: 2,
                    }
                    .aligned(),
                )
                .unwrap()
        };
        let label = |s: &Series, key: &str| {
            s.labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let rate = run("{ } | rate()", false);
        assert_eq!(rate.len(), 1);
        assert_eq!(label(&rate[0], "__name__"), Some(Value::Str("rate".into())));
        assert_eq!(rate[0].values, [2.0, 2.0, 2.0]);
        // Exemplars: at most two a series here, one an interval, standing at the rate; span
        // references name the trace, whole traces the span too.
        assert_eq!(rate[0].exemplars.len(), 2);
        assert!(rate[0].exemplars.iter().all(|e| e.value == 2.0));
        assert!(rate[0].exemplars[0].timestamp_ns <= rate[0].exemplars[1].timestamp_ns);
        assert!(rate[0].exemplars[0].span_id.is_none());
        let exemplar = &run("{ } && { } | rate()", false)[0].exemplars[0];
        assert!(exemplar.span_id.is_some());
        assert!([1, 2, 3].contains(&exemplar.trace_id.0[0]), "{exemplar:?}");

        let by_service = run("{ } | count_over_time() by (resource.service.name)", false);
        assert_eq!(by_service.len(), 2);
        assert_eq!(
            label(&by_service[0], "resource.service.name"),
            Some(Value::Str("db".into()))
        );
        assert_eq!(by_service[0].values, [1.0, 1.0, 1.0]);

        let slowest = run(
            r#"{ resource.service.name = "db" } | max_over_time(duration)"#,
            false,
        );
        assert_eq!(slowest[0].values, [0.08, 0.2, 0.9]);
        assert!(
            slowest[0]
                .exemplars
                .iter()
                .all(|e| [0.08, 0.2, 0.9].contains(&e.value)),
            "each exemplar has its span's own value"
        );
        let instant = run(
            r#"{ resource.service.name = "db" } | avg_over_time(duration)"#,
            true,
        );
        assert_eq!(instant[0].values.len(), 1);
        assert!((instant[0].values[0] - (0.08 + 0.2 + 0.9) / 3.0).abs() < 1e-9);

        // Power-of-two buckets of durations, in seconds: 80 ms falls in (2^26, 2^27] ns.
        let histogram = run(
            r#"{ name = "SELECT" } | histogram_over_time(duration)"#,
            false,
        );
        let buckets: Vec<f64> = histogram
            .iter()
            .map(|s| match label(s, "__bucket") {
                Some(Value::Float(b)) => b,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(
            buckets.iter().any(|b| (b - 0.134217728).abs() < 1e-12),
            "{buckets:?}"
        );
        let p = run(
            r#"{ name = "SELECT" } | quantile_over_time(duration, .5)"#,
            true,
        );
        assert_eq!(label(&p[0], "p"), Some(Value::Float(0.5)));
        assert!(
            p[0].values[0] > 0.06 && p[0].values[0] <= 0.134217728,
            "{p:?}"
        );

        let top = run("{ } | count_over_time() by (name) | topk(1)", true);
        assert_eq!(top.len(), 1);
        assert_eq!(label(&top[0], "name"), Some(Value::Str("GET /".into())));
        assert_eq!(run("{ } | count_over_time() by (name) > 2", true).len(), 1);

        // Queries combined: the db's share of spans as a percentage; each service's share of
        // the total (one unlabelled side applies to every series of the other); a difference
        // of two grouped queries, for the labels both have.
        let share = run(
            r#"({ resource.service.name = "db" } | rate()) / ({ } | rate()) * 100"#,
            false,
        );
        assert_eq!(share.len(), 1);
        assert_eq!(share[0].values, [50.0, 50.0, 50.0]);
        assert_eq!(
            label(&share[0], "__name__"),
            Some(Value::Str("(rate / rate)".into()))
        );
        let per_service = run(
            "({ } | count_over_time() by (resource.service.name)) / ({ } | count_over_time())",
            true,
        );
        assert_eq!(per_service.len(), 2);
        assert!(
            per_service.iter().all(|s| s.values == [0.5]),
            "{per_service:?}"
        );
        assert_eq!(
            label(&per_service[1], "resource.service.name"),
            Some(Value::Str("gateway".into()))
        );
        assert_eq!(label(&per_service[1], "__name__"), None);
        let difference = run(
            r#"({ name = "SELECT" } | count_over_time() by (name)) - ({ duration > 100ms } | count_over_time() by (name))"#,
            true,
        );
        assert_eq!(difference.len(), 1);
        assert_eq!(difference[0].values, [1.0]);

        // Queries span references answer (one filter on service, name, kind or duration) are
        // counted from them; the same through whole traces (a spanset operation) agrees.
        for (simple, through_traces) in [
            ("{ } | rate()", "{ } && { } | rate()"),
            (
                r#"{ resource.service.name = "db" } | max_over_time(duration)"#,
                r#"{ resource.service.name = "db" } && { resource.service.name = "db" } | max_over_time(duration)"#,
            ),
            (
                "{ duration > 100ms } | count_over_time() by (name, kind)",
                "{ duration > 100ms } && { duration > 100ms } | count_over_time() by (name, kind)",
            ),
            (
                r#"{ name =~ "GET.*" } | quantile_over_time(duration, .5) by (resource.service.name)"#,
                r#"{ name =~ "GET.*" } && { name =~ "GET.*" } | quantile_over_time(duration, .5) by (resource.service.name)"#,
            ),
        ] {
            let values = |series: Vec<Series>| -> Vec<_> {
                series.into_iter().map(|s| (s.labels, s.values)).collect()
            };
            assert_eq!(
                values(run(simple, false)),
                values(run(through_traces, false)),
                "{simple}"
            );
        }

        let compare = run(r#"{ } | compare({ name = "INSERT" })"#, true);
        let selected: Vec<&Series> = compare
            .iter()
            .filter(|s| label(s, "__meta_type") == Some(Value::Str("selection".into())))
            .collect();
        assert!(selected
            .iter()
            .any(|s| label(s, "name") == Some(Value::Str("INSERT".into())) && s.values == [1.0]));
        assert!(compare.iter().any(|s| {
            label(s, "__meta_type") == Some(Value::Str("baseline_total".into()))
                && label(s, "resource.service.name") == Some(Value::Nil)
                && s.values == [5.0]
        }));
    });
}

#[test]
fn traceql_reads_candidates_newest_first_across_pages() {
    use osprey_query::traceql::{parse, Root};
    // 3,000 traces (6,000 rows: several pages of the trace-id column), trace n starting at n ms;
    // every fifth has a span named "wanted".
    let batches: Vec<_> = (0..30u64)
        .map(|batch| {
            let spans = (0..100u64)
                .flat_map(|i| {
                    let n = batch * 100 + i;
                    let trace = TraceId(u128::to_be_bytes(
                        0x9e37_79b9_7f4a_7c15_u128.wrapping_mul(n as u128 + 1),
                    ));
                    let name = if n % 5 == 0 { "wanted" } else { "other" };
                    let root =
                        fixtures::span(1, 1, None, "root", n * 1_000_000, n * 1_000_000 + 500);
                    let child = fixtures::span(
                        1,
                        2,
                        Some(1),
                        name,
                        n * 1_000_000 + 10,
                        n * 1_000_000 + 400,
                    );
                    [root, child].map(|mut s| {
                        s.trace_id = trace.0.to_vec();
                        s
                    })
                })
                .collect();
            request("svc", spans)
        })
        .collect();
    for_each_state(&batches, |query| {
        let starts = |q: &str, limit: usize| -> Vec<u64> {
            traceql(query, q, limit)
                .iter()
                .map(|m| m.start_ns / 1_000_000)
                .collect()
        };
        let all = starts(r#"{ name = "wanted" }"#, 10_000);
        assert_eq!(all.len(), 600);
        assert_eq!(all[..3], [2995, 2990, 2985]);
        assert_eq!(
            starts(r#"{ name = "wanted" }"#, 5),
            [2995, 2990, 2985, 2980, 2975]
        );
        assert_eq!(
            starts(r#"{ name = "wanted" } && { name = "root" }"#, 2),
            [2995, 2990]
        );

        // A metrics query that would make more series than the budget is refused, not grown.
        let Root::Metrics(by_trace) = parse("{ } | count_over_time() by (trace:id)").unwrap().root
        else {
            panic!()
        };
        let refused = query
            .traceql_metrics(&osprey_query::MetricsRequest {
                query: by_trace,
                start_ns: 0,
                end_ns: 4_000_000_000,
                step_ns: 1_000_000_000,
                instant: false,
                exemplars: 0,
            })
            .unwrap_err();
        assert!(matches!(refused, osprey_query::QueryError::Unanswerable(_)));
        assert!(
            refused.to_string().contains("more than 1000 series"),
            "{refused}"
        );
    });
}

#[test]
fn traceql_limit_keeps_the_newest_traces_when_one_is_split() {
    // Trace 1 starts at 10 s (its root in the first batch) and has a span "x" at 100 s (in the
    // second); trace 2 is all in the second batch, its "x" at 50 s. Split: a block, then the head,
    // which hands out trace 1's piece (100 s) before trace 2 (50 s).
    let batches = [
        request("a", vec![span(1, 1, None, "root", 10_000, 100_000)]),
        request(
            "a",
            vec![
                span(1, 2, Some(1), "x", 100_000, 10),
                span(2, 3, None, "x", 50_000, 10),
            ],
        ),
    ];
    for_each_state(&batches, |query| {
        let found = traceql(query, r#"{ name = "x" }"#, 1);
        assert_eq!(
            found.iter().map(|m| m.trace_id.0[0]).collect::<Vec<_>>(),
            [2],
            "trace 2 started last"
        );
    });
}

#[test]
fn services_overview_counts_requests_over_the_stretch_that_holds_spans() {
    // Gateway: three server spans (0, 1 and 2 s, the last an error) and an internal one; db: two
    // spans of no particular kind, all its requests then.
    let server = |trace, id, start_ms, error: bool| {
        let mut s = span(trace, id, None, "GET /", start_ms, 100);
        s.kind = 2;
        if error {
            s.status = Some(osprey_model::otlp::Status {
                code: 2,
                ..Default::default()
            });
        }
        s
    };
    let mut internal = span(1, 9, Some(1), "render", 50, 10);
    internal.kind = 1;
    let batches = [
        request(
            "gateway",
            vec![
                server(1, 1, 0, false),
                server(2, 2, 1000, false),
                server(3, 3, 2000, true),
                internal,
            ],
        ),
        request(
            "db",
            vec![
                span(1, 4, Some(1), "SELECT", 10, 80),
                span(2, 5, Some(2), "SELECT", 1010, 20),
            ],
        ),
    ];
    for_each_state(&batches, |query| {
        let overview = query.services_overview(0, 3_600_000_000_000, 60).unwrap();
        assert_eq!(overview.data_range, (0, 2_000_000_000));
        assert_eq!(osprey_query::rate_seconds(overview.data_range), 2.0);
        let gateway = &overview.services[1];
        assert_eq!(
            (gateway.name.as_str(), gateway.requests, gateway.errors),
            ("gateway", 3, 1)
        );
        assert_eq!(gateway.requests_per_step[0], 3, "one minute a step");
        let db = &overview.services[0];
        assert_eq!((db.name.as_str(), db.requests), ("db", 2));
        assert_eq!(db.latency.p99_ns, 80_000_000);
        let graph = query.service_graph(0, 3_600_000_000_000).unwrap();
        assert_eq!(graph.data_range, (0, 2_000_000_000));
    });
}
