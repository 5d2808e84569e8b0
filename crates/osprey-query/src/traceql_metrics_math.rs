//! Metrics queries combined by arithmetic, as Tempo combines them: `({status = error} | rate()) /
//! ({} | rate())` matches the two sides' series by their labels (all but `__name__`), and a side
//! with one unlabelled series (a query without `by`) applies to every series of the other; a
//! number applies to every value. Division by zero gives no value (NaN), as in Tempo.

use std::collections::HashMap;

use crate::traceql::{ArithmeticOp, Value};
use crate::traceql_metrics::Series;

/// The label every unlabelled series carries: the function's name.
const NAME: &str = "__name__";

/// A series' labels but its name, as text: what matches it with the other side's.
fn match_key(series: &Series) -> String {
    let labels: Vec<&(String, Value)> = series.labels.iter().filter(|(k, _)| k != NAME).collect();
    format!("{labels:?}")
}

fn apply(op: ArithmeticOp, lhs: f64, rhs: f64) -> f64 {
    match op {
        ArithmeticOp::Add => lhs + rhs,
        ArithmeticOp::Sub => lhs - rhs,
        ArithmeticOp::Mul => lhs * rhs,
        ArithmeticOp::Div if rhs == 0.0 => f64::NAN,
        ArithmeticOp::Div => lhs / rhs,
        // The parser lets only + - * / combine metrics queries.
        ArithmeticOp::Mod | ArithmeticOp::Pow => f64::NAN,
    }
}

fn symbol(op: ArithmeticOp) -> &'static str {
    match op {
        ArithmeticOp::Add => "+",
        ArithmeticOp::Sub => "-",
        ArithmeticOp::Mul => "*",
        ArithmeticOp::Div => "/",
        ArithmeticOp::Mod => "%",
        ArithmeticOp::Pow => "^",
    }
}

/// The labels of a combined series: the left side's, then the right side's it lacks; the name
/// `(left op right)` when both sides are named, else none.
fn merged_labels(op: ArithmeticOp, lhs: &Series, rhs: &Series) -> Vec<(String, Value)> {
    let name = |s: &Series| {
        s.labels.iter().find_map(|(k, v)| match v {
            Value::Str(name) if k == NAME => Some(name.clone()),
            _ => None,
        })
    };
    let mut labels: Vec<(String, Value)> = lhs
        .labels
        .iter()
        .filter(|(k, _)| k != NAME)
        .cloned()
        .collect();
    for (key, value) in &rhs.labels {
        if key != NAME && !labels.iter().any(|(k, _)| k == key) {
            labels.push((key.clone(), value.clone()));
        }
    }
    if let (Some(left), Some(right)) = (name(lhs), name(rhs)) {
        let combined = format!("({left} {} {right})", symbol(op));
        labels.insert(0, (NAME.to_string(), Value::Str(combined)));
    }
    labels
}

/// `lhs op rhs`, series by series.
pub(crate) fn combine(op: ArithmeticOp, lhs: Vec<Series>, rhs: Vec<Series>) -> Vec<Series> {
    let keyed = |series: &[Series]| -> HashMap<String, usize> {
        series
            .iter()
            .enumerate()
            .map(|(i, s)| (match_key(s), i))
            .collect()
    };
    let (left, right) = (keyed(&lhs), keyed(&rhs));
    let unlabelled = format!("{:?}", Vec::<&(String, Value)>::new());
    // The side whose series are walked: the right, unless it is a single unlabelled series
    // applying to all of the left's.
    let target = if right.contains_key(&unlabelled) {
        &lhs
    } else {
        &rhs
    };
    // A side's series matching `key`: its own, or its unlabelled one (applying to all: `true`).
    let find = |side: &HashMap<String, usize>, key: &str| {
        side.get(key)
            .map(|&i| (i, false))
            .or_else(|| side.get(&unlabelled).map(|&i| (i, true)))
    };
    let mut out = Vec::new();
    for series in target {
        let key = match_key(series);
        let (Some((l, l_all)), Some((r, r_all))) = (find(&left, &key), find(&right, &key)) else {
            continue;
        };
        let (l, r) = (&lhs[l], &rhs[r]);
        let values = l
            .values
            .iter()
            .zip(&r.values)
            .map(|(a, b)| apply(op, *a, *b))
            .collect();
        // Exemplars of the side that is not applied to every series (both, when neither is or
        // both are).
        let exemplars = match (l_all, r_all) {
            (true, false) => r.exemplars.clone(),
            (false, true) => l.exemplars.clone(),
            _ => l.exemplars.iter().chain(&r.exemplars).cloned().collect(),
        };
        out.push(Series {
            labels: merged_labels(op, l, r),
            values,
            exemplars,
        });
    }
    out
}

/// Every value (and exemplar value) of `series` with `value`: `v op value`, or `value op v` when
/// the number comes first.
pub(crate) fn apply_scalar(
    op: ArithmeticOp,
    value: f64,
    number_first: bool,
    series: &mut [Series],
) {
    let with = |v: f64| {
        if number_first {
            apply(op, value, v)
        } else {
            apply(op, v, value)
        }
    };
    for s in series {
        for v in s.values.iter_mut() {
            *v = with(*v);
        }
        for e in s.exemplars.iter_mut() {
            e.value = with(e.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], values: &[f64]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                .collect(),
            values: values.to_vec(),
            exemplars: Vec::new(),
        }
    }

    #[test]
    fn series_match_by_labels_and_an_unlabelled_side_applies_to_all() {
        let errors = vec![
            series(&[("svc", "a")], &[1.0, 0.0]),
            series(&[("svc", "b")], &[2.0, 4.0]),
        ];
        let all = vec![
            series(&[("svc", "a")], &[4.0, 0.0]),
            series(&[("svc", "c")], &[1.0, 1.0]),
        ];
        let ratio = combine(ArithmeticOp::Div, errors.clone(), all);
        assert_eq!(ratio.len(), 1, "only labels both sides have");
        assert_eq!(ratio[0].labels, series(&[("svc", "a")], &[]).labels);
        assert_eq!(ratio[0].values[0], 0.25);
        assert!(ratio[0].values[1].is_nan(), "0 / 0 has no value");

        let total = vec![series(&[(NAME, "rate")], &[10.0, 8.0])];
        let share = combine(ArithmeticOp::Div, errors, total.clone());
        assert_eq!(share.len(), 2);
        assert_eq!(share[1].values, [0.2, 0.5]);
        let sum = combine(ArithmeticOp::Add, total.clone(), total);
        assert_eq!(sum[0].values, [20.0, 16.0]);
        assert_eq!(
            sum[0].labels,
            series(&[(NAME, "(rate + rate)")], &[]).labels
        );
    }

    #[test]
    fn a_number_applies_to_every_value_on_its_side() {
        let mut s = vec![series(&[], &[2.0, 0.0])];
        apply_scalar(ArithmeticOp::Sub, 10.0, true, &mut s);
        assert_eq!(s[0].values, [8.0, 10.0]);
        apply_scalar(ArithmeticOp::Div, 2.0, false, &mut s);
        assert_eq!(s[0].values, [4.0, 5.0]);
        apply_scalar(ArithmeticOp::Div, 0.0, false, &mut s);
        assert!(s[0].values.iter().all(|v| v.is_nan()));
    }
}
