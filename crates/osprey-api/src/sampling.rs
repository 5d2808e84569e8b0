//! Jaeger remote sampling: `GET /api/sampling?service=` (and `/sampling`, where SDKs' remote
//! samplers ask on port 5778) answers each service's sampling strategy from a strategies file in
//! Jaeger's own format (`--sampling-strategies`), so SDKs configured for Jaeger remote sampling
//! take their rates from Osprey.
//!
//! The file, as Jaeger's `--sampling.strategies-file`:
//! `{"service_strategies": [{"service", "type": "probabilistic"|"ratelimiting", "param",
//! "operation_strategies": [{"operation", "type": "probabilistic", "param"}]}],
//! "default_strategy": {"type", "param", "operation_strategies"}}`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::params::Params;
use crate::{ApiError, PlainText};

/// Jaeger's sampling probability when no strategy is configured.
const DEFAULT_PROBABILITY: f64 = 0.001;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategiesFile {
    #[serde(default)]
    service_strategies: Vec<ServiceStrategy>,
    default_strategy: Option<Strategy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceStrategy {
    service: String,
    #[serde(rename = "type")]
    kind: Kind,
    param: f64,
    #[serde(default)]
    operation_strategies: Vec<OperationStrategy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strategy {
    #[serde(rename = "type")]
    kind: Kind,
    param: f64,
    #[serde(default)]
    operation_strategies: Vec<OperationStrategy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationStrategy {
    operation: String,
    #[serde(rename = "type")]
    kind: Kind,
    param: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Probabilistic,
    Ratelimiting,
}

/// The strategies served: those of the file, or Jaeger's default (probabilistic, 0.001).
#[derive(Debug, Clone)]
pub struct SamplingStrategies {
    services: Vec<ServiceStrategy>,
    default: Strategy,
}

impl Default for SamplingStrategies {
    fn default() -> Self {
        SamplingStrategies {
            services: Vec::new(),
            default: Strategy {
                kind: Kind::Probabilistic,
                param: DEFAULT_PROBABILITY,
                operation_strategies: Vec::new(),
            },
        }
    }
}

/// A rate a strategy may carry: a probability in [0, 1], or whole traces a second.
fn check(kind: Kind, param: f64, what: &str) -> Result<(), String> {
    match kind {
        Kind::Probabilistic if !(0.0..=1.0).contains(&param) => Err(format!(
            "{what}: a probabilistic param is a probability from 0 to 1, not {param}"
        )),
        Kind::Ratelimiting if param < 0.0 || param.fract() != 0.0 || param > i32::MAX as f64 => {
            Err(format!(
                "{what}: a ratelimiting param is a whole number of traces a second, not {param}"
            ))
        }
        _ => Ok(()),
    }
}

fn check_operations(operations: &[OperationStrategy], what: &str) -> Result<(), String> {
    for op in operations {
        if op.kind != Kind::Probabilistic {
            return Err(format!(
                "{what}, operation {:?}: only probabilistic strategies apply to operations",
                op.operation
            ));
        }
        check(
            op.kind,
            op.param,
            &format!("{what}, operation {:?}", op.operation),
        )?;
    }
    Ok(())
}

impl SamplingStrategies {
    /// Reads a strategies file (JSON in Jaeger's format); the error names what is wrong.
    pub fn from_json(text: &str) -> Result<SamplingStrategies, String> {
        let file: StrategiesFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let default = file
            .default_strategy
            .unwrap_or(SamplingStrategies::default().default);
        check(default.kind, default.param, "default_strategy")?;
        check_operations(&default.operation_strategies, "default_strategy")?;
        for s in &file.service_strategies {
            let what = format!("service {:?}", s.service);
            check(s.kind, s.param, &what)?;
            check_operations(&s.operation_strategies, &what)?;
        }
        Ok(SamplingStrategies {
            services: file.service_strategies,
            default,
        })
    }

    /// The strategy of `service` as Jaeger's `SamplingStrategyResponse` in protobuf JSON: the
    /// service's own, else the default. A probabilistic one carries its operations' rates (the
    /// default strategy's operations too, unless the service names them), as Jaeger's static
    /// strategies do.
    pub fn response(&self, service: &str) -> serde_json::Value {
        let own = self.services.iter().find(|s| s.service == service);
        let (kind, param, operations) = match own {
            Some(s) => (s.kind, s.param, s.operation_strategies.clone()),
            None => (
                self.default.kind,
                self.default.param,
                self.default.operation_strategies.clone(),
            ),
        };
        if kind == Kind::Ratelimiting {
            return json!({
                "strategyType": "RATE_LIMITING",
                "rateLimitingSampling": {"maxTracesPerSecond": param as i64},
            });
        }
        let mut operations = operations;
        if own.is_some() {
            for op in &self.default.operation_strategies {
                if !operations.iter().any(|o| o.operation == op.operation) {
                    operations.push(op.clone());
                }
            }
        }
        let mut answer = json!({
            "strategyType": "PROBABILISTIC",
            "probabilisticSampling": {"samplingRate": param},
        });
        if !operations.is_empty() {
            answer["operationSampling"] = json!({
                "defaultSamplingProbability": param,
                "defaultLowerBoundTracesPerSecond": 0,
                "perOperationStrategies": operations
                    .iter()
                    .map(|o| json!({
                        "operation": o.operation,
                        "probabilisticSampling": {"samplingRate": o.param},
                    }))
                    .collect::<Vec<_>>(),
            });
        }
        answer
    }
}

/// `/api/sampling` (the query port's path) and `/sampling` (where Jaeger's agent port 5778
/// answers SDKs), both with `?service=`.
pub fn routes<S: Clone + Send + Sync + 'static>(strategies: Arc<SamplingStrategies>) -> Router<S> {
    Router::new()
        .route("/api/sampling", get(sampling))
        .route("/sampling", get(sampling))
        .with_state(strategies)
}

async fn sampling(
    State(strategies): State<Arc<SamplingStrategies>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError<PlainText>> {
    let service = Params::parse(query.as_deref())?
        .get(&["service"])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "'service' parameter must be provided once".to_string())?;
    Ok(Json(strategies.response(&service)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_get_their_own_strategy_or_the_default() {
        let strategies = SamplingStrategies::from_json(
            r#"{"service_strategies": [
                {"service": "shop", "type": "probabilistic", "param": 0.5,
                 "operation_strategies": [{"operation": "health", "type": "probabilistic", "param": 0}]},
                {"service": "batch", "type": "ratelimiting", "param": 5}],
              "default_strategy": {"type": "probabilistic", "param": 1,
                "operation_strategies": [{"operation": "login", "type": "probabilistic", "param": 0.9}]}}"#,
        )
        .unwrap();
        let shop = strategies.response("shop");
        assert_eq!(shop["probabilisticSampling"]["samplingRate"], 0.5);
        let operations = &shop["operationSampling"]["perOperationStrategies"];
        assert_eq!(operations[0]["operation"], "health");
        assert_eq!(
            operations[1]["operation"], "login",
            "the default's operations too"
        );
        assert_eq!(
            strategies.response("batch"),
            json!({"strategyType": "RATE_LIMITING", "rateLimitingSampling": {"maxTracesPerSecond": 5}})
        );
        assert_eq!(
            strategies.response("other")["probabilisticSampling"]["samplingRate"],
            1.0
        );
        assert_eq!(
            SamplingStrategies::default().response("any")["probabilisticSampling"]["samplingRate"],
            0.001
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, reason) in [
            (
                r#"{"default_strategy": {"type": "probabilistic", "param": 2}}"#,
                "from 0 to 1",
            ),
            (
                r#"{"service_strategies": [{"service": "a", "type": "ratelimiting", "param": 1.5}]}"#,
                "whole number",
            ),
            (
                r#"{"default_strategy": {"type": "sometimes", "param": 1}}"#,
                "unknown variant",
            ),
            (r#"{"service_strategy": []}"#, "unknown field"),
        ] {
            let error = SamplingStrategies::from_json(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
