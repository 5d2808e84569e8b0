//! TraceQL values and how they compare and combine. Comparisons between values of different kinds
//! are false (a string is never equal to a number), except that integers, floats and durations
//! compare as numbers (durations in nanoseconds); an array attribute matches when any element does.

use std::cmp::Ordering;
use std::fmt;

use osprey_model::otlp::any_value::Value as Any;

use super::ast::{ArithmeticOp, CompareOp};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Nanoseconds.
    Duration(i64),
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    Status(i32),
    /// OTLP span kind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    Kind(i32),
    Array(Vec<Value>),
}

pub const STATUS_NAMES: [&str; 3] = ["unset", "ok", "error"];
pub const KIND_NAMES: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];

impl Value {
    pub fn from_any(value: Option<&Any>) -> Value {
        match value {
            Some(Any::StringValue(s)) => Value::Str(s.clone()),
            Some(Any::IntValue(i)) => Value::Int(*i),
            Some(Any::DoubleValue(d)) => Value::Float(*d),
            Some(Any::BoolValue(b)) => Value::Bool(*b),
            Some(Any::ArrayValue(a)) => Value::Array(
                a.values
                    .iter()
                    .map(|v| Value::from_any(v.value.as_ref()))
                    .collect(),
            ),
            _ => Value::Nil,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The value as a float, for comparisons, aggregates and metrics (durations in nanoseconds).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) | Value::Duration(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// How two values order, when they can be compared at all.
    fn order(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Int(a), Int(b)) | (Duration(a), Duration(b)) => Some(a.cmp(b)),
            (Str(a), Str(b)) => Some(a.cmp(b)),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Status(a), Status(b)) | (Kind(a), Kind(b)) => Some(a.cmp(b)),
            _ => {
                let (a, b) = (self.as_f64()?, other.as_f64()?);
                a.partial_cmp(&b)
            }
        }
    }

    pub fn compare(&self, op: CompareOp, other: &Value) -> bool {
        // An array matches when an element does; `!=` when none is equal (as Tempo's "not in").
        let array = |items: &[Value], one: &dyn Fn(&Value) -> bool| {
            if op == CompareOp::Ne {
                !items.is_empty() && items.iter().all(one)
            } else {
                items.iter().any(one)
            }
        };
        if let Value::Array(items) = self {
            return array(items, &|v| v.compare(op, other));
        }
        if let Value::Array(items) = other {
            return array(items, &|v| self.compare(op, v));
        }
        let Some(order) = self.order(other) else {
            return false;
        };
        match op {
            CompareOp::Eq => order == Ordering::Equal,
            CompareOp::Ne => order != Ordering::Equal,
            CompareOp::Lt => order == Ordering::Less,
            CompareOp::Le => order != Ordering::Greater,
            CompareOp::Gt => order == Ordering::Greater,
            CompareOp::Ge => order != Ordering::Less,
        }
    }

    pub fn arithmetic(&self, op: ArithmeticOp, other: &Value) -> Value {
        use Value::*;
        let int = |a: i64, b: i64| -> Option<i64> {
            match op {
                ArithmeticOp::Add => a.checked_add(b),
                ArithmeticOp::Sub => a.checked_sub(b),
                ArithmeticOp::Mul => a.checked_mul(b),
                ArithmeticOp::Div => a.checked_div(b),
                ArithmeticOp::Mod => a.checked_rem(b),
                ArithmeticOp::Pow => u32::try_from(b).ok().and_then(|b| a.checked_pow(b)),
            }
        };
        match (self, other) {
            (Int(a), Int(b)) => int(*a, *b).map_or(Nil, Int),
            // Durations keep their kind through sums and scaling.
            (Duration(a), Duration(b)) if matches!(op, ArithmeticOp::Add | ArithmeticOp::Sub) => {
                int(*a, *b).map_or(Nil, Duration)
            }
            (Duration(a), Int(b)) if matches!(op, ArithmeticOp::Mul | ArithmeticOp::Div) => {
                int(*a, *b).map_or(Nil, Duration)
            }
            _ => {
                let (Some(a), Some(b)) = (self.as_f64(), other.as_f64()) else {
                    return Nil;
                };
                let result = match op {
                    ArithmeticOp::Add => a + b,
                    ArithmeticOp::Sub => a - b,
                    ArithmeticOp::Mul => a * b,
                    ArithmeticOp::Div => a / b,
                    ArithmeticOp::Mod => a % b,
                    ArithmeticOp::Pow => a.powf(b),
                };
                if result.is_finite() {
                    Float(result)
                } else {
                    Nil
                }
            }
        }
    }

    /// The value as Tempo types it in tag-value answers: `string`, `int`, `float`, `bool`,
    /// `duration`, `keyword` (status and kind).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) | Value::Array(_) => "string",
            Value::Duration(_) => "duration",
            Value::Status(_) | Value::Kind(_) => "keyword",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Duration(ns) => f.write_str(&duration_text(*ns)),
            Value::Status(s) => f.write_str(STATUS_NAMES.get(*s as usize).unwrap_or(&"unset")),
            Value::Kind(k) => f.write_str(KIND_NAMES.get(*k as usize).unwrap_or(&"unspecified")),
            Value::Array(items) => {
                let texts: Vec<String> = items.iter().map(|v| v.to_string()).collect();
                write!(f, "[{}]", texts.join(", "))
            }
        }
    }
}

/// A duration as Go prints it (`1.5s`, `250ms`, `2m30s`), which is how Tempo shows durations.
pub fn duration_text(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    let trim = |x: f64| {
        let text = format!("{x:.9}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if ns < 1_000 {
        return format!("{sign}{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{sign}{}µs", trim(ns as f64 / 1e3));
    }
    if ns < 1_000_000_000 {
        return format!("{sign}{}ms", trim(ns as f64 / 1e6));
    }
    let (hours, rest) = (ns / 3_600_000_000_000, ns % 3_600_000_000_000);
    let (minutes, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let seconds = trim(rest as f64 / 1e9);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}
