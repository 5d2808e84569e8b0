//! The shop: six services and the faults that can be injected into them.
//!
//! ```text
//! gateway ─► auth
//!         └► orders ─► inventory
//!                   └► payments ─► database
//! ```
//!
//! Each handler spends a little time of its own (so self time is spread realistically) and calls the next
//! services. Normal checkouts take about 200 ms; with `--slow-db-share`, payments' balance query takes a
//! row lock (`SELECT … FOR UPDATE`) and waits for it in the database: about 1.8 s of a 2 s checkout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Args, ValueEnum};
use http::Method;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{global, Context, KeyValue};
use serde_json::{json, Value};

use crate::traced_http::{call, Reply, Upstream, TRACER};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Gateway,
    Auth,
    Orders,
    Inventory,
    Payments,
    Database,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Gateway,
        Service::Auth,
        Service::Orders,
        Service::Inventory,
        Service::Payments,
        Service::Database,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::Auth => "auth",
            Service::Orders => "orders",
            Service::Inventory => "inventory",
            Service::Payments => "payments",
            Service::Database => "database",
        }
    }
}

/// Where the other services are, and which faults to inject. Every flag has an environment variable,
/// so the same binary is configured by flags locally and by env in Kubernetes.
#[derive(Args, Clone, Debug)]
pub struct ShopArgs {
    #[arg(long, env = "DEMO_AUTH_URL", default_value = "http://127.0.0.1:8081")]
    pub auth_url: String,
    #[arg(long, env = "DEMO_ORDERS_URL", default_value = "http://127.0.0.1:8082")]
    pub orders_url: String,
    #[arg(
        long,
        env = "DEMO_INVENTORY_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub inventory_url: String,
    #[arg(
        long,
        env = "DEMO_PAYMENTS_URL",
        default_value = "http://127.0.0.1:8084"
    )]
    pub payments_url: String,
    #[arg(
        long,
        env = "DEMO_DATABASE_URL",
        default_value = "http://127.0.0.1:8085"
    )]
    pub database_url: String,
    #[command(flatten)]
    pub faults: Faults,
}

#[derive(Args, Clone, Debug, Default)]
pub struct Faults {
    /// Payments: share of charges whose balance query takes a row lock and waits for it (0–1; exact:
    /// 0.25 is every 4th charge).
    #[arg(long, env = "DEMO_SLOW_DB_SHARE", default_value_t = 0.0)]
    pub slow_db_share: f64,
    /// Database: how long a locking query waits for its lock, in milliseconds.
    #[arg(long, env = "DEMO_LOCK_WAIT_MS", default_value_t = 1800)]
    pub lock_wait_ms: u64,
    /// Payments: share of charges the card processor refuses with an error (0–1).
    #[arg(long, env = "DEMO_PAYMENT_ERROR_SHARE", default_value_t = 0.0)]
    pub payment_error_share: f64,
    /// Inventory: share of stock checks that are slow (0–1), a slow dependency of orders.
    #[arg(long, env = "DEMO_SLOW_INVENTORY_SHARE", default_value_t = 0.0)]
    pub slow_inventory_share: f64,
    /// Inventory: how long a slow stock check takes, in milliseconds.
    #[arg(long, env = "DEMO_SLOW_INVENTORY_MS", default_value_t = 400)]
    pub slow_inventory_ms: u64,
}

#[derive(Clone)]
struct Shop {
    args: ShopArgs,
    slow_inventory: Arc<Share>,
    slow_db: Arc<Share>,
    payment_errors: Arc<Share>,
}

/// A fault that hits an exact share of requests, spread evenly (share 0.25: every 4th), so a run of N
/// requests always has the same number of faults. `phase` shifts where the hits fall, so that different
/// faults do not always strike the same requests.
struct Share {
    share: f64,
    seen: AtomicU64,
}

impl Share {
    fn new(share: f64, phase: u64) -> Arc<Share> {
        Arc::new(Share {
            share: share.clamp(0.0, 1.0),
            seen: AtomicU64::new(phase),
        })
    }

    fn hit(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.share).floor() > (n * self.share).floor()
    }
}

impl Shop {
    fn upstream(&self, service: Service) -> Upstream {
        let url = match service {
            Service::Auth => &self.args.auth_url,
            Service::Orders => &self.args.orders_url,
            Service::Inventory => &self.args.inventory_url,
            Service::Payments => &self.args.payments_url,
            Service::Database => &self.args.database_url,
            Service::Gateway => unreachable!("nothing calls the gateway"),
        };
        Upstream {
            name: service.name(),
            url: url.trim_end_matches('/').to_string(),
        }
    }
}

/// The routes of one service (the tracing middleware is added by the caller).
pub fn router(service: Service, args: ShopArgs) -> Router {
    let shop = Shop {
        slow_inventory: Share::new(args.faults.slow_inventory_share, 1),
        slow_db: Share::new(args.faults.slow_db_share, 0),
        payment_errors: Share::new(args.faults.payment_error_share, 2),
        args,
    };
    let router = match service {
        Service::Gateway => Router::new().route("/checkout", post(checkout)),
        Service::Auth => Router::new().route("/verify", post(verify)),
        Service::Orders => Router::new().route("/orders", post(place_order)),
        Service::Inventory => Router::new().route("/stock/{sku}", get(stock)),
        Service::Payments => Router::new().route("/charge", post(charge)),
        Service::Database => Router::new().route("/query", post(query)),
    };
    router.with_state(shop)
}

