//! A precedence-climbing parser for TraceQL. Operators bind as in grafana/tempo's grammar, loosest
//! first: `|`; `&&` `||`; comparisons and structural operators; `+` `-`; `!`; `*` `/` `%`; `^`.
//! The query level is first read into a small untyped tree (parentheses there may hold a spanset,
//! a pipeline or a scalar), then typed; field expressions inside `{ }` are typed as they are read.

use regex::Regex;

use super::ast::*;
use super::lexer::{tokens, Tok, Token};
use super::value::{Value, KIND_NAMES, STATUS_NAMES};
use super::ParseError;

/// The query level before it is typed.
#[derive(Debug)]
enum Node {
    Filter(FieldExpr, usize),
    Group(Box<Node>),
    Binary(&'static str, Box<Node>, Box<Node>, usize),
    Call(Call),
    Number(Value, usize),
    Negate(Box<Node>, usize),
}

#[derive(Debug)]
struct Call {
    name: String,
    at: usize,
    args: Vec<Arg>,
    /// `rate() by (…)`.
    by: Vec<FieldExpr>,
}

#[derive(Debug)]
enum Arg {
    Field(FieldExpr, usize),
    Filter(FieldExpr, usize),
    Number(f64, usize),
}

const AGGREGATES: &[&str] = &["count", "avg", "min", "max", "sum"];
const METRICS: &[&str] = &[
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "avg_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
];
const SECOND_STAGE: &[&str] = &["topk", "bottomk"];
const PIPELINE_OPERATIONS: &[&str] = &["by", "coalesce", "select"];

fn precedence(symbol: &str) -> Option<(u8, bool)> {
    // (level, right-associative)
    Some(match symbol {
        "|" => (1, false),
        "&&" | "||" => (2, false),
        "=" | "!=" | "<" | "<=" | ">" | ">=" | "=~" | "!~" | ">>" | "<<" | "~" | "!>" | "!<"
        | "!>>" | "!<<" | "&>" | "&<" | "&>>" | "&<<" | "&~" => (3, false),
        "+" | "-" => (4, false),
        "*" | "/" | "%" => (6, false),
        "^" => (7, true),
        _ => return None,
    })
}

/// Tokens a query may have: evaluation recurses down chains of operators, which must not
/// overflow a thread's stack, and no real query comes near.
pub const MAX_TOKENS: usize = 2_048;
/// Parentheses, unary operators and `^` nested at most this deep.
pub const MAX_DEPTH: usize = 64;

pub fn parse(text: &str) -> Result<Query, ParseError> {
    let mut parser = Parser::new(text)?;
    let root = parser.query(0)?;
    let mut hints = Vec::new();
    if parser.peek() == &Tok::Word("with".into()) {
        parser.advance();
        hints = parser.hints()?;
    }
    parser.expect_end()?;
    Ok(Query {
        root: parser.root(root)?,
        hints,
    })
}

/// One attribute or intrinsic written alone (`resource.service.name`, `span:name`, `.x`,
/// `status`), as the tag-value APIs name the tag they list.
pub fn parse_field(text: &str) -> Result<FieldExpr, ParseError> {
    let mut parser = Parser::new(text)?;
    let field = parser.attribute_argument()?;
    parser.expect_end()?;
    Ok(field)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    next: usize,
    /// How deep `query` and `field` are nested now.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Parser<'a>, ParseError> {
        let tokens = tokens(text)?;
        if tokens.len() > MAX_TOKENS {
            return Err(ParseError::new(
                text,
                tokens[MAX_TOKENS].at,
                format!("the query is longer than {MAX_TOKENS} tokens"),
            ));
        }
        Ok(Parser {
            text,
            tokens,
            next: 0,
            depth: 0,
        })
    }

