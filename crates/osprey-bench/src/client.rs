//! A minimal HTTP GET client for the benchmarks, which ask servers they started themselves (plain
//! HTTP, no token). The `osprey` commands that talk to a user's server have their own, with TLS
//! and tokens (`osprey/src/remote.rs`).

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// GETs `url`; returns the status code and body.
pub async fn get(url: &str) -> anyhow::Result<(u16, Bytes)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
    let response = client
        .get(uri)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading the response of {url}"))?
        .to_bytes();
    Ok((status, body))
}
