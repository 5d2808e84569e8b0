//! What a parsed TraceQL query is. The shapes follow grafana/tempo's grammar (`pkg/traceql/expr.y`):
//! a spanset expression (filters, structural and set operators, pipelines) answers a search; a
//! spanset pipeline ending in a metrics function answers `/api/metrics/*`.

use std::fmt;

use regex::Regex;

use super::value::Value;

#[derive(Debug, Clone)]
pub struct Query {
    pub root: Root,
    /// `with (name = value, …)`: accepted and kept; none changes an answer.
    pub hints: Vec<(String, Value)>,
}

#[derive(Debug, Clone)]
pub enum Root {
    /// A search: which spans of a trace match.
    Spans(SpansetExpr),
    /// A metrics query: series computed from the spans a pipeline selects, or from several such
    /// queries combined.
    Metrics(MetricsExpr),
}

#[derive(Debug, Clone)]
pub enum SpansetExpr {
    /// `{ condition }` (an empty filter is `{ true }`).
    Filter(FieldExpr),
    /// `a && b`, `a > b`, …: both sides evaluated on the same input.
    Pair(SpansetOp, Box<SpansetExpr>, Box<SpansetExpr>),
    /// `a | b | c`: each stage takes the spansets the previous one gave.
    Pipeline(Vec<Stage>),
    /// `(pipeline | aggregate) > value` at the top of a query.
    ScalarFilter(ScalarFilter),
}

impl SpansetExpr {
    /// Calls `f` with every attribute and intrinsic the expression reads: in filters, aggregates,
    /// groupings and selections.
    pub fn visit_fields(&self, f: &mut impl FnMut(&FieldExpr)) {
        self.visit(f, true);
    }

    /// Calls `f` with the attributes and intrinsics a matched span shows: those its filters read
    /// and those `select(…)` names (not aggregates' or groupings').
    pub fn visit_shown_fields(&self, f: &mut impl FnMut(&FieldExpr)) {
        self.visit(f, false);
    }

    fn visit(&self, f: &mut impl FnMut(&FieldExpr), all: bool) {
        match self {
            SpansetExpr::Filter(filter) => filter.visit_fields(f),
            SpansetExpr::Pair(_, a, b) => {
                a.visit(f, all);
                b.visit(f, all);
            }
            SpansetExpr::Pipeline(stages) => {
                for stage in stages {
                    match stage {
                        Stage::Spans(e) => e.visit(f, all),
                        Stage::ScalarFilter(s) if all => s.visit_fields(f),
                        Stage::By(field, _) if all => field.visit_fields(f),
                        Stage::Select(fields) => fields.iter().for_each(|x| x.visit_fields(f)),
                        Stage::ScalarFilter(_) | Stage::By(..) | Stage::Coalesce => {}
                    }
                }
            }
            SpansetExpr::ScalarFilter(s) if all => s.visit_fields(f),
            SpansetExpr::ScalarFilter(_) => {}
        }
    }
}

impl ScalarFilter {
    fn visit_fields(&self, f: &mut impl FnMut(&FieldExpr)) {
        self.lhs.visit_fields(f);
        self.rhs.visit_fields(f);
    }
}

