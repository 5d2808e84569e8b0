//! Evaluating a TraceQL spanset expression over one trace, as Tempo does: a spanset is a set of
//! spans of the trace (plus the labels `by()` gave it); filters keep the spans that match, `&&`
//! and `||` combine spansets, structural operators relate spans through their parent links, and
//! each pipeline stage maps the spansets the previous one gave.

use std::collections::HashMap;

use osprey_model::otlp::span::{Event, Link};
use osprey_model::otlp::KeyValue;

use super::ast::*;
use super::trace::TraceView;
use super::value::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spanset {
    /// Indices into the trace's spans, ascending (by start time).
    pub spans: Vec<usize>,
    /// Labels: `by(…)` groups.
    pub attributes: Vec<(String, Value)>,
    /// The value of the last aggregate compared (`count()`, `avg(duration)`, …).
    pub scalar: Option<Value>,
}

/// The spansets of `trace` that `expr` selects; empty when the trace does not match.
pub fn evaluate(expr: &SpansetExpr, trace: &TraceView) -> Vec<Spanset> {
    let all = Spanset {
        spans: (0..trace.spans.len()).collect(),
        ..Default::default()
    };
    spansets(expr, trace, vec![all])
}

fn spansets(expr: &SpansetExpr, trace: &TraceView, input: Vec<Spanset>) -> Vec<Spanset> {
    match expr {
        SpansetExpr::Filter(filter) => input
            .into_iter()
            .filter_map(|mut set| {
                set.spans.retain(|&i| span_matches(filter, trace, i));
                (!set.spans.is_empty()).then_some(set)
            })
            .collect(),
        SpansetExpr::Pair(op, lhs, rhs) => input
            .into_iter()
            .filter_map(|set| {
                let left = union(spansets(lhs, trace, vec![set.clone()]));
                let right = union(spansets(rhs, trace, vec![set.clone()]));
                let spans = combine(*op, trace, &left, &right);
                (!spans.is_empty()).then_some(Spanset {
                    spans,
                    attributes: set.attributes,
                    scalar: None,
                })
            })
            .collect(),
        SpansetExpr::Pipeline(stages) => stages
            .iter()
            .fold(input, |sets, stage| apply_stage(stage, trace, sets)),
        SpansetExpr::ScalarFilter(filter) => scalar_filter(filter, trace, input),
    }
}

/// Every span of `sets`, ascending and once.
fn union(sets: Vec<Spanset>) -> Vec<usize> {
    sorted(sets.into_iter().flat_map(|s| s.spans).collect())
}

fn combine(op: SpansetOp, trace: &TraceView, left: &[usize], right: &[usize]) -> Vec<usize> {
    use SpansetOp::*;
    let relation = match op {
        And => {
            if left.is_empty() || right.is_empty() {
                return Vec::new();
            }
            return sorted(left.iter().chain(right).copied().collect());
        }
        Union => return sorted(left.iter().chain(right).copied().collect()),
        Child | NotChild | UnionChild => Relation::Child,
        Parent | NotParent | UnionParent => Relation::Parent,
        Descendant | NotDescendant | UnionDescendant => Relation::Descendant,
        Ancestor | NotAncestor | UnionAncestor => Relation::Ancestor,
        Sibling | NotSibling | UnionSibling => Relation::Sibling,
    };
    // `l > r` keeps the r that are children of an l, and so on: which spans relate to the left.
    let related = related(relation, trace, left);
    let kept_right: Vec<usize> = right.iter().copied().filter(|&r| related[r]).collect();
    match op {
        NotChild | NotParent | NotDescendant | NotAncestor | NotSibling => {
            right.iter().copied().filter(|&r| !related[r]).collect()
        }
        UnionChild | UnionParent | UnionDescendant | UnionAncestor | UnionSibling => {
            // Both spans of every related pair: the left ones related the other way round.
            let back = related_back(relation, trace, &kept_right);
            let kept_left = left.iter().copied().filter(|&l| back[l]);
            sorted(kept_left.chain(kept_right.iter().copied()).collect())
        }
        _ => kept_right,
    }
}

fn sorted(mut spans: Vec<usize>) -> Vec<usize> {
    spans.sort_unstable();
    spans.dedup();
    spans
}

/// How a span relates to a spanset, for the structural operators.
#[derive(Clone, Copy)]
enum Relation {
    Child,
    Parent,
    Descendant,
    Ancestor,
    Sibling,
}

fn related_back(relation: Relation, trace: &TraceView, of: &[usize]) -> Vec<bool> {
    use Relation::*;
    let inverse = match relation {
        Child => Parent,
        Parent => Child,
        Descendant => Ancestor,
        Ancestor => Descendant,
        Sibling => Sibling,
    };
    related(inverse, trace, of)
}

