//! The load generator: checkouts at a steady rate against the gateway.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Args, Clone, Debug)]
pub struct LoadArgs {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "DEMO_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub gateway_url: String,
    /// Checkouts per second.
    #[arg(long, env = "DEMO_RATE", default_value_t = 5.0)]
    pub rate: f64,
    /// Stop after this many checkouts (default: run until stopped).
    #[arg(long, env = "DEMO_REQUESTS")]
    pub requests: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: u64,
    pub failed: u64,
}

/// Runs the load; returns how the checkouts went. Stops after `--requests` or on SIGINT/SIGTERM.
pub async fn run(args: LoadArgs) -> anyhow::Result<Outcome> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url: http::Uri = format!("{}/checkout", args.gateway_url.trim_end_matches('/'))
        .parse()
        .context("invalid --gateway-url")?;
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.01));
    let mut ticker = tokio::time::interval(interval);
    let mut inflight = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    let started = Instant::now();
    let stop = crate::up::terminated();
    tokio::pin!(stop);
    while args.requests.is_none_or(|n| sent < n) {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stop => break,
        }
        let body = serde_json::json!({
            "customer": format!("customer-{}", fastrand::u32(1..500)),
            "sku": format!("sku-{}", fastrand::u32(1..50)),
            "amount": fastrand::u32(5..300),
        });
        let request = http::Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let client = client.clone();
        inflight.spawn(async move {
            match client.request(request).await {
                Ok(response) => {
                    let ok = response.status().is_success();
                    let _ = response.into_body().collect().await;
                    ok
                }
                Err(_) => false,
            }
        });
        sent += 1;
    }
    let mut outcome = Outcome::default();
    while let Some(result) = inflight.join_next().await {
        if result.unwrap_or(false) {
            outcome.ok += 1;
        } else {
            outcome.failed += 1;
        }
    }
    tracing::info!(
        ok = outcome.ok,
        failed = outcome.failed,
        seconds = started.elapsed().as_secs_f64(),
        "load finished"
    );
    Ok(outcome)
}
