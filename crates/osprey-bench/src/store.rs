//! `osprey bench wal` and `osprey bench query`: the store and query engine in-process, without the
//! network, so their own costs show.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use prometheus_client::metrics::counter::Counter;
use prost::Message;

use osprey_model::otlp::ExportTraceServiceRequest;
use osprey_model::TraceId;
use osprey_query::traceql::{parse, Root};
use osprey_query::{default_step, MetricsRequest, Query, TraceQuery, TraceqlSearch};
use osprey_store::{FsyncPolicy, Store, StoreOptions, WalOptions};

use super::report::{percentile, thousands};
use super::tracegen::{self, Shape};

#[derive(Args, Debug)]
pub struct WalArgs {
    /// Concurrent appenders (as concurrent exports would be).
    #[arg(long, default_value_t = 8)]
    appenders: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 1000)]
    spans_per_request: usize,
    /// Acknowledge after write and fsync every 100 ms instead of fsync before every acknowledgement.
    #[arg(long)]
    relaxed: bool,
    /// Directory for the log (default: a fresh one under the system temp dir, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Spans to load into the store before measuring.
    #[arg(long, default_value_t = 1_000_000)]
    spans: usize,
    #[arg(long, default_value_t = 10)]
    spans_per_trace: usize,
    /// How long each measured query kind runs.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Cut everything into blocks before measuring (queries then read Parquet, not the head).
    #[arg(long)]
    blocks: bool,
    /// With --blocks: spans a block.
    #[arg(long, default_value_t = 1_000_000)]
    block_spans: usize,
    /// Spread the spans over this many hours (blocks in time order, the newest ending now).
    #[arg(long, default_value_t = 0.0)]
    hours: f64,
    /// Where blocks go (a directory or an s3:// URL, as for `serve`); with it, the requests each
    /// query makes to the store are printed.
    #[arg(long)]
    storage: Option<String>,
    /// Measure only the query kinds whose label contains this text (e.g. `traceql`, `attribute`).
    #[arg(long)]
    only: Option<String>,
}

/// A data directory that is removed afterwards unless the user named it.
struct BenchDir {
    path: PathBuf,
    remove: bool,
}