/// For every span of the trace, whether it stands in `relation` to some span of `of`: linear in
/// the trace's spans (times its depth for descendants), so a structural query over a trace of
/// 50,000 spans stays fast.
fn related(relation: Relation, trace: &TraceView, of: &[usize]) -> Vec<bool> {
    let n = trace.spans.len();
    let parent = |s: usize| trace.spans[s].parent;
    let mut member = vec![false; n];
    for &s in of {
        member[s] = true;
    }
    let mut out = vec![false; n];
    match relation {
        Relation::Child => {
            for (s, o) in out.iter_mut().enumerate() {
                *o = parent(s).is_some_and(|p| member[p]);
            }
        }
        Relation::Parent => {
            for &s in of {
                if let Some(p) = parent(s) {
                    out[p] = true;
                }
            }
        }
        Relation::Descendant => {
            for (s, o) in out.iter_mut().enumerate() {
                // Bounded: parent links from bad data may loop.
                let mut at = parent(s);
                for _ in 0..n {
                    match at {
                        Some(p) if member[p] => {
                            *o = true;
                            break;
                        }
                        Some(p) => at = parent(p),
                        None => break,
                    }
                }
            }
        }
        Relation::Ancestor => {
            for &s in of {
                let mut at = parent(s);
                for _ in 0..n {
                    match at {
                        Some(p) if !out[p] => {
                            out[p] = true;
                            at = parent(p);
                        }
                        _ => break,
                    }
                }
            }
        }
        Relation::Sibling => {
            let mut children_in_of = vec![0usize; n];
            for &s in of {
                if let Some(p) = parent(s) {
                    children_in_of[p] += 1;
                }
            }
            for (s, o) in out.iter_mut().enumerate() {
                *o = parent(s).is_some_and(|p| children_in_of[p] > member[s] as usize);
            }
        }
    }
    out
}

fn apply_stage(stage: &Stage, trace: &TraceView, sets: Vec<Spanset>) -> Vec<Spanset> {
    match stage {
        Stage::Spans(expr) => spansets(expr, trace, sets),
        Stage::ScalarFilter(filter) => scalar_filter(filter, trace, sets),
        Stage::By(field, label) => {
            let mut out = Vec::new();
            for set in sets {
                // Groups in the order their first span comes, found by the value's text and type.
                let mut groups: Vec<(Value, Vec<usize>)> = Vec::new();
                let mut index: HashMap<(String, &str), usize> = HashMap::new();
                for &i in &set.spans {
                    let value = field_value(field, trace, i);
                    let key = (value.to_string(), value.type_name());
                    match index.get(&key) {
                        Some(&g) => groups[g].1.push(i),
                        None => {
                            index.insert(key, groups.len());
                            groups.push((value, vec![i]));
                        }
                    }
                }
                for (value, spans) in groups {
                    let mut attributes = set.attributes.clone();
                    attributes.push((label.clone(), value));
                    out.push(Spanset {
                        spans,
                        attributes,
                        scalar: None,
                    });
                }
            }
            out
        }
        Stage::Coalesce => {
            if sets.is_empty() {
                return sets;
            }
            vec![Spanset {
                spans: union(sets),
                ..Default::default()
            }]
        }
        // The selected fields are shown with each span; the spansets stay as they are.
        Stage::Select(_) => sets,
    }
}

fn scalar_filter(filter: &ScalarFilter, trace: &TraceView, sets: Vec<Spanset>) -> Vec<Spanset> {
    // A pipeline on either side (`({…} | count()) > 2`) is evaluated on the whole input and
    // gives one value per spanset it yields; the first spanset's value stands for the side.
    let mut out = Vec::new();
    for set in sets {
        let lhs = scalar(&filter.lhs, trace, &set);
        let rhs = scalar(&filter.rhs, trace, &set);
        if lhs.compare(filter.op, &rhs) {
            out.push(Spanset {
                scalar: Some(lhs),
                ..set
            });
        }
    }
    out
}

fn scalar(expr: &Scalar, trace: &TraceView, set: &Spanset) -> Value {
    match expr {
        Scalar::Static(v) => v.clone(),
        Scalar::Aggregate(aggregate) => aggregate_value(aggregate, trace, &set.spans),
        Scalar::Pipeline(pipeline, aggregate) => spansets(pipeline, trace, vec![set.clone()])
            .first()
            .map_or(Value::Nil, |s| aggregate_value(aggregate, trace, &s.spans)),
        Scalar::Arithmetic(op, a, b) => {
            scalar(a, trace, set).arithmetic(*op, &scalar(b, trace, set))
        }
    }
}

