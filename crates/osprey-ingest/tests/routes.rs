//! Every ingest route in process (axum `oneshot`): what it stores, and its answer to a body it
//! cannot read, to a method it does not take and to a tenant it does not accept.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use prost::Message;
use tower::ServiceExt;

use osprey_ingest::{Ingester, Limits};
use osprey_model::fixtures::{request, span};
use osprey_model::otlp::ExportTraceServiceResponse;
use osprey_store::{Tenants, DEFAULT_TENANT};

struct Fixture {
    ingester: Arc<Ingester>,
    tenants: Arc<Tenants>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let (tenants, _) = Tenants::open(dir.path(), Default::default())
        .await
        .expect("opening a store");
    let tenants = Arc::new(tenants);
    Fixture {
        ingester: Arc::new(Ingester::new(tenants.clone(), Limits::default())),
        tenants,
        _dir: dir,
    }
}

impl Fixture {
    fn stored(&self, tenant: &str) -> u64 {
        self.tenants.get(tenant).map_or(0, |s| s.head_span_count())
    }
}

async fn send(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(body.into()).expect("a request"))
        .await
        .expect("routers are infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    (status, body.to_vec())
}

fn two_spans(trace: u8) -> Vec<u8> {
    request(
        "checkout",
        vec![
            span(trace, 1, None, "GET /cart", 1_000, 9_000),
            span(trace, 2, Some(1), "SELECT cart", 2_000, 3_000),
        ],
    )
    .encode_to_vec()
}

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn otlp_http_stores_protobuf_and_json_and_refuses_what_it_cannot_read() {
    let f = fixture().await;
    let router = osprey_ingest::otlp_http::router(f.ingester.clone());

    let (status, body) = send(
        &router,
        Method::POST,
        "/v1/traces",
        &[PROTOBUF],
        two_spans(1),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answer = ExportTraceServiceResponse::decode(body.as_slice()).expect("a protobuf answer");
    assert_eq!(answer.partial_success, None);
    assert_eq!(f.stored(DEFAULT_TENANT), 2);

    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0202020202020202020202020202020a","spanId":"0303030303030303","name":"POST /pay","startTimeUnixNano":"1000","endTimeUnixNano":"2000"}]}]}]}"#;
    let (status, body) = send(&router, Method::POST, "/v1/traces", &[JSON], json).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(f.stored(DEFAULT_TENANT), 3);

    let (status, body) = send(
        &router,
        Method::POST,
        "/v1/traces",
        &[PROTOBUF],
        &b"\xff\xff\xff"[..],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let refusal = tonic_types::Status::decode(body.as_slice()).expect("a google.rpc.Status");
    assert!(!refusal.message.is_empty());
    let (status, _) = send(
        &router,
        Method::POST,
        "/v1/traces",
        &[("content-type", "text/plain")],
        two_spans(4),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = send(&router, Method::GET, "/v1/traces", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(f.stored(DEFAULT_TENANT), 3, "nothing refused was stored");

    // X-Scope-OrgID picks the tenant; a malformed one is refused, not stored anywhere.
    let team = [PROTOBUF, ("x-scope-orgid", "team-a")];
    let (status, _) = send(&router, Method::POST, "/v1/traces", &team, two_spans(5)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(f.stored("team-a"), 2);
    let bad = [PROTOBUF, ("x-scope-orgid", "../etc")];
    let (status, _) = send(&router, Method::POST, "/v1/traces", &bad, two_spans(6)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(f.stored(DEFAULT_TENANT) + f.stored("team-a"), 5);
}

#[tokio::test]
async fn zipkin_stores_json_v2_and_refuses_what_it_cannot_read() {
    let f = fixture().await;
    let router = osprey_ingest::zipkin_http::router(f.ingester.clone());
    let spans = r#"[{"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","name":"get /api","timestamp":1556604172355737,"duration":1431,"localEndpoint":{"serviceName":"frontend"},"kind":"SERVER"}]"#;
    let (status, body) = send(&router, Method::POST, "/api/v2/spans", &[JSON], spans).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(f.stored(DEFAULT_TENANT), 1);

    let (status, body) = send(&router, Method::POST, "/api/v2/spans", &[JSON], "[{").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!body.is_empty(), "the refusal says why");
    let (status, _) = send(&router, Method::GET, "/api/v2/spans", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(f.stored(DEFAULT_TENANT), 1);
}

#[tokio::test]
async fn jaeger_thrift_http_refuses_what_it_cannot_read() {
    let f = fixture().await;
    let router = osprey_ingest::jaeger_receivers::http_router(f.ingester.clone());
    let thrift = [("content-type", "application/vnd.apache.thrift.binary")];
    let (status, body) = send(
        &router,
        Method::POST,
        "/api/traces",
        &thrift,
        &b"\x0c\x00"[..],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _) = send(&router, Method::GET, "/api/traces", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(f.stored(DEFAULT_TENANT), 0);
}
