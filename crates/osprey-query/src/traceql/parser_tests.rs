use super::*;

fn spans(query: &str) -> SpansetExpr {
    match parse(query).unwrap_or_else(|e| panic!("{query}: {e}")).root {
        Root::Spans(s) => s,
        Root::Metrics(_) => panic!("{query} parsed as metrics"),
    }
}

fn error(query: &str) -> ParseError {
    match parse(query) {
        Ok(q) => panic!("{query} parsed: {q:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_documented_forms_parse() {
    for query in [
        "{}",
        "{ }",
        "{ true }",
        r#"{ span.http.method = "GET" }"#,
        r#"{ resource.service.name = "payments" && span.http.status_code >= 500 }"#,
        r#"{ .http.url =~ "/api/.*" || .db.system != "mysql" }"#,
        r#"{ span."attribute with spaces" = "x" }"#,
        r#"{ resource.k8s.pod-name = "p-1" }"#,
        "{ duration > 1.5s && duration <= 2h30m }",
        "{ span:duration > 100ms } && { trace:duration > 2s }",
        "{ status = error } || { kind = client }",
        "{ span:status != ok && span:kind = server }",
        "{ statusMessage = \"timeout\" }",
        "{ name = \"GET /\" } > { }",
        "{ } >> { status = error }",
        "{ } < { } << { } ~ { }",
        "{ } !> { } !>> { } !< { } !<< { } !~ { }",
        "{ } &> { } &>> { } &< { } &<< { } &~ { }",
        "({ } | count() > 2) && { status = error }",
        "{ } | count() > 2",
        "{ } | avg(duration) > 1s | by(resource.service.name)",
        "{ } | by(span.http.route) | count() >= 3 | coalesce()",
        "{ } | select(span.http.method, resource.service.name, span:duration)",
        "{ } | max(duration) - min(duration) > 100ms",
        "({ } | count()) > 3",
        "{ event:name = \"exception\" && event.exception.type = \"Timeout\" }",
        "{ link:traceID = \"0102\" || link:spanID != nil }",
        "{ instrumentation:name = \"io.opentelemetry\" && instrumentation.version = \"1\" }",
        "{ trace:rootService = \"gateway\" && trace:rootName = \"GET /\" && trace:id = \"ab\" }",
        "{ rootServiceName = \"gateway\" && rootName = \"GET /\" && traceDuration > 1s }",
        "{ span:id = \"01\" && span:parentID = nil && span:childCount = 2 }",
        "{ parent.resource.service.name = \"gateway\" && parent.span.x = 1 && parent.y = 2 }",
        "{ .a + 1 * 2 ^ 3 > -4 % 5 }",
        "{ !(.a = 1) && -.b < 0 }",
        "{ .n = nil } && { nil != .m }",
        "{ .f = 1.5 && .b = true && .c = false && .i = minInt }",
        "{ event:timeSinceStart > 10ms }",
        "{ nestedSetLeft > 1 && nestedSetRight < 10 && nestedSetParent = -1 }",
        "{ } with (sample = true)",
        "{ .s = `raw \\string` && .t = \"esc\\\"aped\\n\" }",
    ] {
        parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    }
}

#[test]
fn metrics_functions_parse() {
    for query in [
        "{ } | rate()",
        "{ status = error } | rate() by (resource.service.name)",
        "{ } | count_over_time() by (span.http.route, resource.service.name)",
        "{ } | min_over_time(duration)",
        "{ } | max_over_time(span:duration) by (name)",
        "{ } | sum_over_time(span.bytes)",
        "{ } | avg_over_time(duration)",
        "{ } | quantile_over_time(duration, .5, 0.9, 0.99) by (resource.service.name)",
        "{ } | histogram_over_time(duration)",
        "{ } | compare({ status = error })",
        "{ } | compare({ status = error }, 5, 1700000000, 1700003600)",
        "{ } | rate() by (name) | topk(3)",
        "{ } | rate() | bottomk(2)",
        "{ } | rate() > 10",
    ] {
        match parse(query) {
            Ok(Query {
                root: Root::Metrics(_),
                ..
            }) => {}
            other => panic!("{query}: {other:?}"),
        }
    }
}

#[test]
fn metrics_queries_combine_by_arithmetic() {
    let metrics = |query: &str| match parse(query) {
        Ok(Query {
            root: Root::Metrics(m),
            ..
        }) => m,
        other => panic!("{query}: {other:?}"),
    };
    // Two queries, each in parentheses, and stages after the combination.
    let MetricsExpr::Math {
        op: ArithmeticOp::Div,
        lhs,
        rhs,
        second_stage,
    } = metrics("({ status = error } | rate() by (name)) / ({ } | rate()) | topk(5)")
    else {
        panic!()
    };
    assert!(matches!(*lhs, MetricsExpr::Query(ref q) if q.by.len() == 1));
    assert!(matches!(*rhs, MetricsExpr::Query(ref q) if q.by.is_empty()));
    assert!(matches!(second_stage[..], [SecondStage::TopK(5)]));
    // A number on either side applies to the query's series; `*` binds tighter than `+`.
    let MetricsExpr::Query(q) = metrics("({ } | rate()) * 60") else {
        panic!()
    };
    assert!(matches!(
        q.second_stage[..],
        [SecondStage::Scalar { op: ArithmeticOp::Mul, value, number_first: false }] if value == 60.0
    ));
    let MetricsExpr::Math { op, lhs, .. } =
        metrics("100 * ({ status = error } | count_over_time()) / ({ } | count_over_time())")
    else {
        panic!()
    };
    assert!(matches!(op, ArithmeticOp::Div));
    assert!(matches!(*lhs, MetricsExpr::Query(ref q)
        if matches!(q.second_stage[..], [SecondStage::Scalar { number_first: true, .. }])));
    let MetricsExpr::Math { op, rhs, .. } = metrics("({ } | rate()) + ({ } | rate()) * -2") else {
        panic!()
    };
    assert!(matches!(op, ArithmeticOp::Add));
    assert!(matches!(*rhs, MetricsExpr::Query(ref q)
        if matches!(q.second_stage[..], [SecondStage::Scalar { value, .. }] if value == -2.0)));
    // A filter after combined queries.
    let MetricsExpr::Math { second_stage, .. } =
        metrics("({ status = error } | rate()) / ({ } | rate()) > 0.1")
    else {
        panic!()
    };
    assert!(matches!(
        second_stage[..],
        [SecondStage::Filter(CompareOp::Gt, _)]
    ));
    // A search comparing a pipeline's aggregate stays a search.
    spans("({ } | count()) > 3");

    // Constants are worked out; a duration in a filter is seconds, as the series are.
    let MetricsExpr::Query(q) = metrics("(60 * 60) * ({ } | rate())") else {
        panic!()
    };
    assert!(matches!(q.second_stage[..], [SecondStage::Scalar { value, .. }] if value == 3600.0));
    let MetricsExpr::Query(q) = metrics("{ } | quantile_over_time(duration, .99) > 500ms") else {
        panic!()
    };
    assert!(matches!(q.second_stage[..], [SecondStage::Filter(_, t)] if t == 0.5));
    let MetricsExpr::Math { second_stage, .. } =
        metrics("({ } | max_over_time(duration)) - ({ } | min_over_time(duration)) > 1.5s")
    else {
        panic!()
    };
    assert!(matches!(second_stage[..], [SecondStage::Filter(_, t)] if t == 1.5));
    let e = error("({ } | rate()) * -5m");
    assert!(e.message.contains("a duration cannot be combined"), "{e}");

    let e = error("({ } | rate()) % ({ } | rate())");
    assert!(e.message.contains("combine with + - * / only"), "{e}");
    let e = error("({ } | rate()) * 5m");
    assert!(e.message.contains("a duration cannot be combined"), "{e}");
}

#[test]
fn operators_bind_as_in_tempo() {
    // Structural operators bind tighter than && and ||.
    let SpansetExpr::Pair(SpansetOp::And, _, rhs) = spans("{ .a = 1 } && { .b = 2 } > { .c = 3 }")
    else {
        panic!()
    };
    assert!(matches!(*rhs, SpansetExpr::Pair(SpansetOp::Child, _, _)));
    // Inside a filter, && and || share a level and group from the left.
    let SpansetExpr::Filter(FieldExpr::And(lhs, _)) = spans("{ .a = 1 || .b = 2 && .c = 3 }")
    else {
        panic!()
    };
    assert!(matches!(*lhs, FieldExpr::Or(_, _)));
    // Comparisons with nil test for presence.
    assert!(matches!(
        spans("{ .a = nil }"),
        SpansetExpr::Filter(FieldExpr::Missing(_))
    ));
    assert!(matches!(
        spans("{ .a != nil }"),
        SpansetExpr::Filter(FieldExpr::Exists(_))
    ));
    // `!~` between spansets is "not sibling", inside a filter a regex.
    assert!(matches!(
        spans("{ } !~ { }"),
        SpansetExpr::Pair(SpansetOp::NotSibling, _, _)
    ));
    assert!(matches!(
        spans(r#"{ .a !~ "x" }"#),
        SpansetExpr::Filter(FieldExpr::Regex { negated: true, .. })
    ));
    // A pipeline stage of a comparison with an aggregate is a scalar filter.
    let SpansetExpr::Pipeline(stages) = spans("{ } | by(name) | count() > 2") else {
        panic!()
    };
    assert!(matches!(&stages[1], Stage::By(_, label) if label == "by(name)"));
    assert!(matches!(stages[2], Stage::ScalarFilter(_)));
}

#[test]
fn durations_and_names_read_as_tempo_reads_them() {
    let SpansetExpr::Filter(FieldExpr::Compare(_, lhs, rhs)) =
        spans(r#"{ span.http.status_code >= 1h30m }"#)
    else {
        panic!()
    };
    assert!(
        matches!(*lhs, FieldExpr::Attribute(Attribute { scope: Scope::Span, ref name, .. }) if name == "http.status_code")
    );
    assert!(matches!(
        *rhs,
        FieldExpr::Static(Value::Duration(5_400_000_000_000))
    ));
    let SpansetExpr::Filter(FieldExpr::Compare(_, lhs, _)) = spans(r#"{ span."a b".c = 1 }"#)
    else {
        panic!()
    };
    assert!(matches!(*lhs, FieldExpr::Attribute(Attribute { ref name, .. }) if name == "a b.c"));
}

#[test]
fn errors_name_the_position_and_what_was_expected() {
    let e = error("{ .a = }");
    assert_eq!((e.line, e.column), (1, 8), "{e}");
    assert!(
        e.message
            .contains("expected an attribute, an intrinsic or a value, found `}`"),
        "{e}"
    );

    let e = error("{ .a = 1");
    assert_eq!(e.column, 9, "{e}");
    assert!(
        e.message
            .contains("expected `}`, found the end of the query"),
        "{e}"
    );

    let e = error("{ foo = 1 }");
    assert_eq!(e.column, 3);
    assert!(e.message.contains("unknown identifier `foo`"), "{e}");

    let e = error(r#"{ .a =~ "(" }"#);
    assert_eq!(e.column, 9);
    assert!(e.message.contains("invalid regular expression"), "{e}");

    let e = error("{ } | count()");
    assert!(e.message.contains("must be compared"), "{e}");

    let e = error("{ span:nope = 1 }");
    assert!(e.message.contains("unknown intrinsic `span:nope`"), "{e}");

    let e = error("{ } > ");
    assert!(e.message.contains("found the end of the query"), "{e}");

    let e = error("{ .a = \"x }");
    assert!(e.message.contains("unterminated string"), "{e}");

    let e = error("{ } |");
    assert_eq!(e.column, 6);

    let e = error("{ .a > 1 } }");
    assert_eq!(e.column, 12);
    assert!(e.message.contains("found `}`"), "{e}");

    let e = error("{ .a >> 1 }");
    assert!(e.message.contains("compares spansets"), "{e}");

    let e = error("{ } | quantile_over_time(duration)");
    assert!(e.message.contains("at least one quantile"), "{e}");

    let e = error("{\n  .a = 1 &&\n  = 2 }");
    assert_eq!((e.line, e.column), (3, 3), "{e}");
}

#[test]
fn deep_or_long_queries_are_refused_before_they_can_exhaust_the_stack() {
    let nested = format!("{}{{}}{}", "(".repeat(200), ")".repeat(200));
    assert!(error(&nested).message.contains("nests deeper than"));
    let nots = format!("{{ {}true }}", "!".repeat(200));
    assert!(error(&nots).message.contains("nests deeper than"));
    let powers = format!("{{ .a = 2{} }}", " ^ 2".repeat(200));
    assert!(error(&powers).message.contains("nests deeper than"));
    let long = format!("{{}}{}", " && {}".repeat(1_000));
    assert!(error(&long).message.contains("longer than"));
    assert!(parse(&"x".repeat(100_000)).is_err());

    // The longest chains allowed parse and evaluate on a thread with an 8 MiB stack (what the
    // server's threads have: `osprey` sets it), also in a debug build.
    let spansets = format!("{{}}{}", " && {}".repeat(MAX_TOKENS / 3 - 2));
    let conditions = format!("{{ .a = 1{} }}", " && .a = 1".repeat(MAX_TOKENS / 4 - 2));
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            use crate::traceql::eval::evaluate;
            use crate::traceql::trace::TraceView;
            let trace = vec![osprey_model::fixtures::service_spans(
                "s",
                vec![osprey_model::fixtures::span(1, 1, None, "root", 0, 10)],
            )];
            let view = TraceView::new(&trace);
            for query in [spansets, conditions] {
                let Root::Spans(expr) = parse(&query).unwrap().root else {
                    panic!()
                };
                evaluate(&expr, &view);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