fn aggregate_value(aggregate: &Aggregate, trace: &TraceView, spans: &[usize]) -> Value {
    let Some(field) = &aggregate.field else {
        return Value::Int(spans.len() as i64);
    };
    let values: Vec<Value> = spans
        .iter()
        .map(|&i| field_value(field, trace, i))
        .filter(|v| v.as_f64().is_some())
        .collect();
    if values.is_empty() {
        return Value::Nil;
    }
    let durations = values.iter().all(|v| matches!(v, Value::Duration(_)));
    let ints = values.iter().all(|v| matches!(v, Value::Int(_)));
    let numbers = values.iter().filter_map(Value::as_f64);
    let typed = |x: f64| {
        if durations {
            Value::Duration(x.round() as i64)
        } else if ints && x.fract() == 0.0 {
            Value::Int(x as i64)
        } else {
            Value::Float(x)
        }
    };
    match aggregate.kind {
        AggregateKind::Count => Value::Int(values.len() as i64),
        AggregateKind::Min => typed(numbers.fold(f64::INFINITY, f64::min)),
        AggregateKind::Max => typed(numbers.fold(f64::NEG_INFINITY, f64::max)),
        AggregateKind::Sum => typed(numbers.sum()),
        AggregateKind::Avg => {
            let n = values.len() as f64;
            let avg = numbers.sum::<f64>() / n;
            if durations {
                Value::Duration(avg.round() as i64)
            } else {
                Value::Float(avg)
            }
        }
    }
}

/// Where a field is read: a span, and the event and link being looked at (conditions on
/// `event.`/`link.` hold when they hold for one of the span's events or links).
#[derive(Clone, Copy)]
struct At<'t> {
    span: usize,
    event: Option<&'t Event>,
    link: Option<&'t Link>,
}

/// Whether one span meets a filter's condition (for some event and link, when it names them).
pub fn span_matches(filter: &FieldExpr, trace: &TraceView, span: usize) -> bool {
    let (mut events, mut links) = (false, false);
    filter.visit_fields(&mut |f| match f {
        FieldExpr::Attribute(a) if !a.parent => {
            events |= a.scope == Scope::Event;
            links |= a.scope == Scope::Link;
        }
        FieldExpr::Intrinsic(i) => {
            events |= matches!(i, Intrinsic::EventName | Intrinsic::EventTimeSinceStart);
            links |= matches!(i, Intrinsic::LinkSpanId | Intrinsic::LinkTraceId);
        }
        _ => {}
    });
    let s = trace.spans[span].span;
    let event_choices: Vec<Option<&Event>> = if events && !s.events.is_empty() {
        s.events.iter().map(Some).collect()
    } else {
        vec![None]
    };
    let link_choices: Vec<Option<&Link>> = if links && !s.links.is_empty() {
        s.links.iter().map(Some).collect()
    } else {
        vec![None]
    };
    event_choices.iter().any(|&event| {
        link_choices
            .iter()
            .any(|&link| eval(filter, trace, At { span, event, link }) == Value::Bool(true))
    })
}

/// The value of `field` for one span (the first of its events or links for those scopes).
pub fn field_value(field: &FieldExpr, trace: &TraceView, span: usize) -> Value {
    let s = trace.spans[span].span;
    eval(
        field,
        trace,
        At {
            span,
            event: s.events.first(),
            link: s.links.first(),
        },
    )
}

fn eval(expr: &FieldExpr, trace: &TraceView, at: At) -> Value {
    evaluate_field(expr, &|leaf| match leaf {
        FieldExpr::Intrinsic(i) => intrinsic(*i, trace, at),
        FieldExpr::Attribute(a) => attribute(a, trace, at),
        _ => Value::Nil,
    })
}