/// Work a service does itself.
async fn work(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms + fastrand::u64(0..=ms / 4))).await;
}

type Answer = (StatusCode, Json<Value>);

fn pass_on(reply: Reply, what: &str) -> Answer {
    let status = if reply.status.is_success() {
        StatusCode::BAD_GATEWAY
    } else {
        reply.status
    };
    (
        status,
        Json(json!({"error": format!("{what} failed"), "cause": reply.body})),
    )
}

async fn checkout(State(shop): State<Shop>, Json(order): Json<Value>) -> Answer {
    let customer = order["customer"]
        .as_str()
        .unwrap_or("anonymous")
        .to_string();
    // Baggage travels with the trace context through every hop below.
    let cx = Context::current().with_baggage(vec![KeyValue::new("customer.id", customer.clone())]);
    async move {
        work(10).await;
        let auth = call(
            &shop.upstream(Service::Auth),
            Method::POST,
            "/verify",
            json!({"customer": customer}),
            "POST /verify",
            vec![],
        )
        .await;
        if !auth.status.is_success() {
            return pass_on(auth, "authentication");
        }
        let placed = call(
            &shop.upstream(Service::Orders),
            Method::POST,
            "/orders",
            order,
            "POST /orders",
            vec![],
        )
        .await;
        if !placed.status.is_success() {
            return pass_on(placed, "placing the order");
        }
        (StatusCode::OK, Json(json!({"order": placed.body})))
    }
    .with_context(cx)
    .await
}

async fn verify(Json(request): Json<Value>) -> Answer {
    work(25).await;
    (
        StatusCode::OK,
        Json(json!({"customer": request["customer"], "valid": true})),
    )
}

async fn place_order(State(shop): State<Shop>, Json(order): Json<Value>) -> Answer {
    work(20).await;
    let sku = order["sku"].as_str().unwrap_or("sku-1").to_string();
    let stock = call(
        &shop.upstream(Service::Inventory),
        Method::GET,
        &format!("/stock/{sku}"),
        Value::Null,
        "GET /stock/{sku}",
        vec![],
    )
    .await;
    if !stock.status.is_success() {
        return pass_on(stock, "the stock check");
    }
    let paid = call(
        &shop.upstream(Service::Payments),
        Method::POST,
        "/charge",
        json!({"amount": order["amount"], "customer": order["customer"]}),
        "POST /charge",
        vec![],
    )
    .await;
    if !paid.status.is_success() {
        return pass_on(paid, "the payment");
    }
    (
        StatusCode::OK,
        Json(json!({"sku": sku, "payment": paid.body})),
    )
}

async fn stock(State(shop): State<Shop>, Path(sku): Path<String>) -> Answer {
    let faults = &shop.args.faults;
    if shop.slow_inventory.hit() {
        work(faults.slow_inventory_ms).await;
    } else {
        work(15).await;
    }
    (StatusCode::OK, Json(json!({"sku": sku, "available": 7})))
}

async fn charge(State(shop): State<Shop>, Json(request): Json<Value>) -> Answer {
    work(30).await;
    let locking = shop.slow_db.hit();
    let statement = if locking {
        "SELECT balance FROM payments WHERE account_id = $1 FOR UPDATE"
    } else {
        "SELECT balance FROM payments WHERE account_id = $1"
    };
    let balance = call(
        &shop.upstream(Service::Database),
        Method::POST,
        "/query",
        json!({"statement": statement, "account": request["customer"]}),
        "SELECT payments",
        vec![
            KeyValue::new("db.system", "postgresql"),
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.operation.name", "SELECT"),
            KeyValue::new("db.collection.name", "payments"),
            KeyValue::new("db.query.text", statement),
        ],
    )
    .await;
    if !balance.status.is_success() {
        return pass_on(balance, "the balance query");
    }
    if shop.payment_errors.hit() {
        let span = Context::current();
        span.span().add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", "CardProcessorError"),
                KeyValue::new("exception.message", "card processor unavailable"),
            ],
        );
        return (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": "card processor unavailable"})),
        );
    }
    work(20).await;
    (
        StatusCode::OK,
        Json(json!({"charged": request["amount"], "status": "ok"})),
    )
}

/// The database: runs a statement, waiting for a row lock when it asks for one.
async fn query(State(shop): State<Shop>, Json(request): Json<Value>) -> Answer {
    let statement = request["statement"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let tracer = global::tracer(TRACER);
    let span = tracer
        .span_builder("SELECT payments")
        .with_kind(SpanKind::Internal)
        .with_attributes(vec![
            KeyValue::new("db.system", "postgresql"),
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.operation.name", "SELECT"),
            KeyValue::new("db.collection.name", "payments"),
            KeyValue::new("db.query.text", statement.clone()),
        ])
        .start(&tracer);
    let cx = Context::current().with_span(span);
    if statement.contains("FOR UPDATE") {
        cx.span().add_event("waiting for row lock", vec![]);
        tokio::time::sleep(Duration::from_millis(shop.args.faults.lock_wait_ms)).await;
    }
    work(4).await;
    if statement.is_empty() {
        cx.span().set_status(Status::error("empty statement"));
    }
    cx.span().end();
    (StatusCode::OK, Json(json!({"rows": [{"balance": 120}]})))
}
