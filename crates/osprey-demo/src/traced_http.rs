//! HTTP with traces: server spans for incoming requests (context extracted from the W3C headers) and
//! client spans for outgoing calls (context injected), with the semantic-convention attributes.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{global, Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};

pub const TRACER: &str = "osprey-demo";

/// Axum middleware: a SERVER span around every request, child of the caller's context, and the
/// span's context made current for the handler. Baggage entries become attributes, so every service
/// shows which customer a request was for.
pub async fn server_span(request: Request, next: Next) -> Response {
    let parent =
        global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |p| p.as_str().to_string(),
    );
    let method = request.method().clone();
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.to_string()),
        KeyValue::new("url.path", request.uri().path().to_string()),
        KeyValue::new("http.route", route.clone()),
        KeyValue::new("url.scheme", "http"),
    ];
    attributes.extend(
        parent
            .baggage()
            .iter()
            .map(|(key, (value, _))| KeyValue::new(key.clone(), value.clone())),
    );
    let tracer = global::tracer(TRACER);
    let span = tracer
        .span_builder(format!("{method} {route}"))
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(span);
    let response = next.run(request).with_context(cx.clone()).await;
    let status = response.status();
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        status.as_u16() as i64,
    ));
    if status.is_server_error() {
        span.set_status(Status::error(format!("HTTP {}", status.as_u16())));
    }
    span.end();
    response
}

/// Another service, as seen by its callers.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The service's name, for `peer.service`.
    pub name: &'static str,
    /// Base URL, e.g. `http://127.0.0.1:8081`.
    pub url: String,
}

/// The result of a traced call: status and JSON body (`null` when the body was not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

/// Calls `upstream` inside a CLIENT span named `span_name` (with `attributes` added), propagating the
/// current context. Transport failures are recorded on the span and returned as 502.
pub async fn call(
    upstream: &Upstream,
    method: Method,
    path: &str,
    body: serde_json::Value,
    span_name: &str,
    attributes: Vec<KeyValue>,
) -> Reply {
    let url = format!("{}{path}", upstream.url);
    let uri: http::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(e) => {
            return Reply {
                status: StatusCode::BAD_GATEWAY,
                body: serde_json::json!({"error": format!("bad upstream URL {url}: {e}")}),
            }
        }
    };
    let tracer = global::tracer(TRACER);
    let mut all = vec![
        KeyValue::new("http.request.method", method.to_string()),
        KeyValue::new("url.full", url.clone()),
        KeyValue::new("server.address", uri.host().unwrap_or_default().to_string()),
        KeyValue::new("server.port", uri.port_u16().unwrap_or(80) as i64),
        KeyValue::new("peer.service", upstream.name),
    ];
    all.extend(attributes);
    let span = tracer
        .span_builder(span_name.to_string())
        .with_kind(SpanKind::Client)
        .with_attributes(all)
        .start(&tracer);
    let cx = Context::current().with_span(span);
    let mut headers = HeaderMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(&mut headers)));
    let result = send(method, uri, headers, body)
        .with_context(cx.clone())
        .await;
    let span = cx.span();
    let reply = match result {
        Ok(reply) => {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                reply.status.as_u16() as i64,
            ));
            if reply.status.is_client_error() || reply.status.is_server_error() {
                span.set_status(Status::error(format!("HTTP {}", reply.status.as_u16())));
            }
            reply
        }
        Err(e) => {
            span.set_attribute(KeyValue::new("error.type", "transport"));
            span.set_status(Status::error(e.clone()));
            Reply {
                status: StatusCode::BAD_GATEWAY,
                body: serde_json::json!({"error": e}),
            }
        }
    };
    span.end();
    reply
}

async fn send(
    method: Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: serde_json::Value,
) -> Result<Reply, String> {
    static CLIENT: OnceLock<Client<HttpConnector, Full<Bytes>>> = OnceLock::new();
    let client = CLIENT.get_or_init(|| Client::builder(TokioExecutor::new()).build_http());
    let mut request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    request.headers_mut().extend(headers);
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .map_err(|_| "timed out after 30 s".to_string())?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    })
}