    /// Runs `parse` one level deeper, refusing past [`MAX_DEPTH`].
    fn nested<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(
                self.at(),
                format!("the query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    fn peek(&self) -> &Tok {
        &self.tokens[self.next].tok
    }

    fn at(&self) -> usize {
        self.tokens[self.next].at
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.next].clone();
        if token.tok != Tok::End {
            self.next += 1;
        }
        token
    }

    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(self.text, at, message)
    }

    fn expected(&self, what: &str) -> ParseError {
        self.error(
            self.at(),
            format!("expected {what}, found {}", self.peek().describe()),
        )
    }

    fn eat(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(s) if *s == symbol) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, symbol: &str) -> Result<(), ParseError> {
        if self.eat(symbol) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{symbol}`")))
        }
    }

    fn expect_end(&self) -> Result<(), ParseError> {
        match self.peek() {
            Tok::End => Ok(()),
            _ => Err(self.expected("an operator or the end of the query")),
        }
    }

    // ---- the query level -------------------------------------------------------------------

    fn query(&mut self, min: u8) -> Result<Node, ParseError> {
        self.nested(|p| p.query_level(min))
    }

    fn query_level(&mut self, min: u8) -> Result<Node, ParseError> {
        let mut lhs = self.query_atom()?;
        while let Tok::Sym(symbol) = *self.peek() {
            let Some((level, right)) = precedence(symbol) else {
                break;
            };
            if level < min {
                break;
            }
            let at = self.advance().at;
            let rhs = self.query(if right { level } else { level + 1 })?;
            lhs = Node::Binary(symbol, Box::new(lhs), Box::new(rhs), at);
        }
        Ok(lhs)
    }

    fn query_atom(&mut self) -> Result<Node, ParseError> {
        let at = self.at();
        match self.peek().clone() {
            Tok::Sym("{") => {
                self.advance();
                if self.eat("}") {
                    return Ok(Node::Filter(FieldExpr::Static(Value::Bool(true)), at));
                }
                let filter = self.field(0)?;
                self.expect("}")?;
                Ok(Node::Filter(filter, at))
            }
            Tok::Sym("(") => {
                self.advance();
                let inner = self.query(0)?;
                self.expect(")")?;
                Ok(Node::Group(Box::new(inner)))
            }
            Tok::Sym("-") => {
                self.advance();
                Ok(Node::Negate(Box::new(self.query(8)?), at))
            }
            Tok::Int(i) => {
                self.advance();
                Ok(Node::Number(Value::Int(i), at))
            }
            Tok::Float(f) => {
                self.advance();
                Ok(Node::Number(Value::Float(f), at))
            }
            Tok::Duration(d) => {
                self.advance();
                Ok(Node::Number(Value::Duration(d), at))
            }
            Tok::Word(name)
                if AGGREGATES.contains(&name.as_str())
                    || METRICS.contains(&name.as_str())
                    || SECOND_STAGE.contains(&name.as_str())
                    || PIPELINE_OPERATIONS.contains(&name.as_str()) =>
            {
                self.advance();
                self.call(name, at).map(Node::Call)
            }
            _ => Err(self.expected("`{`, `(`, a pipeline operation or a number")),
        }
    }

    fn call(&mut self, name: String, at: usize) -> Result<Call, ParseError> {
        self.expect("(")?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                let arg_at = self.at();
                let arg = match self.peek().clone() {
                    Tok::Sym("{") if name == "compare" => {
                        self.advance();
                        let filter = if self.eat("}") {
                            FieldExpr::Static(Value::Bool(true))
                        } else {
                            let f = self.field(0)?;
                            self.expect("}")?;
                            f
                        };
                        Arg::Filter(filter, arg_at)
                    }
                    Tok::Int(i) if !args.is_empty() || SECOND_STAGE.contains(&name.as_str()) => {
                        self.advance();
                        Arg::Number(i as f64, arg_at)
                    }
                    Tok::Float(f) if !args.is_empty() => {
                        self.advance();
                        Arg::Number(f, arg_at)
                    }
                    _ => Arg::Field(self.field(0)?, arg_at),
                };
                args.push(arg);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.expected("`,` or `)`"));
                }
            }
        }
        let mut by = Vec::new();
        if METRICS.contains(&name.as_str()) && self.peek() == &Tok::Word("by".into()) {
            self.advance();
            self.expect("(")?;
            loop {
                by.push(self.attribute_argument()?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.expected("`,` or `)`"));
                }
            }
        }
        Ok(Call { name, at, args, by })
    }

    /// An attribute or intrinsic, as `select(…)`, `by (…)` of metrics and `*_over_time(…)` take.
    fn attribute_argument(&mut self) -> Result<FieldExpr, ParseError> {
        let at = self.at();
        let field = self.field_atom()?;
        match field {
            FieldExpr::Attribute(_) | FieldExpr::Intrinsic(_) => Ok(field),
            _ => Err(self.error(at, "expected an attribute or an intrinsic")),
        }
    }

    fn hints(&mut self) -> Result<Vec<(String, Value)>, ParseError> {
        self.expect("(")?;
        let mut hints = Vec::new();
        loop {
            let Tok::Word(name) = self.peek().clone() else {
                return Err(self.expected("a hint name"));
            };
            self.advance();
            self.expect("=")?;
            let at = self.at();
            match self.field_atom()? {
                FieldExpr::Static(value) => hints.push((name, value)),
                _ => return Err(self.error(at, "expected a value")),
            }
            if self.eat(")") {
                return Ok(hints);
            }
            if !self.eat(",") {
                return Err(self.expected("`,` or `)`"));
            }
        }
    }

    // ---- field expressions (inside `{ }`) --------------------------------------------------

    fn field(&mut self, min: u8) -> Result<FieldExpr, ParseError> {
        self.nested(|p| p.field_level(min))
    }

    fn field_level(&mut self, min: u8) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_unary()?;
        while let Tok::Sym(symbol) = *self.peek() {
            let Some((level, right)) = precedence(symbol) else {
                break;
            };
            if level < min || symbol == "|" {
                break;
            }
            let at = self.at();
            self.advance();
            let rhs_at = self.at();
            let rhs = self.field(if right { level } else { level + 1 })?;
            lhs = self.field_binary(symbol, lhs, rhs, at, rhs_at)?;
        }
        Ok(lhs)
    }

    fn field_unary(&mut self) -> Result<FieldExpr, ParseError> {
        if self.eat("-") {
            return Ok(FieldExpr::Negate(Box::new(self.field(5)?)));
        }
        if self.eat("!") {
            return Ok(FieldExpr::Not(Box::new(self.field(6)?)));
        }
        self.field_atom()
    }

    fn field_binary(
        &self,
        symbol: &'static str,
        lhs: FieldExpr,
        rhs: FieldExpr,
        at: usize,
        rhs_at: usize,
    ) -> Result<FieldExpr, ParseError> {
        let nil = |e: &FieldExpr| matches!(e, FieldExpr::Static(Value::Nil));
        if let Some(op) = CompareOp::from_symbol(symbol) {
            if matches!(op, CompareOp::Eq | CompareOp::Ne) && (nil(&lhs) || nil(&rhs)) {
                if nil(&lhs) && nil(&rhs) {
                    return Ok(FieldExpr::Static(Value::Bool(false)));
                }
                let operand = Box::new(if nil(&lhs) { rhs } else { lhs });
                return Ok(if op == CompareOp::Eq {
                    FieldExpr::Missing(operand)
                } else {
                    FieldExpr::Exists(operand)
                });
            }
            return Ok(FieldExpr::Compare(op, Box::new(lhs), Box::new(rhs)));
        }
        if let Some(op) = ArithmeticOp::from_symbol(symbol) {
            return Ok(FieldExpr::Arithmetic(op, Box::new(lhs), Box::new(rhs)));
        }
        match symbol {
            "&&" => Ok(FieldExpr::And(Box::new(lhs), Box::new(rhs))),
            "||" => Ok(FieldExpr::Or(Box::new(lhs), Box::new(rhs))),
            "=~" | "!~" => {
                let FieldExpr::Static(Value::Str(pattern)) = rhs else {
                    return Err(self.error(rhs_at, "expected a string (a regular expression)"));
                };
                let regex = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| self.error(rhs_at, format!("invalid regular expression: {e}")))?;
                Ok(FieldExpr::Regex {
                    negated: symbol == "!~",
                    operand: Box::new(lhs),
                    regex,
                })
            }
            _ => Err(self.error(
                at,
                format!("`{symbol}` compares spansets; inside `{{ }}` use a comparison"),
            )),
        }
    }

    fn field_atom(&mut self) -> Result<FieldExpr, ParseError> {
        let at = self.at();
        let token = self.peek().clone();
        let expr = match token {
            Tok::Sym("(") => {
                self.advance();
                let inner = self.field(0)?;
                self.expect(")")?;
                return Ok(inner);
            }
            Tok::Str(s) => FieldExpr::Static(Value::Str(s)),
            Tok::Int(i) => FieldExpr::Static(Value::Int(i)),
            Tok::Float(f) => FieldExpr::Static(Value::Float(f)),
            Tok::Duration(d) => FieldExpr::Static(Value::Duration(d)),
            Tok::Attribute {
                scope,
                parent,
                name,
            } => FieldExpr::Attribute(Attribute {
                scope: match scope.as_str() {
                    "span" => Scope::Span,
                    "resource" => Scope::Resource,
                    "event" => Scope::Event,
                    "link" => Scope::Link,
                    "instrumentation" => Scope::Instrumentation,
                    _ => Scope::Any,
                },
                parent,
                name,
            }),
            Tok::Intrinsic { scope, name } => match Intrinsic::scoped(&scope, &name) {
                Some(i) => FieldExpr::Intrinsic(i),
                None => return Err(self.error(at, format!("unknown intrinsic `{scope}:{name}`"))),
            },
            Tok::Word(word) => match word_value(&word) {
                Some(expr) => expr,
                None => {
                    return Err(self.error(
                        at,
                        format!("unknown identifier `{word}`: expected an attribute (`span.{word}`, `resource.{word}`, `.{word}`), an intrinsic or a value"),
                    ))
                }
            },
            _ => return Err(self.expected("an attribute, an intrinsic or a value")),
        };
        self.advance();
        Ok(expr)
    }

    // ---- typing the query level ------------------------------------------------------------

    fn root(&self, node: Node) -> Result<Root, ParseError> {
        if let Some(metrics) = self.metrics_expr(&node)? {
            return Ok(Root::Metrics(metrics));
        }
        Ok(Root::Spans(self.spanset_of(&node)?))
    }

    /// A metrics expression, when `node` is one: a metrics query, queries and numbers combined by
    /// `+ - * /`, and the stages (`| topk(n)`, `| bottomk(n)`, `> value`) after either.
    fn metrics_expr(&self, node: &Node) -> Result<Option<MetricsExpr>, ParseError> {
        match node {
            Node::Group(inner) => self.metrics_expr(inner),
            Node::Binary(symbol, lhs, rhs, at) if ArithmeticOp::from_symbol(symbol).is_some() => {
                let (left, right) = (self.metrics_expr(lhs)?, self.metrics_expr(rhs)?);
                let op = ArithmeticOp::from_symbol(symbol).expect("guarded");
                if (left.is_some() || right.is_some())
                    && !matches!(
                        op,
                        ArithmeticOp::Add
                            | ArithmeticOp::Sub
                            | ArithmeticOp::Mul
                            | ArithmeticOp::Div
                    )
                {
                    return Err(self.error(*at, "metrics queries combine with + - * / only"));
                }
                let scalar = |mut expr: MetricsExpr, number: &Node, number_first: bool| {
                    let value = self.metrics_constant(number, false)?;
                    expr.second_stage_mut().push(SecondStage::Scalar {
                        op,
                        value,
                        number_first,
                    });
                    Ok(Some(expr))
                };
                match (left, right) {
                    (Some(lhs), Some(rhs)) => Ok(Some(MetricsExpr::Math {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                        second_stage: Vec::new(),
                    })),
                    (Some(expr), None) => scalar(expr, rhs, false),
                    (None, Some(expr)) => scalar(expr, lhs, true),
                    (None, None) => Ok(None),
                }
            }
            Node::Binary("|", lhs, rhs, _) if matches!(&**rhs, Node::Call(c) if SECOND_STAGE.contains(&c.name.as_str())) =>
            {
                let Node::Call(call) = &**rhs else {
                    unreachable!("guarded: a second-stage call")
                };
                let Some(mut metrics) = self.metrics_expr(lhs)? else {
                    return Err(self.error(
                        call.at,
                        format!("`{}` follows a metrics function such as rate()", call.name),
                    ));
                };
                let n = match call.args.as_slice() {
                    [Arg::Number(n, _)] if *n >= 1.0 && n.fract() == 0.0 => *n as usize,
                    _ => {
                        return Err(
                            self.error(call.at, "expected a positive whole number of series")
                        )
                    }
                };
                metrics.second_stage_mut().push(if call.name == "topk" {
                    SecondStage::TopK(n)
                } else {
                    SecondStage::BottomK(n)
                });
                Ok(Some(metrics))
            }
            // `(… | rate()) / (… | rate()) > 0.1`: a filter after combined queries.
            Node::Binary(symbol, lhs, value, _)
                if CompareOp::from_symbol(symbol).is_some() && self.is_metrics(lhs) =>
            {
                let Some(mut metrics) = self.metrics_expr(lhs)? else {
                    return Ok(None);
                };
                let op = CompareOp::from_symbol(symbol).expect("guarded");
                let threshold = self.metrics_constant(value, true)?;
                metrics
                    .second_stage_mut()
                    .push(SecondStage::Filter(op, threshold));
                Ok(Some(metrics))
            }
            _ => Ok(self.metrics(node)?.map(|q| MetricsExpr::Query(Box::new(q)))),
        }
    }

    /// A constant of the metrics stages: a number or numbers combined (`60 * 60`, `-(2)`), worked
    /// out here as Tempo does. A duration is seconds in a filter (`> 500ms`: series of durations
    /// are in seconds, and Tempo compares them so); as an operand of arithmetic it is refused
    /// (`with_durations` false), as in Tempo.
    fn metrics_constant(&self, node: &Node, with_durations: bool) -> Result<f64, ParseError> {
        match node {
            Node::Number(Value::Duration(ns), at) => {
                if with_durations {
                    Ok(*ns as f64 / 1e9)
                } else {
                    Err(self.error(
                        *at,
                        "a duration cannot be combined with a metrics query: write seconds as a number",
                    ))
                }
            }
            Node::Number(v, _) => Ok(v.as_f64().unwrap_or(0.0)),
            Node::Negate(inner, _) => Ok(-self.metrics_constant(inner, with_durations)?),
            Node::Group(inner) => self.metrics_constant(inner, with_durations),
            Node::Binary(symbol, lhs, rhs, at) if ArithmeticOp::from_symbol(symbol).is_some() => {
                let (a, b) = (
                    self.metrics_constant(lhs, with_durations)?,
                    self.metrics_constant(rhs, with_durations)?,
                );
                Ok(match ArithmeticOp::from_symbol(symbol).expect("guarded") {
                    ArithmeticOp::Add => a + b,
                    ArithmeticOp::Sub => a - b,
                    ArithmeticOp::Mul => a * b,
                    ArithmeticOp::Div if b == 0.0 => {
                        return Err(self.error(*at, "division by zero in a constant"))
                    }
                    ArithmeticOp::Div => a / b,
                    ArithmeticOp::Mod => a % b,
                    ArithmeticOp::Pow => a.powf(b),
                })
            }
            other => Err(self.error(node_at(other), "expected a number")),
        }
    }

    /// A metrics query (`{…} | rate() by (…)`, `{…} | rate() > 10`), when `node` is one.
    fn metrics(&self, node: &Node) -> Result<Option<MetricsQuery>, ParseError> {
        let Node::Binary("|", lhs, rhs, _) = node else {
            return Ok(None);
        };
        match &**rhs {
            Node::Call(call) if METRICS.contains(&call.name.as_str()) => {
                let pipeline = self.spanset_of(lhs)?;
                Ok(Some(MetricsQuery {
                    pipeline,
                    function: self.metrics_function(call)?,
                    by: call.by.clone(),
                    second_stage: Vec::new(),
                }))
            }
            Node::Binary(symbol, call, value, _)
                if CompareOp::from_symbol(symbol).is_some() && self.is_metrics_call(call) =>
            {
                let (Some(op), Node::Call(call)) = (CompareOp::from_symbol(symbol), &**call) else {
                    unreachable!("guarded: a comparison with a metrics call")
                };
                let threshold = self.metrics_constant(value, true)?;
                Ok(Some(MetricsQuery {
                    pipeline: self.spanset_of(lhs)?,
                    function: self.metrics_function(call)?,
                    by: call.by.clone(),
                    second_stage: vec![SecondStage::Filter(op, threshold)],
                }))
            }
            _ => Ok(None),
        }
    }

    fn is_metrics_call(&self, node: &Node) -> bool {
        matches!(node, Node::Call(c) if METRICS.contains(&c.name.as_str()))
    }

    fn is_metrics(&self, node: &Node) -> bool {
        match node {
            Node::Group(inner) => self.is_metrics(inner),
            Node::Binary("|", _, rhs, _) => {
                self.is_metrics_call(rhs)
                    || matches!(&**rhs, Node::Call(c) if SECOND_STAGE.contains(&c.name.as_str()))
            }
            Node::Binary(symbol, lhs, rhs, _) if ArithmeticOp::from_symbol(symbol).is_some() => {
                self.is_metrics(lhs) || self.is_metrics(rhs)
            }
            Node::Binary(symbol, lhs, _, _) if CompareOp::from_symbol(symbol).is_some() => {
                self.is_metrics(lhs)
            }
            _ => false,
        }
    }

    fn metrics_function(&self, call: &Call) -> Result<MetricsFunction, ParseError> {
        let field = |i: usize| -> Result<FieldExpr, ParseError> {
            match call.args.get(i) {
                Some(Arg::Field(f @ (FieldExpr::Attribute(_) | FieldExpr::Intrinsic(_)), _)) => {
                    Ok(f.clone())
                }
                Some(Arg::Field(_, at) | Arg::Filter(_, at) | Arg::Number(_, at)) => {
                    Err(self.error(*at, "expected an attribute or an intrinsic"))
                }
                None => Err(self.error(
                    call.at,
                    format!("{}() takes an attribute, such as span:duration", call.name),
                )),
            }
        };
        let no_args = || -> Result<(), ParseError> {
            match call.args.first() {
                None => Ok(()),
                Some(Arg::Field(_, at) | Arg::Filter(_, at) | Arg::Number(_, at)) => {
                    Err(self.error(*at, format!("{}() takes no arguments", call.name)))
                }
            }
        };
        Ok(match call.name.as_str() {
            "rate" => {
                no_args()?;
                MetricsFunction::Rate
            }
            "count_over_time" => {
                no_args()?;
                MetricsFunction::CountOverTime
            }
            "min_over_time" => MetricsFunction::MinOverTime(field(0)?),
            "max_over_time" => MetricsFunction::MaxOverTime(field(0)?),
            "sum_over_time" => MetricsFunction::SumOverTime(field(0)?),
            "avg_over_time" => MetricsFunction::AvgOverTime(field(0)?),
            "histogram_over_time" => MetricsFunction::HistogramOverTime(field(0)?),
            "quantile_over_time" => {
                let attribute = field(0)?;
                let mut quantiles = Vec::new();
                for arg in &call.args[1..] {
                    match arg {
                        Arg::Number(q, _) if (0.0..=1.0).contains(q) => quantiles.push(*q),
                        Arg::Number(_, at) | Arg::Field(_, at) | Arg::Filter(_, at) => {
                            return Err(self.error(*at, "expected a quantile between 0 and 1"))
                        }
                    }
                }
                if quantiles.is_empty() {
                    return Err(self.error(
                        call.at,
                        "quantile_over_time() takes an attribute and at least one quantile",
                    ));
                }
                MetricsFunction::QuantileOverTime(attribute, quantiles)
            }
            "compare" => {
                let Some(Arg::Filter(selection, _)) = call.args.first() else {
                    return Err(self.error(call.at, "compare() takes a spanset filter first"));
                };
                let mut numbers = Vec::new();
                for arg in &call.args[1..] {
                    match arg {
                        Arg::Number(n, _) if n.fract() == 0.0 && *n >= 0.0 => {
                            numbers.push(*n as i64)
                        }
                        Arg::Number(_, at) | Arg::Field(_, at) | Arg::Filter(_, at) => {
                            return Err(self.error(*at, "expected a whole number"))
                        }
                    }
                }
                let (top, start_ns, end_ns) = match numbers.as_slice() {
                    [] => (10, 0, 0),
                    [top] => (*top, 0, 0),
                    [top, start, end] => (*top, *start, *end),
                    _ => {
                        return Err(self.error(
                            call.at,
                            "compare() takes a filter, then a top count, then optionally a start and an end",
                        ))
                    }
                };
                if !(1..=1000).contains(&top) {
                    return Err(
                        self.error(call.at, "compare()'s top count must be between 1 and 1000")
                    );
                }
                MetricsFunction::Compare {
                    selection: selection.clone(),
                    top: top as usize,
                    start_ns,
                    end_ns,
                }
            }
            _ => unreachable!("only called for metrics functions"),
        })
    }

    fn spanset_of(&self, node: &Node) -> Result<SpansetExpr, ParseError> {
        match node {
            Node::Filter(f, _) => Ok(SpansetExpr::Filter(f.clone())),
            Node::Group(inner) => self.spanset_of(inner),
            Node::Binary("|", ..) => Ok(SpansetExpr::Pipeline(self.stages(node)?)),
            Node::Binary(symbol, lhs, rhs, at) => {
                if self.is_scalar(lhs) || self.is_scalar(rhs) {
                    return Ok(SpansetExpr::ScalarFilter(self.scalar_filter(node)?));
                }
                let Some(op) = SpansetOp::from_symbol(symbol) else {
                    return Err(self.error(
                        *at,
                        format!("`{symbol}` does not combine spansets (expected `&&`, `||` or a structural operator)"),
                    ));
                };
                Ok(SpansetExpr::Pair(
                    op,
                    Box::new(self.spanset_of(lhs)?),
                    Box::new(self.spanset_of(rhs)?),
                ))
            }
            Node::Call(call) if PIPELINE_OPERATIONS.contains(&call.name.as_str()) => {
                Ok(SpansetExpr::Pipeline(vec![self.stage(node)?]))
            }
            other => Err(self.error(node_at(other), "expected a spanset such as `{ … }`")),
        }
    }

    fn stages(&self, node: &Node) -> Result<Vec<Stage>, ParseError> {
        match node {
            Node::Binary("|", lhs, rhs, _) => {
                let mut stages = self.stages(lhs)?;
                stages.push(self.stage(rhs)?);
                Ok(stages)
            }
            _ => Ok(vec![self.stage(node)?]),
        }
    }

    fn stage(&self, node: &Node) -> Result<Stage, ParseError> {
        match node {
            Node::Call(call) if call.name == "coalesce" => {
                if let Some(Arg::Field(_, at) | Arg::Filter(_, at) | Arg::Number(_, at)) =
                    call.args.first()
                {
                    return Err(self.error(*at, "coalesce() takes no arguments"));
                }
                Ok(Stage::Coalesce)
            }
            Node::Call(call) if call.name == "by" => match call.args.as_slice() {
                [Arg::Field(f, at)] => Ok(Stage::By(
                    f.clone(),
                    format!("by({})", self.source_text(*at)),
                )),
                _ => Err(self.error(call.at, "by() takes one field expression")),
            },
            Node::Call(call) if call.name == "select" => {
                let mut fields = Vec::new();
                for arg in &call.args {
                    match arg {
                        Arg::Field(f @ (FieldExpr::Attribute(_) | FieldExpr::Intrinsic(_)), _) => {
                            fields.push(f.clone())
                        }
                        Arg::Field(_, at) | Arg::Filter(_, at) | Arg::Number(_, at) => {
                            return Err(self.error(*at, "expected an attribute or an intrinsic"))
                        }
                    }
                }
                if fields.is_empty() {
                    return Err(self.error(call.at, "select() takes at least one attribute"));
                }
                Ok(Stage::Select(fields))
            }
            Node::Call(call) if METRICS.contains(&call.name.as_str()) => Err(self.error(
                call.at,
                format!(
                    "{}() ends a query: nothing may follow it but topk/bottomk or a comparison",
                    call.name
                ),
            )),
            Node::Call(call) if AGGREGATES.contains(&call.name.as_str()) => Err(self.error(
                call.at,
                format!(
                    "{}() must be compared with a value, such as `| {}(…) > 2`",
                    call.name, call.name
                ),
            )),
            Node::Binary(_, lhs, rhs, _) if self.is_scalar(lhs) || self.is_scalar(rhs) => {
                Ok(Stage::ScalarFilter(self.scalar_filter(node)?))
            }
            _ => Ok(Stage::Spans(self.spanset_of(node)?)),
        }
    }

    /// The argument text of `by(…)` as written, up to its closing parenthesis.
    fn source_text(&self, at: usize) -> String {
        let mut depth = 0;
        for (i, c) in self.text[at..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => return self.text[at..at + i].trim().to_string(),
                ')' => depth -= 1,
                _ => {}
            }
        }
        self.text[at..].trim().to_string()
    }

    fn is_scalar(&self, node: &Node) -> bool {
        match node {
            Node::Number(..) => true,
            Node::Negate(inner, _) => self.is_scalar(inner),
            Node::Call(call) => AGGREGATES.contains(&call.name.as_str()),
            Node::Binary(symbol, lhs, rhs, _) => {
                ArithmeticOp::from_symbol(symbol).is_some()
                    && (self.is_scalar(lhs) || self.is_scalar(rhs))
            }
            Node::Group(inner) => match &**inner {
                Node::Binary("|", _, rhs, _) => {
                    matches!(&**rhs, Node::Call(c) if AGGREGATES.contains(&c.name.as_str()))
                }
                other => self.is_scalar(other),
            },
            Node::Filter(..) => false,
        }
    }

    fn scalar_filter(&self, node: &Node) -> Result<ScalarFilter, ParseError> {
        let Node::Binary(symbol, lhs, rhs, at) = node else {
            unreachable!("called on comparisons")
        };
        let Some(op) = CompareOp::from_symbol(symbol) else {
            return Err(self.error(*at, format!("expected a comparison, found `{symbol}`")));
        };
        Ok(ScalarFilter {
            op,
            lhs: self.scalar(lhs)?,
            rhs: self.scalar(rhs)?,
        })
    }

    fn scalar(&self, node: &Node) -> Result<Scalar, ParseError> {
        match node {
            Node::Number(v, _) => Ok(Scalar::Static(v.clone())),
            Node::Negate(inner, _) => Ok(Scalar::Arithmetic(
                ArithmeticOp::Sub,
                Box::new(Scalar::Static(Value::Int(0))),
                Box::new(self.scalar(inner)?),
            )),
            Node::Call(call) if AGGREGATES.contains(&call.name.as_str()) => {
                Ok(Scalar::Aggregate(self.aggregate(call)?))
            }
            Node::Binary(symbol, lhs, rhs, at) => match ArithmeticOp::from_symbol(symbol) {
                Some(op) => Ok(Scalar::Arithmetic(
                    op,
                    Box::new(self.scalar(lhs)?),
                    Box::new(self.scalar(rhs)?),
                )),
                None => Err(self.error(*at, format!("`{symbol}` does not combine numbers"))),
            },
            Node::Group(inner) => match &**inner {
                Node::Binary("|", pipeline, call, _) => match &**call {
                    Node::Call(c) if AGGREGATES.contains(&c.name.as_str()) => Ok(Scalar::Pipeline(
                        Box::new(self.spanset_of(pipeline)?),
                        self.aggregate(c)?,
                    )),
                    other => {
                        Err(self.error(node_at(other), "expected an aggregate such as count()"))
                    }
                },
                other => self.scalar(other),
            },
            other => Err(self.error(
                node_at(other),
                "expected a number or an aggregate such as count()",
            )),
        }
    }

    fn aggregate(&self, call: &Call) -> Result<Aggregate, ParseError> {
        let kind = match call.name.as_str() {
            "count" => AggregateKind::Count,
            "avg" => AggregateKind::Avg,
            "min" => AggregateKind::Min,
            "max" => AggregateKind::Max,
            _ => AggregateKind::Sum,
        };
        match (kind, call.args.as_slice()) {
            (AggregateKind::Count, []) => Ok(Aggregate { kind, field: None }),
            (AggregateKind::Count, [first, ..]) => {
                Err(self.error(arg_at(first), "count() takes no arguments"))
            }
            (_, [Arg::Field(f, _)]) => Ok(Aggregate {
                kind,
                field: Some(f.clone()),
            }),
            _ => Err(self.error(
                call.at,
                format!(
                    "{}() takes one field, such as {}(duration)",
                    call.name, call.name
                ),
            )),
        }
    }
}

fn arg_at(arg: &Arg) -> usize {
    match arg {
        Arg::Field(_, at) | Arg::Filter(_, at) | Arg::Number(_, at) => *at,
    }
}

fn node_at(node: &Node) -> usize {
    match node {
        Node::Group(inner) => node_at(inner),
        Node::Binary(_, lhs, _, _) => node_at(lhs),
        Node::Call(c) => c.at,
        Node::Filter(_, at) | Node::Number(_, at) | Node::Negate(_, at) => *at,
    }
}

/// A bare word inside `{ }`: a value, an enum or a legacy intrinsic.
fn word_value(word: &str) -> Option<FieldExpr> {
    let value = match word {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "nil" => Value::Nil,
        "minInt" => Value::Int(i64::MIN),
        "maxInt" => Value::Int(i64::MAX),
        _ => {
            if let Some(i) = STATUS_NAMES.iter().position(|s| *s == word) {
                Value::Status(i as i32)
            } else if let Some(i) = KIND_NAMES.iter().position(|k| *k == word) {
                Value::Kind(i as i32)
            } else {
                return Intrinsic::unscoped(word).map(FieldExpr::Intrinsic);
            }
        }
    };
    Some(FieldExpr::Static(value))
}
