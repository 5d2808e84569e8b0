//! Tags and tag values, v1 and v2, from the spans of the asked time range (all time when none is
//! given), optionally narrowed by a TraceQL query (`q`, v2).

use std::collections::BTreeSet;

use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use osprey_query::traceql::{
    parse, parse_field, Attribute, FieldExpr, Intrinsic, Root, Scope, SpansetExpr, Value,
};
use osprey_query::traceql_tags::{ATTRIBUTE_SCOPES, INTRINSIC_TAGS};

use super::{invalid_query, time_range, Answer};
use crate::params::Params;
use crate::{ApiError, ApiState, PlainText};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(values_v2))
}

/// What a tags or tag-values request asks.
struct Asked {
    range: (u64, u64),
    /// `q`: only the spans this selects.
    filter: Option<SpansetExpr>,
    params: Params,
}

fn request(query: Option<&str>) -> Result<Asked, String> {
    let params = Params::parse(query)?;
    let range = time_range(&params)?;
    let filter = match params.get(&["q"]) {
        // Grafana sends `{}` when nothing narrows the list.
        None => None,
        Some(q) if q.trim() == "{}" => None,
        Some(q) => match parse(q).map_err(invalid_query)?.root {
            Root::Spans(expr) => Some(expr),
            Root::Metrics(_) => {
                return Err("invalid TraceQL query: expected a spanset query".into())
            }
        },
    };
    Ok(Asked {
        range,
        filter,
        params,
    })
}

/// The scopes asked for: one, or all (with `intrinsic`) when `scope` is absent or `all`.
fn scopes(p: &Params) -> Result<Vec<&'static str>, String> {
    let all: Vec<&'static str> = ATTRIBUTE_SCOPES
        .iter()
        .copied()
        .chain(["intrinsic"])
        .collect();
    match p.get(&["scope"]) {
        None | Some("all") => Ok(all),
        Some(s) => all.iter().find(|a| **a == s).map(|a| vec![*a]).ok_or_else(|| {
            format!(
                "invalid scope {s:?}: expected one of span, resource, event, link, instrumentation, intrinsic, all"
            )
        }),
    }
}

async fn tag_names(
    state: &ApiState,
    query: Option<String>,
) -> Result<Vec<(&'static str, Vec<String>)>, ApiError<PlainText>> {
    let Asked {
        range,
        filter,
        params,
    } = request(query.as_deref())?;
    let wanted = scopes(&params)?;
    let names = state
        .run("tempo_tags", move |q| q.tag_names(range, filter.as_ref()))
        .await?;
    Ok(wanted
        .into_iter()
        .map(|scope| {
            let tags: Vec<String> = if scope == "intrinsic" {
                INTRINSIC_TAGS.iter().map(|s| s.to_string()).collect()
            } else {
                names.get(scope).into_iter().flatten().cloned().collect()
            };
            (scope, tags)
        })
        .collect())
}

async fn tags_v1(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let scopes = tag_names(&state, query).await?;
    // Intrinsics only when that scope alone is asked for.
    let only_intrinsics = scopes.len() == 1;
    let names: BTreeSet<String> = scopes
        .into_iter()
        .filter(|(scope, _)| *scope != "intrinsic" || only_intrinsics)
        .flat_map(|(_, tags)| tags)
        .collect();
    Ok(Json(json!({ "tagNames": names })).into_response())
}

async fn tags_v2(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let scopes = tag_names(&state, query).await?;
    Ok(Json(json!({
        "scopes": scopes
            .into_iter()
            .filter(|(_, tags)| !tags.is_empty())
            .map(|(name, tags)| json!({"name": name, "tags": tags}))
            .collect::<Vec<_>>()
    }))
    .into_response())
}

async fn values(
    state: &ApiState,
    field: FieldExpr,
    query: Option<String>,
) -> Result<Vec<Value>, ApiError<PlainText>> {
    // Statuses and kinds: every value the language has, as Tempo lists them.
    match field {
        FieldExpr::Intrinsic(Intrinsic::Status) => {
            return Ok((0..3).map(Value::Status).rev().collect())
        }
        FieldExpr::Intrinsic(Intrinsic::Kind) => return Ok((0..6).map(Value::Kind).collect()),
        _ => {}
    }
    let Asked { range, filter, .. } = request(query.as_deref())?;
    Ok(state
        .run("tempo_tag_values", move |q| {
            q.tag_values(range, &field, filter.as_ref())
        })
        .await?)
}

/// v1 names an attribute without its scope (`service.name`), or an intrinsic.
async fn values_v1(
    State(state): State<ApiState>,
    Path(tag): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let field = match Intrinsic::unscoped(&tag) {
        Some(i) => FieldExpr::Intrinsic(i),
        None => FieldExpr::Attribute(Attribute {
            scope: Scope::Any,
            parent: false,
            name: tag,
        }),
    };
    let values = values(&state, field, query).await?;
    let texts: BTreeSet<String> = values.iter().map(|v| v.to_string()).collect();
    Ok(Json(json!({ "tagValues": texts })).into_response())
}

/// v2 names a scoped attribute (`resource.service.name`, `.x`) or an intrinsic (`name`,
/// `span:status`).
async fn values_v2(
    State(state): State<ApiState>,
    Path(tag): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let field = parse_field(&tag).map_err(|e| format!("invalid tag {tag:?}: {e}"))?;
    let values = values(&state, field, query).await?;
    Ok(Json(json!({
        "tagValues": values
            .iter()
            .map(|v| json!({"type": v.type_name(), "value": v.to_string()}))
            .collect::<Vec<_>>()
    }))
    .into_response())
}