impl Scalar {
    fn visit_fields(&self, f: &mut impl FnMut(&FieldExpr)) {
        match self {
            Scalar::Static(_) => {}
            Scalar::Aggregate(a) => a.field.iter().for_each(|x| x.visit_fields(f)),
            Scalar::Pipeline(pipeline, a) => {
                pipeline.visit_fields(f);
                a.field.iter().for_each(|x| x.visit_fields(f));
            }
            Scalar::Arithmetic(_, a, b) => {
                a.visit_fields(f);
                b.visit_fields(f);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansetOp {
    And,
    Union,
    Child,
    Parent,
    Descendant,
    Ancestor,
    Sibling,
    NotChild,
    NotParent,
    NotDescendant,
    NotAncestor,
    NotSibling,
    UnionChild,
    UnionParent,
    UnionDescendant,
    UnionAncestor,
    UnionSibling,
}

impl SpansetOp {
    pub fn from_symbol(symbol: &str) -> Option<SpansetOp> {
        use SpansetOp::*;
        Some(match symbol {
            "&&" => And,
            "||" => Union,
            ">" => Child,
            "<" => Parent,
            ">>" => Descendant,
            "<<" => Ancestor,
            "~" => Sibling,
            "!>" => NotChild,
            "!<" => NotParent,
            "!>>" => NotDescendant,
            "!<<" => NotAncestor,
            "!~" => NotSibling,
            "&>" => UnionChild,
            "&<" => UnionParent,
            "&>>" => UnionDescendant,
            "&<<" => UnionAncestor,
            "&~" => UnionSibling,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub enum Stage {
    Spans(SpansetExpr),
    ScalarFilter(ScalarFilter),
    /// `by(expr)`, with the text Tempo labels groups with (`by(resource.service.name)`).
    By(FieldExpr, String),
    Coalesce,
    Select(Vec<FieldExpr>),
}

#[derive(Debug, Clone)]
pub struct ScalarFilter {
    pub op: CompareOp,
    pub lhs: Scalar,
    pub rhs: Scalar,
}

#[derive(Debug, Clone)]
pub enum Scalar {
    Static(Value),
    Aggregate(Aggregate),
    /// `(pipeline | aggregate)`.
    Pipeline(Box<SpansetExpr>, Aggregate),
    Arithmetic(ArithmeticOp, Box<Scalar>, Box<Scalar>),
}

#[derive(Debug, Clone)]
pub struct Aggregate {
    pub kind: AggregateKind,
    /// The field of `avg(duration)`; `None` for `count()`.
    pub field: Option<FieldExpr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn from_symbol(symbol: &str) -> Option<CompareOp> {
        Some(match symbol {
            "=" => CompareOp::Eq,
            "!=" => CompareOp::Ne,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithmeticOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl ArithmeticOp {
    pub fn from_symbol(symbol: &str) -> Option<ArithmeticOp> {
        Some(match symbol {
            "+" => ArithmeticOp::Add,
            "-" => ArithmeticOp::Sub,
            "*" => ArithmeticOp::Mul,
            "/" => ArithmeticOp::Div,
            "%" => ArithmeticOp::Mod,
            "^" => ArithmeticOp::Pow,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub enum FieldExpr {
    Static(Value),
    Intrinsic(Intrinsic),
    Attribute(Attribute),
    Compare(CompareOp, Box<FieldExpr>, Box<FieldExpr>),
    Arithmetic(ArithmeticOp, Box<FieldExpr>, Box<FieldExpr>),
    And(Box<FieldExpr>, Box<FieldExpr>),
    Or(Box<FieldExpr>, Box<FieldExpr>),
    /// `x =~ "re"` / `x !~ "re"`: the pattern fully anchored, as Tempo matches it.
    Regex {
        negated: bool,
        operand: Box<FieldExpr>,
        regex: Regex,
    },
    Not(Box<FieldExpr>),
    Negate(Box<FieldExpr>),
    /// `x != nil`.
    Exists(Box<FieldExpr>),
    /// `x = nil`.
    Missing(Box<FieldExpr>),
}

impl FieldExpr {
    /// Calls `f` with every attribute and intrinsic the expression reads.
    pub fn visit_fields(&self, f: &mut impl FnMut(&FieldExpr)) {
        match self {
            FieldExpr::Static(_) => {}
            FieldExpr::Intrinsic(_) | FieldExpr::Attribute(_) => f(self),
            FieldExpr::Compare(_, a, b)
            | FieldExpr::Arithmetic(_, a, b)
            | FieldExpr::And(a, b)
            | FieldExpr::Or(a, b) => {
                a.visit_fields(f);
                b.visit_fields(f);
            }
            FieldExpr::Regex { operand: a, .. }
            | FieldExpr::Not(a)
            | FieldExpr::Negate(a)
            | FieldExpr::Exists(a)
            | FieldExpr::Missing(a) => a.visit_fields(f),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intrinsic {
    Duration,
    Name,
    Status,
    StatusMessage,
    Kind,
    ChildCount,
    /// Legacy `parent`: the parent span's id, nil for a root.
    Parent,
    SpanId,
    ParentId,
    TraceId,
    TraceDuration,
    TraceRootName,
    TraceRootService,
    NestedSetLeft,
    NestedSetRight,
    NestedSetParent,
    EventName,
    EventTimeSinceStart,
    LinkTraceId,
    LinkSpanId,
    InstrumentationName,
    InstrumentationVersion,
}

impl Intrinsic {
    /// An unscoped (legacy) intrinsic name.
    pub fn unscoped(name: &str) -> Option<Intrinsic> {
        use Intrinsic::*;
        Some(match name {
            "duration" => Duration,
            "name" => Name,
            "status" => Status,
            "statusMessage" => StatusMessage,
            "kind" => Kind,
            "childCount" => ChildCount,
            "parent" => Parent,
            "rootName" => TraceRootName,
            "rootServiceName" => TraceRootService,
            "traceDuration" => TraceDuration,
            "nestedSetLeft" => NestedSetLeft,
            "nestedSetRight" => NestedSetRight,
            "nestedSetParent" => NestedSetParent,
            _ => return None,
        })
    }

    /// A scoped intrinsic (`span:duration`, `trace:rootService`, …).
    pub fn scoped(scope: &str, name: &str) -> Option<Intrinsic> {
        use Intrinsic::*;
        Some(match (scope, name) {
            ("trace", "duration") => TraceDuration,
            ("trace", "rootName") => TraceRootName,
            ("trace", "rootService") => TraceRootService,
            ("trace", "id") => TraceId,
            ("span", "duration") => Duration,
            ("span", "name") => Name,
            ("span", "kind") => Kind,
            ("span", "status") => Status,
            ("span", "statusMessage") => StatusMessage,
            ("span", "id") => SpanId,
            ("span", "parentID") => ParentId,
            ("span", "childCount") => ChildCount,
            ("event", "name") => EventName,
            ("event", "timeSinceStart") => EventTimeSinceStart,
            ("link", "traceID") => LinkTraceId,
            ("link", "spanID") => LinkSpanId,
            ("instrumentation", "name") => InstrumentationName,
            ("instrumentation", "version") => InstrumentationVersion,
            _ => return None,
        })
    }

    /// The name Tempo gives it in answers (`tags` lists, span attributes).
    pub fn name(self) -> &'static str {
        use Intrinsic::*;
        match self {
            Duration => "duration",
            Name => "name",
            Status => "status",
            StatusMessage => "statusMessage",
            Kind => "kind",
            ChildCount => "childCount",
            Parent => "parent",
            SpanId => "span:id",
            ParentId => "span:parentID",
            TraceId => "trace:id",
            TraceDuration => "traceDuration",
            TraceRootName => "rootName",
            TraceRootService => "rootServiceName",
            NestedSetLeft => "nestedSetLeft",
            NestedSetRight => "nestedSetRight",
            NestedSetParent => "nestedSetParent",
            EventName => "event:name",
            EventTimeSinceStart => "event:timeSinceStart",
            LinkTraceId => "link:traceID",
            LinkSpanId => "link:spanID",
            InstrumentationName => "instrumentation:name",
            InstrumentationVersion => "instrumentation:version",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `.name`: the span's attribute, else its resource's.
    Any,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    pub scope: Scope,
    /// `parent.…`: the attribute of the span's parent.
    pub parent: bool,
    pub name: String,
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parent {
            f.write_str("parent.")?;
        }
        let scope = match self.scope {
            Scope::Any => "",
            Scope::Span => "span",
            Scope::Resource => "resource",
            Scope::Event => "event",
            Scope::Link => "link",
            Scope::Instrumentation => "instrumentation",
        };
        write!(f, "{scope}.{}", self.name)
    }
}

/// A metrics query, or metrics queries combined by arithmetic: `({status = error} | rate()) /
/// ({} | rate())`, each wrapped in parentheses, as Tempo writes them.
#[derive(Debug, Clone)]
pub enum MetricsExpr {
    Query(Box<MetricsQuery>),
    /// Two sides' series matched by their labels (one side with a single unlabelled series
    /// applies to every series of the other), then the stages after it.
    Math {
        op: ArithmeticOp,
        lhs: Box<MetricsExpr>,
        rhs: Box<MetricsExpr>,
        second_stage: Vec<SecondStage>,
    },
}

impl MetricsExpr {
    /// The stages applied to this expression's series, in order.
    pub fn second_stage_mut(&mut self) -> &mut Vec<SecondStage> {
        match self {
            MetricsExpr::Query(q) => &mut q.second_stage,
            MetricsExpr::Math { second_stage, .. } => second_stage,
        }
    }

    /// The metrics queries it combines, left to right.
    pub fn queries(&self) -> Vec<&MetricsQuery> {
        match self {
            MetricsExpr::Query(q) => vec![q],
            MetricsExpr::Math { lhs, rhs, .. } => {
                let mut queries = lhs.queries();
                queries.extend(rhs.queries());
                queries
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetricsQuery {
    pub pipeline: SpansetExpr,
    pub function: MetricsFunction,
    /// The attributes of `by (…)`: one series per combination of their values.
    pub by: Vec<FieldExpr>,
    /// `| topk(n)`, `| bottomk(n)` and `> value` filters, in order.
    pub second_stage: Vec<SecondStage>,
}

#[derive(Debug, Clone)]
pub enum MetricsFunction {
    Rate,
    CountOverTime,
    MinOverTime(FieldExpr),
    MaxOverTime(FieldExpr),
    SumOverTime(FieldExpr),
    AvgOverTime(FieldExpr),
    QuantileOverTime(FieldExpr, Vec<f64>),
    HistogramOverTime(FieldExpr),
    /// `compare({selection}, topN, start, end)`: start and end in unix nanoseconds (0: none).
    Compare {
        selection: FieldExpr,
        top: usize,
        start_ns: i64,
        end_ns: i64,
    },
}

#[derive(Debug, Clone)]
pub enum SecondStage {
    TopK(usize),
    BottomK(usize),
    Filter(CompareOp, f64),
    /// `(… | rate()) * 60` (series first) or `100 * (… | rate())` (number first).
    Scalar {
        op: ArithmeticOp,
        value: f64,
        number_first: bool,
    },
}
