//! `osprey bench ingest`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{BufMut, Bytes};
use clap::Args;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};

use osprey_model::otlp::{ExportTraceServiceRequest, ExportTraceServiceResponse};

use super::protocols::{http_load, Protocol};
use super::report::{percentile, thousands};
use super::server_process::{cpu_time, dir_bytes, memory_bytes, ServerProcess};
use super::tracegen::{self, Shape, Template};

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// OTLP/gRPC endpoint of a running server (e.g. http://127.0.0.1:4317). Without it, the benchmark
    /// starts its own `osprey serve` on a temporary directory and reports that server's peak memory.
    #[arg(long)]
    endpoint: Option<String>,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// How long to send load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1000)]
    spans_per_request: usize,
    #[arg(long, default_value_t = 10)]
    spans_per_trace: usize,
    #[arg(long, default_value_t = 10)]
    services: usize,
    /// Requests generated up front and sent round-robin, each time with other trace ids (so
    /// generation costs nothing during the run, and every span sent is a new one).
    #[arg(long, default_value_t = 200)]
    distinct_requests: usize,
    /// A flag for the started server, repeatable, e.g. `--server-arg=--fsync=interval`.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Data directory for the started server (default: a fresh one under the system temp dir, removed
    /// afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print progress (rate, server memory, data directory size) this often, in seconds.
    #[arg(long, default_value_t = 30)]
    report_seconds: u64,
    /// What the spans are sent as: OTLP/gRPC, Zipkin JSON or Jaeger thrift over HTTP (for
    /// `jaeger`, one service a request, as a jaeger-client process sends: use `--services 1`).
    /// With --endpoint, Zipkin and Jaeger take the base URL of the port (http://host:9411).
    #[arg(long, value_enum, default_value_t = Protocol::Otlp)]
    protocol: Protocol,
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Default)]
pub(super) struct ClientStats {
    pub(super) latencies: Vec<Duration>,
    pub(super) accepted_spans: u64,
    pub(super) throttled: u64,
    pub(super) failed: u64,
    pub(super) last_error: Option<Status>,
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let shape = Shape {
        spans_per_request: args.spans_per_request,
        spans_per_trace: args.spans_per_trace,
        services: args.services,
    };
    println!(
        "ingest benchmark: {} clients, {}-span requests, {} spans/trace, {} services, {} s",
        args.clients, shape.spans_per_request, shape.spans_per_trace, shape.services, args.seconds
    );
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let mut rng = fastrand::Rng::with_seed(42);
    let templates: Vec<Template> = (0..args.distinct_requests.max(1))
        .map(|_| Template::new(&tracegen::request(shape, &mut rng, now_ns)))
        .collect();
    let mean_bytes = templates.iter().map(Template::len).sum::<usize>() / templates.len();
    println!(
        "generated {} requests, {} bytes each on average ({} bytes/span)",
        templates.len(),
        mean_bytes,
        mean_bytes / shape.spans_per_request.max(1)
    );

    // The bodies sent, in the protocol's encoding (OTLP's get other trace ids on every send; the
    // others cycle through these, so their later sends repeat span ids: the same work to store).
    let bodies: Vec<(Bytes, u64)> = templates
        .iter()
        .map(|t| {
            let request = ExportTraceServiceRequest::decode(t.instance(0)).expect("generated");
            let body = args.protocol.encode(&request);
            let spans = args.protocol.decode(&body) as u64;
            (body, spans)
        })
        .collect();
    let decode_rate = decode_only_rate(args.protocol, &bodies);
    println!(
        "decode only ({:?}, one core): {} spans/s",
        args.protocol,
        thousands(decode_rate as u64)
    );

    let temp_dir = std::env::temp_dir().join(format!("osprey-bench-{}", std::process::id()));
    let (server, endpoint) = match &args.endpoint {
        Some(endpoint) => (None, endpoint.clone()),
        None => {
            let dir = args.data_dir.clone().unwrap_or_else(|| temp_dir.clone());
            let server = ServerProcess::start(&dir, &args.server_arg).await?;
            let endpoint = match args.protocol {
                Protocol::Otlp => format!("http://{}", server.grpc),
                Protocol::Zipkin => format!("http://{}", server.zipkin),
                Protocol::Jaeger => format!("http://{}", server.jaeger_http),
            };
            (Some(server), endpoint)
        }
    };
    let server_cpu_before = server.as_ref().map(ServerProcess::cpu_time).transpose()?;
    let own_cpu_before = cpu_time("/proc/self/stat")?;
    let accepted_so_far = Arc::new(AtomicU64::new(0));
    let reporter = tokio::spawn(report_progress(
        accepted_so_far.clone(),
        server.as_ref().map(ServerProcess::pid),
        args.data_dir.clone().unwrap_or_else(|| temp_dir.clone()),
        Duration::from_secs(args.report_seconds.max(1)),
    ));
    let result = match args.protocol {
        Protocol::Otlp => load(&args, Arc::new(templates), &endpoint, &accepted_so_far).await,
        protocol => {
            let bodies = Arc::new(bodies);
            http_load(
                protocol,
                &endpoint,
                bodies,
                args.clients,
                args.seconds,
                &accepted_so_far,
            )
            .await
        }
    };
    reporter.abort();
    let own_cpu = cpu_time("/proc/self/stat")? - own_cpu_before;
    let server_cpu = match (&server, server_cpu_before) {
        (Some(server), Some(before)) => Some(server.cpu_time()? - before),
        _ => None,
    };
    let peak_rss = server
        .as_ref()
        .map(ServerProcess::peak_rss_bytes)
        .transpose()?;
    drop(server);
    if args.endpoint.is_none() && args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&temp_dir);
    }
    let (stats, elapsed) = result?;

    let mut latencies: Vec<Duration> = stats.iter().flat_map(|s| s.latencies.clone()).collect();
    latencies.sort_unstable();
    let accepted: u64 = stats.iter().map(|s| s.accepted_spans).sum();
    let rate = accepted as f64 / elapsed.as_secs_f64();
    println!(
        "accepted: {} spans in {:.2} s = {} spans/s ({:.0}% of the decode-only rate)",
        thousands(accepted),
        elapsed.as_secs_f64(),
        thousands(rate as u64),
        100.0 * rate / decode_rate
    );
    println!(
        "export latency: p50 {:.1} ms, p99 {:.1} ms ({} requests, {} throttled, {} failed)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.len(),
        stats.iter().map(|s| s.throttled).sum::<u64>(),
        stats.iter().map(|s| s.failed).sum::<u64>(),
    );
    if let Some(status) = stats.iter().find_map(|s| s.last_error.as_ref()) {
        println!("last error: {status}");
    }
    let cores = |cpu: Duration| cpu.as_secs_f64() / elapsed.as_secs_f64();
    match server_cpu {
        Some(cpu) => println!(
            "CPU: server {:.2} cores ({:.2} µs a span), load generator {:.2} cores",
            cores(cpu),
            cpu.as_secs_f64() * 1e6 / accepted.max(1) as f64,
            cores(own_cpu)
        ),
        None => println!("CPU: load generator {:.2} cores", cores(own_cpu)),
    }
    match peak_rss {
        Some(bytes) => println!("server peak RSS: {} MiB", bytes >> 20),
        None => println!("server peak RSS: not measured (external --endpoint)"),
    }
    Ok(())
}

