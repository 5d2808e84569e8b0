//! `osprey serve`: opens every tenant's store, then serves OTLP/gRPC, OTLP/HTTP and the query port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::serve::ListenerExt;
use clap::{Args, ValueEnum};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use osprey_api::{ApiMetrics, ApiState, SamplingStrategies};
use osprey_ingest::otlp_grpc::TraceService;
use osprey_ingest::{Ingester, Limits};
use osprey_store::{FsyncPolicy, StoreOptions, Tenants, WalOptions};

use crate::auth::{self, Gate, GrpcGate, Port, Right, Tokens};
use crate::http_server;
use crate::tls::{Alpn, Tls, TlsListener};
use crate::units::{parse_duration, parse_positive_duration, parse_size};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fsync {
    /// fsync before every acknowledgement (group commit): no acknowledged span is ever lost.
    Always,
    /// Acknowledge once written, fsync every --fsync-interval: a machine crash may lose that interval.
    Interval,
}

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// A YAML file of settings: every flag below as a key (`max-block-bytes: 64MiB`). Flags and
    /// OSPREY_* variables override it.
    #[arg(long, env = "OSPREY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where spans are stored.
    #[arg(long, env = "OSPREY_DATA_DIR", default_value = "./osprey-data")]
    pub data_dir: PathBuf,
    /// OTLP/gRPC listen address.
    #[arg(long, env = "OSPREY_OTLP_GRPC_ADDR", default_value = "0.0.0.0:4317")]
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (`POST /v1/traces`).
    #[arg(long, env = "OSPREY_OTLP_HTTP_ADDR", default_value = "0.0.0.0:4318")]
    pub otlp_http_addr: SocketAddr,
    /// Query API, health and metrics listen address.
    #[arg(long, env = "OSPREY_QUERY_ADDR", default_value = "0.0.0.0:16686")]
    pub query_addr: SocketAddr,
    /// Tempo-compatible API listen address (Grafana's Tempo data source, TraceQL).
    #[arg(long, env = "OSPREY_TEMPO_ADDR", default_value = "0.0.0.0:3200")]
    pub tempo_addr: SocketAddr,
    /// Zipkin listen address: span intake (`POST /api/v2/spans`, JSON or protobuf) and Zipkin's
    /// query API, what Zipkin clients and the Zipkin UI use.
    #[arg(long, env = "OSPREY_ZIPKIN_ADDR", default_value = "0.0.0.0:9411")]
    pub zipkin_addr: SocketAddr,
    /// Jaeger api_v3 over gRPC listen address (`jaeger.api_v3.QueryService`: Jaeger's tools,
    /// Grafana's Jaeger data source).
    #[arg(long, env = "OSPREY_JAEGER_GRPC_ADDR", default_value = "0.0.0.0:16685")]
    pub jaeger_grpc_addr: SocketAddr,
    /// Jaeger thrift over HTTP listen address (`POST /api/traces`, what jaeger-client libraries
    /// send to a collector).
    #[arg(long, env = "OSPREY_JAEGER_HTTP_ADDR", default_value = "0.0.0.0:14268")]
    pub jaeger_http_addr: SocketAddr,
    /// Jaeger agent UDP address, compact thrift (what jaeger-client libraries send by default).
    #[arg(
        long,
        env = "OSPREY_JAEGER_COMPACT_ADDR",
        default_value = "0.0.0.0:6831"
    )]
    pub jaeger_compact_addr: SocketAddr,
    /// Jaeger agent UDP address, binary thrift.
    #[arg(
        long,
        env = "OSPREY_JAEGER_BINARY_ADDR",
        default_value = "0.0.0.0:6832"
    )]
    pub jaeger_binary_addr: SocketAddr,
    /// Jaeger remote sampling listen address (`GET /sampling?service=`, where SDKs' remote samplers
    /// ask, Jaeger's agent port).
    #[arg(long, env = "OSPREY_SAMPLING_ADDR", default_value = "0.0.0.0:5778")]
    pub sampling_addr: SocketAddr,
    /// Sampling strategies served to SDKs: a JSON file in Jaeger's format (per-service
    /// probabilistic or rate-limiting, per-operation, a default). Without it every service gets
    /// Jaeger's default, probabilistic 0.001.
    #[arg(long, env = "OSPREY_SAMPLING_STRATEGIES")]
    pub sampling_strategies: Option<PathBuf>,
    /// When the write-ahead log is made durable.
    #[arg(long, env = "OSPREY_FSYNC", value_enum, default_value_t = Fsync::Always)]
    pub fsync: Fsync,
    /// fsync period under `--fsync interval`, in milliseconds.
    #[arg(long, env = "OSPREY_FSYNC_INTERVAL_MS", default_value_t = 100)]
    pub fsync_interval_ms: u64,
    /// Largest export request accepted, before and after decompression.
    #[arg(long, env = "OSPREY_MAX_REQUEST_BYTES", default_value_t = 64 << 20)]
    pub max_request_bytes: usize,
    /// Request bytes in flight at once (decoding or waiting for the log) before exports are throttled.
    #[arg(long, env = "OSPREY_MAX_INFLIGHT_BYTES", default_value_t = 256 << 20)]
    pub max_inflight_bytes: usize,
    /// Exports waiting for the write-ahead log before further ones are throttled.
    #[arg(long, env = "OSPREY_WAL_QUEUE", default_value_t = 1024)]
    pub wal_queue: usize,
    /// Size at which a write-ahead log segment is closed and a new one started.
    #[arg(long, env = "OSPREY_WAL_SEGMENT_BYTES", default_value_t = 128 << 20)]
    pub wal_segment_bytes: u64,
    /// Export requests being received at once, per protocol, beyond which new ones wait. With
    /// --max-request-bytes it bounds the memory of bodies being received.
    #[arg(long, env = "OSPREY_MAX_CONCURRENT_REQUESTS", default_value_t = 64)]
    pub max_concurrent_requests: usize,
    /// Where blocks are kept: a directory, or a URL (s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix). Default: blocks/ in the data directory.
    #[arg(long, env = "OSPREY_STORAGE")]
    pub storage: Option<String>,
    /// Cut the head into a block once it is this old (default 5m).
    #[arg(long, env = "OSPREY_MAX_BLOCK_DURATION", value_parser = parse_duration)]
    pub max_block_duration: Option<Duration>,
    /// …or once its log records reach this size (default 64MiB), whichever comes first.
    #[arg(long, env = "OSPREY_MAX_BLOCK_BYTES", value_parser = parse_size)]
    pub max_block_bytes: Option<u64>,
    /// Delete blocks whose newest span ended, and which were written, longer ago than this (default 14d).
    #[arg(long, env = "OSPREY_RETENTION", value_parser = parse_duration)]
    pub retention: Option<Duration>,
    /// Read the block list from the store again this often, to see blocks other servers wrote
    /// (default 30s).
    #[arg(long, env = "OSPREY_BLOCK_LIST_INTERVAL", value_parser = parse_duration)]
    pub block_list_interval: Option<Duration>,
    /// How long an export may take: an HTTP body to arrive (then 408), a whole gRPC call (then
    /// CANCELLED, tonic's answer to its deadline) (default 60s).
    #[arg(long, env = "OSPREY_REQUEST_TIMEOUT", value_parser = parse_positive_duration)]
    pub request_timeout: Option<Duration>,
    /// How long a query may run before its caller is answered 503 (gRPC DEADLINE_EXCEEDED)
    /// (default 60s). The read itself runs on to its end in its thread.
    #[arg(long, env = "OSPREY_QUERY_TIMEOUT", value_parser = parse_positive_duration)]
    pub query_timeout: Option<Duration>,
    /// TLS certificate chain (PEM). With --tls-key, every TCP listener speaks TLS only; both
    /// files are read again when they change.
    #[arg(long, env = "OSPREY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "OSPREY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Bearer tokens (YAML: a list of `token`, `tenant`, `allow: [ingest, query]`). With them
    /// every request needs a token, which decides its tenant; without, every port is open.
    #[arg(long, env = "OSPREY_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,
}

