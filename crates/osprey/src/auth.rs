//! Bearer tokens (`--auth-tokens tokens.yaml`): each token names a tenant and what it may do,
//!
//! ```yaml
//! - token: 3f9c…            # what clients send as `Authorization: Bearer 3f9c…`
//!   tenant: team-payments   # the tenant its spans go to and its queries read
//!   allow: [ingest, query]  # and `metrics` for /metrics, which covers every tenant
//! ```
//!
//! With tokens configured, every request needs one: OTLP (HTTP header, gRPC metadata), Zipkin and
//! Jaeger intake, and every query API. The token decides the tenant: a request that names another
//! one in `X-Scope-OrgID` is refused. Health checks and the UI's page shell and static files (no
//! trace data in them) answer without one; the UI asks for a token when an API call is refused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use osprey_ingest::TENANT_HEADER;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Send spans.
    Ingest,
    /// Read them: every query API and the UI.
    Query,
    /// Read `/metrics`, which covers every tenant (Prometheus's token).
    Metrics,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: String,
    tenant: String,
    allow: Vec<Right>,
}

struct Grant {
    tenant: String,
    allow: Vec<Right>,
}

/// The tokens of `--auth-tokens`.
pub struct Tokens {
    grants: HashMap<String, Grant>,
}

/// Why a request was refused, said in the protocol's error form.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Tokens {
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the tokens {}", path.display()))?;
        let entries: Vec<TokenEntry> = serde_yaml_ng::from_str(&text).with_context(|| {
            format!(
                "{} is not a YAML list of token, tenant, allow entries",
                path.display()
            )
        })?;
        let mut grants = HashMap::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let at = format!("{}: entry {}", path.display(), i + 1);
            if entry.token.trim().len() < 16 {
                bail!("{at}: a token must be at least 16 characters");
            }
            osprey_store::validate_tenant(&entry.tenant)
                .map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
            if entry.allow.is_empty() {
                bail!("{at}: allow lists nothing (ingest, query, metrics)");
            }
            let grant = Grant {
                tenant: entry.tenant,
                allow: entry.allow,
            };
            if grants
                .insert(entry.token.trim().to_string(), grant)
                .is_some()
            {
                bail!("{at}: the same token appears twice");
            }
        }
        if grants.is_empty() {
            bail!("{} lists no tokens", path.display());
        }
        Ok(Tokens { grants })
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// The tenant a request acts for, from its `authorization` and `x-scope-orgid` values, if
    /// its token allows `right`.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        asked_tenant: Option<&[u8]>,
        right: Right,
    ) -> Result<&str, Refusal> {
        let refuse = |status, message: &str| Refusal {
            status,
            message: message.to_string(),
        };
        let Some(authorization) = authorization else {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (Authorization: Bearer <token>)",
            ));
        };
        let token = std::str::from_utf8(authorization)
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                refuse(
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        let grant = self
            .grants
            .get(token)
            .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "the bearer token is not valid"))?;
        if !grant.allow.contains(&right) {
            let what = match right {
                Right::Ingest => "send spans",
                Right::Query => "read traces",
                Right::Metrics => "read /metrics",
            };
            return Err(refuse(
                StatusCode::FORBIDDEN,
                &format!("this token may not {what}"),
            ));
        }
        if let Some(asked) = asked_tenant {
            if asked.trim_ascii() != grant.tenant.as_bytes() {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "this token is for tenant {:?}; X-Scope-OrgID names another",
                        grant.tenant
                    ),
                ));
            }
        }
        Ok(&grant.tenant)
    }
}

/// What a port takes, and so the right its requests need and the form its refusals take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// OTLP/HTTP: refusals as `google.rpc.Status` in the request's encoding.
    OtlpHttp,
    /// Jaeger thrift intake: plain-text refusals.
    JaegerIntake,
    /// The Zipkin port: span intake (`POST /api/v2/spans`) and Zipkin's query API; plain text.
    Zipkin,
    /// The query port: Jaeger's API shape for refusals.
    Query,
    /// The Tempo API: plain text, as Tempo answers errors.
    Tempo,
}

impl Port {
    fn right(self, method: &Method, path: &str) -> Right {
        if path == "/metrics" {
            return Right::Metrics;
        }
        match self {
            Port::OtlpHttp | Port::JaegerIntake => Right::Ingest,
            Port::Zipkin if method == Method::POST && path.ends_with("/api/v2/spans") => {
                Right::Ingest
            }
            Port::Zipkin | Port::Query | Port::Tempo => Right::Query,
        }
    }