/// Evaluates a field expression, reading attributes and intrinsics through `leaf`: over a span of
/// a whole trace, or over what a span reference holds (metrics' fast path).
pub fn evaluate_field(expr: &FieldExpr, leaf: &dyn Fn(&FieldExpr) -> Value) -> Value {
    let eval = |e: &FieldExpr| evaluate_field(e, leaf);
    match expr {
        FieldExpr::Static(v) => v.clone(),
        FieldExpr::Intrinsic(_) | FieldExpr::Attribute(_) => leaf(expr),
        FieldExpr::Compare(op, a, b) => Value::Bool(eval(a).compare(*op, &eval(b))),
        FieldExpr::Arithmetic(op, a, b) => eval(a).arithmetic(*op, &eval(b)),
        FieldExpr::And(a, b) => {
            Value::Bool(eval(a) == Value::Bool(true) && eval(b) == Value::Bool(true))
        }
        FieldExpr::Or(a, b) => {
            Value::Bool(eval(a) == Value::Bool(true) || eval(b) == Value::Bool(true))
        }
        FieldExpr::Regex {
            negated,
            operand,
            regex,
        } => {
            // Only strings match regular expressions (as in Tempo); `!~` on an array holds when
            // no element matches.
            let matches = |v: &Value| match v {
                Value::Str(s) => Some(regex.is_match(s)),
                _ => None,
            };
            let found = match eval(operand) {
                Value::Array(items) => {
                    let results: Vec<bool> = items.iter().filter_map(matches).collect();
                    if *negated {
                        !results.is_empty() && results.iter().all(|m| !m)
                    } else {
                        results.iter().any(|m| *m)
                    }
                }
                v => matches(&v).is_some_and(|m| m != *negated),
            };
            Value::Bool(found)
        }
        FieldExpr::Not(a) => match eval(a) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Nil,
        },
        FieldExpr::Negate(a) => Value::Int(0).arithmetic(ArithmeticOp::Sub, &eval(a)),
        FieldExpr::Exists(a) => Value::Bool(!eval(a).is_nil()),
        FieldExpr::Missing(a) => Value::Bool(eval(a).is_nil()),
    }
}

fn find(attributes: &[KeyValue], name: &str) -> Value {
    attributes
        .iter()
        .find(|kv| kv.key == name)
        .map_or(Value::Nil, |kv| {
            Value::from_any(kv.value.as_ref().and_then(|v| v.value.as_ref()))
        })
}

fn attribute(a: &Attribute, trace: &TraceView, at: At) -> Value {
    let span = if a.parent {
        match trace.spans[at.span].parent {
            Some(p) => p,
            None => return Value::Nil,
        }
    } else {
        at.span
    };
    let view = &trace.spans[span];
    let resource = || {
        view.resource
            .map_or(Value::Nil, |r| find(&r.attributes, &a.name))
    };
    match a.scope {
        Scope::Span => find(&view.span.attributes, &a.name),
        Scope::Resource => resource(),
        Scope::Any => match find(&view.span.attributes, &a.name) {
            Value::Nil => resource(),
            v => v,
        },
        Scope::Event => at
            .event
            .map_or(Value::Nil, |e| find(&e.attributes, &a.name)),
        Scope::Link => at.link.map_or(Value::Nil, |l| find(&l.attributes, &a.name)),
        Scope::Instrumentation => view
            .scope
            .map_or(Value::Nil, |s| find(&s.attributes, &a.name)),
    }
}

fn hex(bytes: &[u8]) -> Value {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return Value::Nil;
    }
    Value::Str(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn intrinsic(i: Intrinsic, trace: &TraceView, at: At) -> Value {
    use Intrinsic::*;
    let view = &trace.spans[at.span];
    let s = view.span;
    match i {
        Duration => Value::Duration(view.duration_ns() as i64),
        Name => Value::Str(s.name.clone()),
        Status => Value::Status(s.status.as_ref().map_or(0, |st| st.code)),
        StatusMessage => Value::Str(
            s.status
                .as_ref()
                .map_or(String::new(), |st| st.message.clone()),
        ),
        Kind => Value::Kind(s.kind),
        ChildCount => Value::Int(view.children.len() as i64),
        Parent | ParentId => hex(&s.parent_span_id),
        SpanId => hex(&s.span_id),
        TraceId => hex(trace.trace_id),
        TraceDuration => Value::Duration(trace.duration_ns as i64),
        TraceRootName => Value::Str(trace.root_name.to_string()),
        TraceRootService => Value::Str(trace.root_service.to_string()),
        NestedSetLeft => Value::Int(view.left),
        NestedSetRight => Value::Int(view.right),
        NestedSetParent => view
            .parent
            .map_or(Value::Int(-1), |p| Value::Int(trace.spans[p].left)),
        EventName => at.event.map_or(Value::Nil, |e| Value::Str(e.name.clone())),
        EventTimeSinceStart => at.event.map_or(Value::Nil, |e| {
            Value::Duration(e.time_unix_nano.saturating_sub(s.start_time_unix_nano) as i64)
        }),
        LinkTraceId => at.link.map_or(Value::Nil, |l| hex(&l.trace_id)),
        LinkSpanId => at.link.map_or(Value::Nil, |l| hex(&l.span_id)),
        InstrumentationName => view
            .scope
            .map_or(Value::Nil, |sc| Value::Str(sc.name.clone())),
        InstrumentationVersion => view
            .scope
            .map_or(Value::Nil, |sc| Value::Str(sc.version.clone())),
    }
}
