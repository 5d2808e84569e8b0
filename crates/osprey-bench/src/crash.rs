//! `osprey bench crash`: SIGKILL the server at random moments under concurrent OTLP/gRPC and
//! OTLP/HTTP exports, with blocks cut every second and compaction running, restart it, and count.
//!
//! Every export is one whole trace of `--spans-per-trace` spans with ids of its own, so its fate
//! can be read back by trace id: an acknowledged trace must come back with every span exactly
//! once; an unacknowledged one (in flight at the kill, or refused) whole or not at all, never
//! doubled, never torn. Each cycle's traces are checked after the next restart, and every trace of
//! the campaign once more at the end (compaction has merged the blocks since). Last, the store is
//! opened in this process to count the spans it holds: copies beyond the distinct spans would be
//! duplicates that answers hide by combining.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use osprey_model::otlp::{ExportTraceServiceRequest, ExportTraceServiceResponse};

use super::report::{percentile, thousands};
use super::server_process::ServerProcess;

#[derive(Args, Debug)]
pub struct CrashArgs {
    /// Kill-and-restart cycles.
    #[arg(long, default_value_t = 100)]
    cycles: usize,
    /// Concurrent OTLP/gRPC clients.
    #[arg(long, default_value_t = 4)]
    grpc_clients: usize,
    /// Concurrent OTLP/HTTP (protobuf) clients.
    #[arg(long, default_value_t = 4)]
    http_clients: usize,
    /// Spans in each export (one trace).
    #[arg(long, default_value_t = 20)]
    spans_per_trace: usize,
    /// The kill comes at a random moment this many milliseconds into a cycle's load, at least…
    #[arg(long, default_value_t = 200)]
    min_kill_ms: u64,
    /// …and at most.
    #[arg(long, default_value_t = 3000)]
    max_kill_ms: u64,
    /// Flags for the server, repeatable, after `--max-block-duration=1s --max-block-bytes=1MiB`
    /// (blocks cut every second, so kills land during cuts and compactions too).
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Data directory (default: a fresh one under the system temp dir, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Random seed (kill moments, trace ids).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// What became of one export.
#[derive(Clone, Copy)]
struct Sent {
    trace_id: u128,
    acknowledged: bool,
}

/// How the traces read back compare with what was sent.
#[derive(Default, Debug)]
struct Tally {
    acknowledged: u64,
    unacknowledged: u64,
    /// Acknowledged traces with spans missing.
    lost: u64,
    /// Traces with a span id more than once in the answer.
    doubled: u64,
    /// Unacknowledged traces present in part (a torn export).
    torn: u64,
    /// Unacknowledged traces present whole.
    unacknowledged_present: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.acknowledged += other.acknowledged;
        self.unacknowledged += other.unacknowledged;
        self.lost += other.lost;
        self.doubled += other.doubled;
        self.torn += other.torn;
        self.unacknowledged_present += other.unacknowledged_present;
    }
}

pub async fn run(args: CrashArgs) -> anyhow::Result<()> {
    let temp_dir = std::env::temp_dir().join(format!("osprey-crash-{}", std::process::id()));
    let dir = args.data_dir.clone().unwrap_or_else(|| temp_dir.clone());
    // The given flags come after the defaults, so they add to them (or override one).
    let mut server_args: Vec<String> = ["--max-block-duration=1s", "--max-block-bytes=1MiB"]
        .map(String::from)
        .to_vec();
    server_args.extend(args.server_arg.iter().cloned());
    println!(
        "crash campaign: {} cycles, {} gRPC + {} HTTP clients, {}-span traces, kill at {}–{} ms, server {:?}",
        args.cycles,
        args.grpc_clients,
        args.http_clients,
        args.spans_per_trace,
        args.min_kill_ms,
        args.max_kill_ms,
        server_args
    );
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut restarts = Vec::new();
    let mut all_sent: Vec<Sent> = Vec::new();
    let mut per_cycle = Tally::default();
    let (mut cuts, mut compactions) = (0u64, 0u64);
    let mut previous: Vec<Sent> = Vec::new();
    for cycle in 0..=args.cycles {
        let started = Instant::now();
        let server = ServerProcess::start(&dir, &server_args).await?;
        if cycle > 0 {
            restarts.push(started.elapsed());
        }
        let tally = check(&server, &previous, args.spans_per_trace).await?;
        per_cycle.add(&tally);
        if cycle == args.cycles {
            // The last start only checks.
            print_cycle(cycle, &tally, restarts.last(), 0);
            drop(server);
            break;
        }
        let kill_after = Duration::from_millis(rng.u64(args.min_kill_ms..=args.max_kill_ms));
        let load = Load::start(&server, &args, rng.u64(..)).await?;
        tokio::time::sleep(kill_after).await;
        if let Ok((200, metrics)) =
            crate::client::get(&format!("http://{}/metrics", server.query)).await
        {
            let text = String::from_utf8_lossy(&metrics);
            cuts += counter(&text, "osprey_block_cuts_total");
            compactions += counter(&text, "osprey_compactions_total");
        }
        server.kill()?;
        previous = load.finish().await?;
        if cycle > 0 {
            print_cycle(cycle, &tally, restarts.last(), previous.len());
        }
        all_sent.extend_from_slice(&previous);
    }

    println!("every trace of the campaign, read back once more:");
    let server = ServerProcess::start(&dir, &server_args).await?;
    let overall = check(&server, &all_sent, args.spans_per_trace).await?;
    server.kill()?;
    let stored = stored_spans(&dir).await?;
    let distinct =
        (overall.acknowledged + overall.unacknowledged_present) * args.spans_per_trace as u64;
    restarts.sort_unstable();
    println!(
        "cycles: {}; exports acknowledged: {} ({} spans), unacknowledged: {} (present whole afterwards: {})",
        args.cycles,
        thousands(overall.acknowledged),
        thousands(overall.acknowledged * args.spans_per_trace as u64),
        thousands(overall.unacknowledged),
        thousands(overall.unacknowledged_present),
    );
    println!(
        "acknowledged traces lost: {} (at the cycle checks: {}); doubled in an answer: {} ({}); torn: {} ({})",
        overall.lost, per_cycle.lost, overall.doubled, per_cycle.doubled, overall.torn, per_cycle.torn
    );
    println!(
        "spans stored at the end: {} for {} distinct ({} extra copies)",
        thousands(stored),
        thousands(distinct),
        stored as i64 - distinct as i64
    );
    println!(
        "blocks cut before the kills: {cuts}, compactions: {compactions}; restart to ready: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&restarts, 0.5).as_secs_f64() * 1e3,
        percentile(&restarts, 0.99).as_secs_f64() * 1e3,
        restarts.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&temp_dir);
    }
    // Answers combine repeated spans, so copies in the store show only in this count.
    if overall.lost + overall.doubled + overall.torn > 0
        || per_cycle.lost + per_cycle.doubled + per_cycle.torn > 0
        || stored != distinct
    {
        bail!("the campaign found lost, doubled, torn or extra stored spans (above)");
    }
    Ok(())
}