    fn refusal(self, refusal: Refusal, headers: &HeaderMap) -> Response {
        let mut response = match self {
            Port::OtlpHttp => {
                let code = if refusal.status == StatusCode::UNAUTHORIZED {
                    tonic::Code::Unauthenticated
                } else {
                    tonic::Code::PermissionDenied
                };
                osprey_ingest::otlp_http::refusal(headers, refusal.status, code, &refusal.message)
            }
            Port::Query => {
                let body = serde_json::json!({
                    "data": null, "total": 0, "limit": 0, "offset": 0,
                    "errors": [{"code": refusal.status.as_u16(), "msg": refusal.message}],
                });
                (
                    refusal.status,
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }
            Port::JaegerIntake | Port::Zipkin | Port::Tempo => {
                (refusal.status, refusal.message).into_response()
            }
        };
        if response.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The state of [`require_token`] on one port.
#[derive(Clone)]
pub struct Gate {
    pub tokens: Arc<Tokens>,
    pub port: Port,
}

/// An axum middleware: lets a request through with its tenant set from its token, or answers
/// the refusal in the port's form.
pub async fn require_token(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    if osprey_api::answers_without_token(request.uri().path()) {
        return next.run(request).await;
    }
    let right = gate.port.right(request.method(), request.uri().path());
    let headers = request.headers();
    let checked = gate.tokens.check(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        headers.get(TENANT_HEADER).map(HeaderValue::as_bytes),
        right,
    );
    match checked {
        Ok(tenant) => {
            let tenant = HeaderValue::from_str(tenant).expect("tenant names are checked on load");
            request.headers_mut().insert(TENANT_HEADER, tenant);
            next.run(request).await
        }
        Err(refusal) => gate.port.refusal(refusal, request.headers()),
    }
}

/// The same for gRPC (OTLP on 4317, Jaeger's api_v3 on 16685), as a tonic interceptor: the token
/// from the `authorization` metadata, refusals as `UNAUTHENTICATED` or `PERMISSION_DENIED`.
#[derive(Clone)]
pub struct GrpcGate {
    /// `None`: tokens are not required, every request passes as it is.
    pub tokens: Option<Arc<Tokens>>,
    pub right: Right,
}

impl tonic::service::Interceptor for GrpcGate {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(tokens) = &self.tokens else {
            return Ok(request);
        };
        let metadata = request.metadata();
        let checked = tokens.check(
            metadata.get("authorization").map(|v| v.as_bytes()),
            metadata.get(TENANT_HEADER).map(|v| v.as_bytes()),
            self.right,
        );
        match checked {
            Ok(tenant) => {
                let tenant = tenant.parse().expect("tenant names are checked on load");
                request.metadata_mut().insert(TENANT_HEADER, tenant);
                Ok(request)
            }
            Err(refusal) if refusal.status == StatusCode::UNAUTHORIZED => {
                Err(tonic::Status::unauthenticated(refusal.message))
            }
            Err(refusal) => Err(tonic::Status::permission_denied(refusal.message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let path = std::env::temp_dir().join(format!("osprey-tokens-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            "- token: aaaaaaaaaaaaaaaaaaaa\n  tenant: team-a\n  allow: [ingest, query]\n\
             - token: bbbbbbbbbbbbbbbbbbbb\n  tenant: team-b\n  allow: [ingest]\n",
        )
        .unwrap();
        let tokens = Tokens::load(&path).unwrap();
        std::fs::remove_file(path).unwrap();
        tokens
    }

    #[test]
    fn a_token_gives_its_tenant_and_rights_only() {
        let tokens = tokens();
        let a = Some(&b"Bearer aaaaaaaaaaaaaaaaaaaa"[..]);
        let b = Some(&b"bearer  bbbbbbbbbbbbbbbbbbbb "[..]);
        assert_eq!(tokens.check(a, None, Right::Query).unwrap(), "team-a");
        assert_eq!(tokens.check(b, None, Right::Ingest).unwrap(), "team-b");
        assert_eq!(
            tokens.check(b, None, Right::Query).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            tokens.check(a, Some(b"team-a"), Right::Query).unwrap(),
            "team-a"
        );
        assert_eq!(
            tokens
                .check(a, Some(b"team-b"), Right::Query)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        for wrong in [
            None,
            Some(&b"Bearer nope"[..]),
            Some(&b"Basic aaaaaaaaaaaaaaaaaaaa"[..]),
        ] {
            assert_eq!(
                tokens.check(wrong, None, Right::Query).unwrap_err().status,
                StatusCode::UNAUTHORIZED
            );
        }
    }
}