/// Every `every`: elapsed time, the rate over the last interval, the server's resident memory and the
/// size of its data directory, so a long run shows whether memory and disk stay flat.
async fn report_progress(
    accepted: Arc<AtomicU64>,
    pid: Option<u32>,
    data_dir: PathBuf,
    every: Duration,
) {
    let started = Instant::now();
    let mut last = 0u64;
    loop {
        tokio::time::sleep(every).await;
        let now = accepted.load(Ordering::Relaxed);
        let rss = pid
            .and_then(|p| memory_bytes(p, "VmRSS:").ok())
            .map_or("-".to_string(), |b| format!("{} MiB", b >> 20));
        println!(
            "  {:>5.0} s: {} spans/s, {} spans so far, server RSS {}, data dir {} MiB",
            started.elapsed().as_secs_f64(),
            thousands((now - last) / every.as_secs().max(1)),
            thousands(now),
            rss,
            dir_bytes(&data_dir) >> 20
        );
        last = now;
    }
}

async fn load(
    args: &IngestArgs,
    templates: Arc<Vec<Template>>,
    endpoint: &str,
    accepted_so_far: &Arc<AtomicU64>,
) -> anyhow::Result<(Vec<ClientStats>, Duration)> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for client in 0..args.clients.max(1) {
        let channel = Channel::from_shared(endpoint.to_string())?
            .connect()
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        let templates = templates.clone();
        let spans_per_request = args.spans_per_request as u64;
        let accepted_so_far = accepted_so_far.clone();
        tasks.push(tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            let mut stats = ClientStats::default();
            let mut sent_by_client = 0u64;
            while Instant::now() < deadline {
                let template = &templates[(client + sent_by_client as usize) % templates.len()];
                // Other trace ids on every send, and on every client.
                let body = template.instance((client as u64) << 40 | sent_by_client);
                sent_by_client += 1;
                if let Err(e) = grpc.ready().await {
                    stats.failed += 1;
                    stats.last_error = Some(Status::unavailable(e.to_string()));
                    break;
                }
                let (result, took) = send_export(&mut grpc, body).await;
                stats.latencies.push(took);
                match result {
                    Ok(response) => {
                        let rejected = response
                            .into_inner()
                            .partial_success
                            .map_or(0, |p| p.rejected_spans as u64);
                        stats.accepted_spans += spans_per_request - rejected;
                        accepted_so_far.fetch_add(spans_per_request - rejected, Ordering::Relaxed);
                    }
                    Err(status) if status.code() == Code::Unavailable => {
                        stats.throttled += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(status) => {
                        stats.failed += 1;
                        stats.last_error = Some(status);
                    }
                }
            }
            stats
        }));
    }
    let mut stats = Vec::new();
    for task in tasks {
        stats.push(task.await?);
    }
    Ok((stats, started.elapsed()))
}

/// Spans per second the receiver's decoding (and mapping to OTLP) gets through on one core, over
/// the same bodies.
fn decode_only_rate(protocol: Protocol, bodies: &[(Bytes, u64)]) -> f64 {
    let started = Instant::now();
    let mut decoded = 0usize;
    while started.elapsed() < Duration::from_secs(2) {
        for (body, _) in bodies {
            decoded += std::hint::black_box(protocol.decode(body));
        }
    }
    decoded as f64 / started.elapsed().as_secs_f64()
}

/// Sends one pre-encoded export on a ready channel; its answer and how long it took.
pub(super) async fn send_export(
    grpc: &mut tonic::client::Grpc<Channel>,
    body: Bytes,
) -> (
    Result<tonic::Response<ExportTraceServiceResponse>, Status>,
    Duration,
) {
    let sent = Instant::now();
    let result = grpc
        .unary(
            tonic::Request::new(body),
            PathAndQuery::from_static(EXPORT_PATH),
            RawRequestCodec,
        )
        .await;
    (result, sent.elapsed())
}

/// Sends pre-encoded request bytes as they are; decodes the response with prost.
struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = BytesEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("undecodable response: {e}")))
    }
}