fn print_cycle(cycle: usize, tally: &Tally, restart: Option<&Duration>, sent_next: usize) {
    println!(
        "  cycle {cycle:>3}: restart {:>5.0} ms; checked {} acknowledged, {} not ({} present); lost {}, doubled {}, torn {}; next load sent {}",
        restart.map_or(0.0, |d| d.as_secs_f64() * 1e3),
        tally.acknowledged,
        tally.unacknowledged,
        tally.unacknowledged_present,
        tally.lost,
        tally.doubled,
        tally.torn,
        sent_next,
    );
}

/// A counter's value in Prometheus text (0 when absent).
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Reads every trace of `sent` back through the Jaeger API and compares.
async fn check(server: &ServerProcess, sent: &[Sent], spans: usize) -> anyhow::Result<Tally> {
    let query = server.query;
    let mut tally = Tally::default();
    for chunk in sent.chunks(256) {
        let mut reads = tokio::task::JoinSet::new();
        for part in chunk.chunks(chunk.len().div_ceil(8)) {
            let part = part.to_vec();
            reads.spawn(async move {
                let mut found = Vec::with_capacity(part.len());
                for s in part {
                    found.push((s, span_ids(query, s.trace_id).await?));
                }
                anyhow::Ok(found)
            });
        }
        while let Some(result) = reads.join_next().await {
            let found = result??;
            for (sent, ids) in found {
                let mut distinct = ids.clone();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() < ids.len() {
                    tally.doubled += 1;
                }
                if sent.acknowledged {
                    tally.acknowledged += 1;
                    if distinct.len() < spans {
                        tally.lost += 1;
                    }
                } else {
                    tally.unacknowledged += 1;
                    match distinct.len() {
                        0 => {}
                        n if n == spans => tally.unacknowledged_present += 1,
                        _ => tally.torn += 1,
                    }
                }
            }
        }
    }
    Ok(tally)
}

/// The span ids of trace `trace_id` as the Jaeger API answers (empty when not found).
async fn span_ids(query: std::net::SocketAddr, trace_id: u128) -> anyhow::Result<Vec<String>> {
    let url = format!("http://{query}/api/traces/{trace_id:032x}");
    let (status, body) = crate::client::get(&url).await?;
    match status {
        404 => Ok(Vec::new()),
        200 => {
            let json: serde_json::Value = serde_json::from_slice(&body)?;
            Ok(json["data"][0]["spans"]
                .as_array()
                .context("a trace without spans")?
                .iter()
                .filter_map(|s| s["spanID"].as_str().map(String::from))
                .collect())
        }
        other => bail!("GET {url}: {other}: {}", String::from_utf8_lossy(&body)),
    }
}