impl BenchDir {
    fn new(given: Option<PathBuf>, name: &str) -> BenchDir {
        match given {
            Some(path) => BenchDir {
                path,
                remove: false,
            },
            None => BenchDir {
                path: std::env::temp_dir()
                    .join(format!("osprey-bench-{name}-{}", std::process::id())),
                remove: true,
            },
        }
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub(super) fn generate(count: usize, shape: Shape) -> Vec<(Arc<ExportTraceServiceRequest>, Bytes)> {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = fastrand::Rng::with_seed(7);
    (0..count)
        .map(|_| {
            let request = tracegen::request(shape, &mut rng, now_ns);
            let bytes = Bytes::from(request.encode_to_vec());
            (Arc::new(request), bytes)
        })
        .collect()
}

pub async fn wal(args: WalArgs) -> anyhow::Result<()> {
    let shape = Shape {
        spans_per_request: args.spans_per_request,
        spans_per_trace: 10,
        services: 10,
    };
    let requests = Arc::new(generate(64, shape));
    let dir = BenchDir::new(args.data_dir, "wal");
    let options = StoreOptions {
        wal: WalOptions {
            fsync: if args.relaxed {
                FsyncPolicy::Interval(Duration::from_millis(100))
            } else {
                FsyncPolicy::Always
            },
            ..WalOptions::default()
        },
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(&dir.path, options).await?;
    let store = Arc::new(store);
    println!(
        "WAL append: {} appenders, {}-span records of {} bytes, fsync {}",
        args.appenders,
        shape.spans_per_request,
        requests[0].1.len(),
        if args.relaxed {
            "every 100 ms"
        } else {
            "before every ack"
        }
    );
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for appender in 0..args.appenders.max(1) {
        let (store, requests) = (store.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut next = appender;
            while Instant::now() < deadline {
                let (request, bytes) = &requests[next % requests.len()];
                next += 1;
                let sent = Instant::now();
                store.append(request, bytes.clone()).await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let metrics = store.metrics();
    let bytes = metrics.wal_bytes.get();
    println!(
        "appended {} records ({} spans, {} MiB) in {elapsed:.2} s: {} records/s, {} spans/s, {:.0} MiB/s",
        thousands(latencies.len() as u64),
        thousands((latencies.len() * shape.spans_per_request) as u64),
        bytes >> 20,
        thousands((latencies.len() as f64 / elapsed) as u64),
        thousands((latencies.len() as f64 * shape.spans_per_request as f64 / elapsed) as u64),
        bytes as f64 / elapsed / (1 << 20) as f64,
    );
    println!(
        "fsyncs: {} ({:.1} records per fsync); append latency p50 {:.2} ms, p99 {:.2} ms",
        thousands(metrics.wal_fsyncs.get()),
        latencies.len() as f64 / metrics.wal_fsyncs.get().max(1) as f64,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}

/// How each query kind is measured: for how long, which kinds (`only`), and what the store reads,
/// to print per query (object-store requests and Parquet bytes).
struct Io {
    requests: Counter,
    bytes: Counter,
    seconds: u64,
    only: Option<String>,
}

/// Runs `work` repeatedly for `seconds` (at least once); prints its rate, latency, and what each
/// run read from the store (with the rate it read at, as Tempo reports search speed).
fn measure(
    label: &str,
    io: &Io,
    mut work: impl FnMut(usize) -> anyhow::Result<usize>,
) -> anyhow::Result<()> {
    if io
        .only
        .as_ref()
        .is_some_and(|only| !label.contains(only.as_str()))
    {
        return Ok(());
    }
    let seconds = io.seconds;
    let (requests_before, bytes_before) = (io.requests.get(), io.bytes.get());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    let mut results = 0;
    let mut i = 0;
    while i == 0 || Instant::now() < deadline {
        let started = Instant::now();
        results += work(i)?;
        latencies.push(started.elapsed());
        i += 1;
    }
    let total: Duration = latencies.iter().sum();
    latencies.sort_unstable();
    let runs = latencies.len() as f64;
    let bytes = (io.bytes.get() - bytes_before) as f64;
    println!(
        "{label}: {:.0}/s, p50 {:.3} ms, p99 {:.3} ms, {:.1} results each, {:.1} store requests and {:.1} MB read each ({:.2} GB/s)",
        runs / total.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        results as f64 / runs,
        (io.requests.get() - requests_before) as f64 / runs,
        bytes / runs / 1e6,
        bytes / total.as_secs_f64() / 1e9,
    );
    Ok(())
}

pub async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let shape = Shape {
        spans_per_request: 1000,
        spans_per_trace: args.spans_per_trace,
        services: 10,
    };
    let dir = BenchDir::new(args.data_dir, "query");
    let options = StoreOptions {
        wal: WalOptions {
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
            ..WalOptions::default()
        },
        storage: args.storage.clone(),
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(&dir.path, options).await?;
    // Generated and stored a block's worth at a time, so any size fits in memory; each block's spans
    // are `hours / blocks` older than the next one's, the newest ending now.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let requests_total = args.spans.div_ceil(shape.spans_per_request);
    let per_block = (args.block_spans / shape.spans_per_request).max(1);
    let chunks = requests_total.div_ceil(per_block);
    let step_ns = (args.hours * 3600.0 * 1e9) as u64 / chunks.max(1) as u64;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut traces: Vec<TraceId> = Vec::new();
    let mut stored = 0u64;
    let (loading, mut cutting) = (Instant::now(), Duration::ZERO);
    for chunk in 0..chunks {
        let base_ns = now_ns - (chunks - 1 - chunk) as u64 * step_ns;
        for _ in 0..per_block.min(requests_total - chunk * per_block) {
            let request = tracegen::request(shape, &mut rng, base_ns);
            // A sample of the roots (at most about 100,000) to look traces up by id.
            traces.extend(
                request
                    .resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .filter(|s| s.parent_span_id.is_empty())
                    .filter(|_| rng.usize(..args.spans.div_ceil(1_000_000).max(1)) == 0)
                    .filter_map(|s| TraceId::from_bytes(&s.trace_id).ok()),
            );
            let bytes = Bytes::from(request.encode_to_vec());
            store.append(&request, bytes).await?;
            stored += shape.spans_per_request as u64;
        }
        if args.blocks {
            let started = Instant::now();
            store.flush().await?;
            cutting += started.elapsed();
        }
    }
    println!(
        "loaded {} spans ({} traces sampled for lookups) in {:.2} s",
        thousands(stored),
        thousands(traces.len() as u64),
        (loading.elapsed() - cutting).as_secs_f64()
    );
    if args.blocks {
        let blocks = store.blocks();
        println!(
            "cut into {} block(s) in {:.2} s: {} bytes of Parquet, {:.1} bytes a span",
            blocks.len(),
            cutting.as_secs_f64(),
            thousands(blocks.iter().map(|b| b.meta.data_bytes).sum()),
            blocks.iter().map(|b| b.meta.data_bytes).sum::<u64>() as f64
                / blocks.iter().map(|b| b.meta.span_count).sum::<u64>().max(1) as f64
        );
    }
    // The queries look at the last hour, as a user's default search does.
    let (window_start, window_end) = (now_ns - 3_600_000_000_000, now_ns + 60_000_000_000);
    let io = Io {
        requests: store.metrics().object_requests.clone(),
        bytes: store.metrics().parquet_bytes_read.clone(),
        seconds: args.seconds,
        only: args.only,
    };
    let query = Query::new(Arc::new(store));
    tokio::task::spawn_blocking(move || {
        // Twice: the first pass reads each block's footer and trace-id index on first use (what a
        // query pays once after a start), the second, on other traces, is the steady state.
        for (label, offset) in [
            ("trace by id (assembly), first pass", 0),
            ("trace by id (assembly), second pass", traces.len() / 2),
        ] {
            measure(label, &io, |i| {
                let trace = query.trace(&traces[(i * 7919 + offset) % traces.len()])?;
                Ok(trace.map_or(0, |t| {
                    t.iter()
                        .flat_map(|rs| &rs.scope_spans)
                        .map(|ss| ss.spans.len())
                        .sum()
                }))
            })?;
        }
        let last_hour = TraceQuery {
            start_ns: Some(window_start),
            end_ns: Some(window_end),
            limit: 20,
            ..TraceQuery::default()
        };
        let by_service = TraceQuery {
            service: Some("service-3".into()),
            ..last_hour.clone()
        };
        measure("search service=service-3 limit 20", &io, |_| {
            Ok(query.search(&by_service)?.len())
        })?;
        let slow = TraceQuery {
            service: Some("service-3".into()),
            min_duration_ns: Some(450_000_000),
            ..last_hour.clone()
        };
        measure("search service + minDuration 450ms", &io, |_| {
            Ok(query.search(&slow)?.len())
        })?;
        let attribute = TraceQuery {
            attributes: vec![("attribute.key.07".into(), "value-123".into())],
            ..last_hour.clone()
        };
        measure("search attribute.key.07=value-123 limit 20", &io, |_| {
            Ok(query.search(&attribute)?.len())
        })?;
        let ids = query.search(&by_service)?;
        measure("summaries of 20 traces", &io, |_| {
            Ok(query.summaries(&ids)?.len())
        })?;
        measure("service graph over the last hour", &io, |_| {
            Ok(query.service_graph(window_start, window_end)?.edges.len())
        })?;
        measure("rate/errors/duration of service-3, 60 steps", &io, |_| {
            Ok(query
                .red(
                    "service-3",
                    None,
                    window_start,
                    window_end,
                    (window_end - window_start) / 60,
                )?
                .operations
                .len())
        })?;
        traceql(&query, &io, (window_start, window_end))
    })
    .await?
}

/// The TraceQL queries of the issue's benchmark, newest 20 traces over the window, and a metrics
/// query over it.
fn traceql(query: &Query, io: &Io, (start_ns, end_ns): (u64, u64)) -> anyhow::Result<()> {
    for q in [
        "{ duration > 450ms }",
        r#"{ span.attribute.key.07 = "value-123" }"#,
        r#"{ span.attribute.key.07 =~ "value-12[0-9]" }"#,
        r#"{ resource.service.name = "service-0" } > { resource.service.name = "service-3" && duration > 400ms }"#,
        "{ } | count() > 5",
    ] {
        let Root::Spans(expr) = parse(q)?.root else {
            anyhow::bail!("{q} is not a search")
        };
        let search = TraceqlSearch {
            expr,
            start_ns,
            end_ns,
            limit: 20,
            spans_per_spanset: 3,
        };
        measure(&format!("traceql {q}"), io, |_| {
            Ok(query.traceql_search(&search)?.0.len())
        })?;
    }
    let q = "{ } | rate() by (resource.service.name)";
    let Root::Metrics(metrics) = parse(q)?.root else {
        anyhow::bail!("{q} is not a metrics query")
    };
    let request = MetricsRequest {
        query: metrics,
        start_ns,
        end_ns,
        step_ns: default_step(start_ns, end_ns),
        instant: false,
        exemplars: 0,
    }
    .aligned();
    measure(&format!("traceql {q}"), io, |_| {
        Ok(query.traceql_metrics(&request)?.len())
    })
}