impl ServeArgs {
    /// The store's options: what was given, the store's defaults for the rest.
    pub fn store_options(&self) -> StoreOptions {
        let defaults = StoreOptions::default();
        StoreOptions {
            wal: WalOptions {
                fsync: match self.fsync {
                    Fsync::Always => FsyncPolicy::Always,
                    Fsync::Interval => {
                        FsyncPolicy::Interval(Duration::from_millis(self.fsync_interval_ms))
                    }
                },
                segment_bytes: self.wal_segment_bytes,
                queue_len: self.wal_queue,
            },
            storage: self.storage.clone(),
            max_block_duration: self
                .max_block_duration
                .unwrap_or(defaults.max_block_duration),
            max_block_bytes: self.max_block_bytes.unwrap_or(defaults.max_block_bytes),
            retention: self.retention.unwrap_or(defaults.retention),
            block_list_interval: self
                .block_list_interval
                .unwrap_or(defaults.block_list_interval),
        }
    }
}

/// The sampling strategies of `--sampling-strategies`, or Jaeger's default.
fn sampling_strategies(args: &ServeArgs) -> anyhow::Result<SamplingStrategies> {
    let Some(path) = &args.sampling_strategies else {
        return Ok(SamplingStrategies::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the sampling strategies {}", path.display()))?;
    SamplingStrategies::from_json(&text)
        .map_err(|e| anyhow::anyhow!("sampling strategies {}: {e}", path.display()))
}

/// A bound TCP port, plain or behind TLS.
enum Listener {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// Serves a tonic router on a [`Listener`] until SIGINT or SIGTERM (a macro: the two kinds of
/// connection make two server types).
macro_rules! serve_grpc {
    ($router:expr, $listener:expr, $what:literal) => {
        async {
            match $listener {
                Listener::Plain(listener) => {
                    $router
                        .serve_with_incoming_shutdown(
                            crate::grpc_listener::incoming(listener),
                            shutdown_signal(),
                        )
                        .await
                }
                Listener::Tls(listener) => {
                    $router
                        .serve_with_incoming_shutdown(listener.into_stream(), shutdown_signal())
                        .await
                }
            }
            .context($what)
        }
    };
}

/// The gRPC ports ping a connection quiet this long and close it when no answer comes within
/// [`GRPC_KEEPALIVE_TIMEOUT`]: a peer that vanished (a killed pod, a dropped NAT entry) then stops
/// holding a connection. Exporters keep connections open between batches, so quiet alone is fine.
const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let strategies = Arc::new(sampling_strategies(&args)?);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Tls::load(cert, key)?),
        _ => {
            tracing::warn!("no --tls-cert and --tls-key: every listener speaks plain text");
            None
        }
    };
    let tokens = match &args.auth_tokens {
        Some(path) => {
            let tokens = Tokens::load(path)?;
            tracing::info!(
                tokens = tokens.len(),
                "bearer tokens required on every port"
            );
            Some(Arc::new(tokens))
        }
        None => {
            tracing::warn!(
                "no --auth-tokens: anyone who reaches these ports can send spans and read every trace"
            );
            None
        }
    };
    let gate = |router: axum::Router, port: Port| match &tokens {
        Some(tokens) => router.layer(axum::middleware::from_fn_with_state(
            Gate {
                tokens: tokens.clone(),
                port,
            },
            auth::require_token,
        )),
        None => router,
    };
    let grpc_gate = |right| {
        tonic::service::InterceptorLayer::new(GrpcGate {
            tokens: tokens.clone(),
            right,
        })
    };
    let opened = Instant::now();
    let (tenants, reports) = Tenants::open(&args.data_dir, args.store_options())
        .await
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    for (tenant, report) in &reports {
        for damage in &report.replay.damaged {
            tracing::warn!(
                tenant,
                segment = damage.segment,
                offset = damage.offset,
                bytes_cut = damage.bytes_cut,
                reason = damage.reason,
                "cut a damaged write-ahead log tail"
            );
        }
        if !report.incomplete_blocks.is_empty() {
            tracing::warn!(
                tenant,
                blocks = ?report.incomplete_blocks,
                "block directories without meta.json (cuts that did not finish) are ignored"
            );
        }
        if !report.unreadable_blocks.is_empty() {
            tracing::error!(
                tenant,
                blocks = ?report.unreadable_blocks,
                "blocks that could not be read are skipped (see the errors above)"
            );
        }
        tracing::info!(
            tenant,
            blocks = report.blocks,
            segments = report.replay.segments,
            segments_in_blocks = report.replay.segments_in_blocks,
            records = report.replay.records,
            "tenant opened"
        );
    }
    tracing::info!(
        data_dir = %args.data_dir.display(),
        storage = %tenants.storage().description,
        tenants = reports.len(),
        head_spans = tenants.all().iter().map(|s| s.head_span_count()).sum::<u64>(),
        seconds = opened.elapsed().as_secs_f64(),
        "store opened"
    );
    let tenants = Arc::new(tenants);
    tokio::spawn(tenants.clone().run_discovery());
    let ingester = Arc::new(Ingester::new(
        tenants.clone(),
        Limits {
            max_request_bytes: args.max_request_bytes,
            max_inflight_bytes: args.max_inflight_bytes.min(u32::MAX as usize),
            request_timeout: args
                .request_timeout
                .unwrap_or(Limits::default().request_timeout),
        },
    ));
    let request_timeout = ingester.limits().request_timeout;

    let mut registry = Registry::default();
    tenants.metrics().register(&mut registry);
    ingester.metrics().register(&mut registry);
    let api_metrics = ApiMetrics::default();
    api_metrics.register(&mut registry);
    let api_state = ApiState::new(tenants, Arc::new(registry), api_metrics).with_query_timeout(
        args.query_timeout
            .unwrap_or(osprey_api::DEFAULT_QUERY_TIMEOUT),
    );
    let api = osprey_api::router(api_state.clone(), strategies.clone());
    let tempo = osprey_api::tempo_router(api_state.clone());
    let sampling = osprey_api::sampling_router(strategies);
    let jaeger_http = osprey_ingest::jaeger_receivers::http_router(ingester.clone()).layer(
        tower::limit::GlobalConcurrencyLimitLayer::new(args.max_concurrent_requests),
    );
    let udp_ingester = ingester.clone();
    let zipkin = osprey_ingest::zipkin_http::router(ingester.clone())
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            args.max_concurrent_requests,
        ))
        .merge(osprey_api::zipkin_router(api_state.clone()));

    let api = gate(api, Port::Query);
    let tempo = gate(tempo, Port::Tempo);
    let zipkin = gate(zipkin, Port::Zipkin);
    let jaeger_http = gate(jaeger_http, Port::JaegerIntake);
    let http = gate(
        osprey_ingest::otlp_http::router(ingester.clone()).layer(
            tower::limit::GlobalConcurrencyLimitLayer::new(args.max_concurrent_requests),
        ),
        Port::OtlpHttp,
    );

    let tls = tls.as_ref();
    let query_listener = bind(args.query_addr, "query", tls, Alpn::Http1).await?;
    let tempo_listener = bind(args.tempo_addr, "Tempo API", tls, Alpn::Http1).await?;
    let sampling_listener = bind(
        args.sampling_addr,
        "Jaeger remote sampling",
        tls,
        Alpn::Http1,
    )
    .await?;
    let zipkin_listener = bind(args.zipkin_addr, "Zipkin", tls, Alpn::Http1).await?;
    let jaeger_http_listener = bind(
        args.jaeger_http_addr,
        "Jaeger thrift HTTP",
        tls,
        Alpn::Http1,
    )
    .await?;
    let jaeger_grpc_listener =
        bind(args.jaeger_grpc_addr, "Jaeger api_v3 gRPC", tls, Alpn::H2).await?;
    // UDP datagrams can carry no token (nor TLS): with tokens required, the agent ports stay shut.
    let agents = match tokens {
        Some(_) => {
            tracing::warn!(
                "the Jaeger agent UDP ports are not opened: with --auth-tokens every span must come with a token"
            );
            None
        }
        None => Some((
            bind_udp(args.jaeger_compact_addr, "Jaeger agent (compact)").await?,
            bind_udp(args.jaeger_binary_addr, "Jaeger agent (binary)").await?,
        )),
    };
    let http_listener = bind(args.otlp_http_addr, "OTLP/HTTP", tls, Alpn::Http1).await?;
    let grpc_listener = bind(args.otlp_grpc_addr, "OTLP/gRPC", tls, Alpn::H2).await?;

    let grpc = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
        .timeout(request_timeout)
        // Refused calls never take a receiving slot: the token is checked first.
        .layer(grpc_gate(Right::Ingest))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            args.max_concurrent_requests,
        ))
        .add_service(TraceService::new(ingester));
    let jaeger_grpc = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
        .layer(grpc_gate(Right::Query))
        .add_service(osprey_api::JaegerQueryService::new(api_state.clone()));
    tracing::info!("osprey is ready");
    tokio::try_join!(
        serve_http(query_listener, api, "query server"),
        serve_http(tempo_listener, tempo, "Tempo API server"),
        serve_http(zipkin_listener, zipkin, "Zipkin server"),
        serve_http(
            jaeger_http_listener,
            jaeger_http,
            "Jaeger thrift HTTP server"
        ),
        async {
            use osprey_ingest::jaeger_receivers::serve_udp;
            let Some((compact, binary)) = agents else {
                return anyhow::Ok(());
            };
            tokio::select! {
                _ = serve_udp(compact, udp_ingester.clone(), true) => {}
                _ = serve_udp(binary, udp_ingester, false) => {}
                _ = shutdown_signal() => {}
            }
            anyhow::Ok(())
        },
        serve_http(sampling_listener, sampling, "remote sampling server"),
        serve_http(http_listener, http, "OTLP/HTTP server"),
        serve_grpc!(grpc, grpc_listener, "OTLP/gRPC server"),
        serve_grpc!(
            jaeger_grpc,
            jaeger_grpc_listener,
            "Jaeger api_v3 gRPC server"
        ),
    )?;
    tracing::info!("osprey stopped");
    Ok(())
}

/// Serves `router` on `listener` until SIGINT or SIGTERM; `what` names it in errors.
async fn serve_http(listener: Listener, router: axum::Router, what: &str) -> anyhow::Result<()> {
    match listener {
        Listener::Plain(listener) => {
            http_server::serve(listener.tap_io(no_delay), router, shutdown_signal()).await
        }
        Listener::Tls(listener) => http_server::serve(listener, router, shutdown_signal()).await,
    }
    .context(what.to_string())
}

fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

async fn bind(
    addr: SocketAddr,
    what: &str,
    tls: Option<&Tls>,
    alpn: Alpn,
) -> anyhow::Result<Listener> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} port {addr}"))?;
    Ok(match tls {
        Some(tls) => {
            tracing::info!(%addr, "{what} listening (TLS)");
            Listener::Tls(tls.accept(listener, alpn))
        }
        None => {
            tracing::info!(%addr, "{what} listening");
            Listener::Plain(listener)
        }
    })
}

async fn bind_udp(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::UdpSocket> {
    let socket = tokio::net::UdpSocket::bind(addr)
        .await
        .with_context(|| format!("binding the {what} port {addr}"))?;
    tracing::info!(%addr, "{what} listening (UDP)");
    Ok(socket)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