/// Spans held by the store in `dir` (blocks and the log not in blocks yet), opened here.
async fn stored_spans(dir: &std::path::Path) -> anyhow::Result<u64> {
    let (tenants, _) = osprey_store::Tenants::open(dir, Default::default()).await?;
    Ok(tenants
        .all()
        .iter()
        .map(|store| {
            store.head_span_count()
                + store
                    .blocks()
                    .iter()
                    .map(|b| b.meta.span_count)
                    .sum::<u64>()
        })
        .sum())
}

/// The clients of one cycle, sending until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sent>>>,
}

impl Load {
    async fn start(server: &ServerProcess, args: &CrashArgs, seed: u64) -> anyhow::Result<Load> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let spans = args.spans_per_trace;
        for client in 0..args.grpc_clients {
            let endpoint = format!("http://{}", server.grpc);
            let channel = Channel::from_shared(endpoint.clone())?
                .connect()
                .await
                .with_context(|| format!("connecting to {endpoint}"))?;
            let (stop, mut rng) = (stop.clone(), fastrand::Rng::with_seed(seed ^ client as u64));
            tasks.push(tokio::spawn(async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                let mut sent = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let (trace_id, request) = export(&mut rng, spans);
                    let acknowledged = match grpc.ready().await {
                        Ok(()) => grpc
                            .unary(
                                tonic::Request::new(request),
                                PathAndQuery::from_static(EXPORT_PATH),
                                tonic_prost::ProstCodec::<
                                    ExportTraceServiceRequest,
                                    ExportTraceServiceResponse,
                                >::default(),
                            )
                            .await
                            .is_ok_and(|r| {
                                r.into_inner()
                                    .partial_success
                                    .is_none_or(|p| p.rejected_spans == 0)
                            }),
                        Err(_) => false,
                    };
                    settle(&mut sent, trace_id, acknowledged).await;
                }
                sent
            }));
        }
        let uri: hyper::Uri = format!("http://{}/v1/traces", server.http).parse()?;
        for client in 0..args.http_clients {
            let (stop, uri) = (stop.clone(), uri.clone());
            let mut rng = fastrand::Rng::with_seed(seed ^ (1 << 32 | client as u64));
            tasks.push(tokio::spawn(async move {
                let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
                let mut sent = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let (trace_id, request) = export(&mut rng, spans);
                    let body = Bytes::from(prost::Message::encode_to_vec(&request));
                    let request = hyper::Request::post(uri.clone())
                        .header("content-type", "application/x-protobuf")
                        .body(Full::new(body))
                        .expect("a valid request");
                    let acknowledged = http.request(request).await.is_ok_and(|r| r.status() == 200);
                    settle(&mut sent, trace_id, acknowledged).await;
                }
                sent
            }));
        }
        Ok(Load { stop, tasks })
    }

    /// Stops the clients (the server is gone by now) and returns what each export came to.
    async fn finish(self) -> anyhow::Result<Vec<Sent>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut sent = Vec::new();
        for task in self.tasks {
            sent.extend(task.await?);
        }
        Ok(sent)
    }
}

/// Records what became of an export; after a refusal (or with the server gone) pauses a little
/// rather than spin.
async fn settle(sent: &mut Vec<Sent>, trace_id: u128, acknowledged: bool) {
    sent.push(Sent {
        trace_id,
        acknowledged,
    });
    if !acknowledged {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One export: a whole trace of `spans` spans under a fresh random id.
fn export(rng: &mut fastrand::Rng, spans: usize) -> (u128, ExportTraceServiceRequest) {
    let trace_id = rng.u128(1..);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    let span = |i: usize| osprey_model::otlp::Span {
        trace_id: trace_id.to_be_bytes().to_vec(),
        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
        parent_span_id: if i == 0 {
            Vec::new()
        } else {
            1u64.to_be_bytes().to_vec()
        },
        name: if i == 0 { "checkout" } else { "step" }.to_string(),
        kind: 2,
        start_time_unix_nano: now + i as u64,
        end_time_unix_nano: now + 1_000_000,
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![osprey_model::otlp::ResourceSpans {
            resource: Some(osprey_model::otlp::Resource {
                attributes: vec![super::tracegen::string("service.name", "crash-test".into())],
                ..Default::default()
            }),
            scope_spans: vec![osprey_model::otlp::ScopeSpans {
                spans: (0..spans).map(span).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (trace_id, request)
}
