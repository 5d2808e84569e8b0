//! `osprey bench soak`: an hour (or `--minutes`) of ingest at 80 % of the rate this machine
//! sustains, with blocks cut, compacted and deleted by retention meanwhile and queries running in
//! parallel; every 30 s the server's memory, the accepted rate, the export and query p99 and the
//! data directory's size are sampled, printed, written as CSV and drawn as an SVG chart. The target
//! is flat lines: no growth of memory after the first cut, no latency creep.
//!
//! Clients send on a schedule whether or not earlier answers have come (up to
//! [`IN_FLIGHT_PER_CLIENT`] each), as SDK exporters with a queue do, so `--share 200` offers twice
//! what the server can take: the overload test, where the accepted rate must hold at the maximum,
//! memory stay bounded and the excess be refused with UNAVAILABLE and a retry hint.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use parking_lot::Mutex;
use tonic::transport::Channel;

use super::ingest::send_export;
use super::report::{percentile, thousands};
use super::server_process::{dir_bytes, memory_bytes, ServerProcess};
use super::tracegen::{self, Shape, Template};

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// How long to run.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// Spans per second to send. Default: `--share` of what the server accepts in a first
    /// `--measure-seconds` of unpaced load.
    #[arg(long)]
    rate: Option<u64>,
    /// Percent of the measured maximum to offer when `--rate` is not given: 80 for a soak, 200
    /// for the overload test.
    #[arg(long, default_value_t = 80)]
    share: u64,
    #[arg(long, default_value_t = 60)]
    measure_seconds: u64,
    /// Concurrent OTLP/gRPC clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Sample every this many seconds.
    #[arg(long, default_value_t = 30)]
    sample_seconds: u64,
    /// Flags for the server, repeatable. Default: `--max-block-duration=1m --retention=10m`, so
    /// blocks are cut, compacted and deleted many times within the hour.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Where the samples go as CSV.
    #[arg(long, default_value = "soak.csv")]
    csv: PathBuf,
    /// Where the chart goes (SVG).
    #[arg(long, default_value = "soak.svg")]
    svg: PathBuf,
}

const SHAPE: Shape = Shape {
    spans_per_request: 1000,
    spans_per_trace: 10,
    services: 10,
};

/// Requests generated up front; they get fresh timestamps every minute and other trace ids on
/// every send.
const TEMPLATES: usize = 50;

/// What every client and the query task record between two samples.
#[derive(Default)]
struct Window {
    export_latencies: Vec<Duration>,
    query_latencies: Vec<Duration>,
    /// Exports refused with UNAVAILABLE or RESOURCE_EXHAUSTED and a retry hint (RetryInfo).
    throttled: u64,
    /// Exports that failed otherwise (any other code, or throttling without a retry hint).
    refused: u64,
    /// Sends a client skipped because it already had [`IN_FLIGHT_PER_CLIENT`] waiting.
    skipped: u64,
    /// Queries that did not answer 200 (a soak whose queries fail measures nothing).
    failed_queries: u64,
}

struct Shared {
    accepted: AtomicU64,
    window: Mutex<Window>,
    templates: Mutex<Arc<Vec<Template>>>,
    /// Nanoseconds between two sends of one client; 0: as fast as answers come.
    interval_ns: AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

fn templates() -> anyhow::Result<Arc<Vec<Template>>> {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let mut rng = fastrand::Rng::new();
    Ok(Arc::new(
        (0..TEMPLATES)
            .map(|_| Template::new(&tracegen::request(SHAPE, &mut rng, now_ns)))
            .collect(),
    ))
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("osprey-soak-{}", std::process::id()));
    let server_args = if args.server_arg.is_empty() {
        ["--max-block-duration=1m", "--retention=10m"]
            .map(String::from)
            .to_vec()
    } else {
        args.server_arg.clone()
    };
    let server = ServerProcess::start(&dir, &server_args).await?;
    let shared = Arc::new(Shared {
        accepted: AtomicU64::new(0),
        window: Mutex::default(),
        templates: Mutex::new(templates()?),
        interval_ns: AtomicU64::new(0),
        stop: Default::default(),
    });
    let endpoint = format!("http://{}", server.grpc);
    let mut tasks = Vec::new();
    for client in 0..args.clients.max(1) {
        let channel = Channel::from_shared(endpoint.clone())?
            .connect()
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        tasks.push(tokio::spawn(send(channel, client, shared.clone())));
    }
    let refresher = tokio::spawn({
        let shared = shared.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                if let Ok(Ok(fresh)) = tokio::task::spawn_blocking(templates).await {
                    *shared.templates.lock() = fresh;
                }
            }
        }
    });

    let rate = match args.rate {
        Some(rate) => rate,
        None => {
            let before = shared.accepted.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(args.measure_seconds)).await;
            let max =
                (shared.accepted.load(Ordering::Relaxed) - before) / args.measure_seconds.max(1);
            println!(
                "measured maximum: {} spans/s over {} s",
                thousands(max),
                args.measure_seconds
            );
            max * args.share / 100
        }
    };
    let per_client = rate as f64 / args.clients.max(1) as f64 / SHAPE.spans_per_request as f64;
    shared
        .interval_ns
        .store((1e9 / per_client.max(1e-3)) as u64, Ordering::Relaxed);
    println!(
        "soak: {} spans/s from {} clients for {} min; server {:?}; samples every {} s",
        thousands(rate),
        args.clients,
        args.minutes,
        server_args,
        args.sample_seconds
    );
    let querier = tokio::spawn(query_loop(server.query, shared.clone()));
    *shared.window.lock() = Window::default();

    let mut csv = String::from(
        "minute,rss_mib,accepted_spans_per_s,throttled,refused,skipped,export_p99_ms,query_p99_ms,failed_queries,data_dir_mib\n",
    );
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut last_accepted = shared.accepted.load(Ordering::Relaxed);
    let every = Duration::from_secs(args.sample_seconds.max(1));
    while started.elapsed() < Duration::from_secs(args.minutes * 60) {
        tokio::time::sleep(every).await;
        let window = std::mem::take(&mut *shared.window.lock());
        let accepted = shared.accepted.load(Ordering::Relaxed);
        let (mut exports, mut queries) = (window.export_latencies, window.query_latencies);
        exports.sort_unstable();
        queries.sort_unstable();
        let sample = Sample {
            minute: started.elapsed().as_secs_f64() / 60.0,
            rss_mib: memory_bytes(server.pid(), "VmRSS:")? as f64 / (1 << 20) as f64,
            rate: (accepted - last_accepted) as f64 / every.as_secs_f64(),
            throttled: window.throttled,
            refused: window.refused,
            skipped: window.skipped,
            export_p99_ms: percentile(&exports, 0.99).as_secs_f64() * 1e3,
            query_p99_ms: percentile(&queries, 0.99).as_secs_f64() * 1e3,
            failed_queries: window.failed_queries,
            data_dir_mib: dir_bytes(&dir) as f64 / (1 << 20) as f64,
        };
        last_accepted = accepted;
        println!(
            "  {:>5.1} min: RSS {:>6.0} MiB, {:>9} spans/s accepted, {} throttled, {} refused, {} skipped, export p99 {:>6.1} ms, query p99 {:>7.1} ms ({} failed), data dir {:>6.0} MiB",
            sample.minute,
            sample.rss_mib,
            thousands(sample.rate as u64),
            sample.throttled,
            sample.refused,
            sample.skipped,
            sample.export_p99_ms,
            sample.query_p99_ms,
            sample.failed_queries,
            sample.data_dir_mib
        );
        csv.push_str(&format!(
            "{:.2},{:.1},{:.0},{},{},{},{:.2},{:.2},{},{:.1}\n",
            sample.minute,
            sample.rss_mib,
            sample.rate,
            sample.throttled,
            sample.refused,
            sample.skipped,
            sample.export_p99_ms,
            sample.query_p99_ms,
            sample.failed_queries,
            sample.data_dir_mib
        ));
        samples.push(sample);
        std::fs::write(&args.csv, &csv)?;
        std::fs::write(&args.svg, chart(&samples, rate))?;
    }
    shared.stop.store(true, Ordering::Relaxed);
    refresher.abort();
    querier.abort();
    for task in tasks {
        let _ = task.await;
    }
    println!(
        "wrote {} and {}; server peak RSS {} MiB",
        args.csv.display(),
        args.svg.display(),
        server.peak_rss_bytes()? >> 20
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Answers a client may wait for at once; past it the client skips sends (counted) rather than
/// queue without bound in the load generator.
const IN_FLIGHT_PER_CLIENT: u64 = 16;

/// One client: sends a fresh instance of the next template every interval, without waiting for
/// earlier answers (or one after the other, as fast as answers come, while the interval is 0),
/// counting what is accepted, throttled and refused.
async fn send(channel: Channel, client: usize, shared: Arc<Shared>) {
    let grpc = tonic::client::Grpc::new(channel);
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut sent = 0u64;
    // When the next send is due; `None` while sending unpaced. A late wake-up sends what fell due
    // meanwhile (no tick is dropped), so the offered rate is the asked one.
    let mut next: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let interval = shared.interval_ns.load(Ordering::Relaxed);
        if interval > 0 {
            let due = *next.get_or_insert_with(Instant::now);
            tokio::time::sleep_until(due.into()).await;
            next = Some(due + Duration::from_nanos(interval));
            if in_flight.load(Ordering::Relaxed) >= IN_FLIGHT_PER_CLIENT {
                shared.window.lock().skipped += 1;
                continue;
            }
        }
        let body = {
            let templates = shared.templates.lock().clone();
            templates[(client + sent as usize) % templates.len()]
                .instance((client as u64) << 40 | sent)
        };
        sent += 1;
        let mut grpc = grpc.clone();
        if grpc.ready().await.is_err() {
            break;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let export = {
            let (shared, in_flight) = (shared.clone(), in_flight.clone());
            async move {
                let (result, took) = send_export(&mut grpc, body).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                record(&shared, result.map(drop), took);
            }
        };
        if interval > 0 {
            tokio::spawn(export);
        } else {
            export.await;
        }
    }
}

fn record(shared: &Shared, result: Result<(), tonic::Status>, took: Duration) {
    let mut window = shared.window.lock();
    window.export_latencies.push(took);
    match result {
        Ok(()) => {
            shared
                .accepted
                .fetch_add(SHAPE.spans_per_request as u64, Ordering::Relaxed);
        }
        Err(status) if throttled(&status) => window.throttled += 1,
        Err(_) => window.refused += 1,
    }
}

/// Whether `status` is a throttling answer a client can act on: UNAVAILABLE or RESOURCE_EXHAUSTED
/// with a `RetryInfo` saying when to come back.
fn throttled(status: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted
    ) && status.get_details_retry_info().is_some()
}

/// Queries in a loop, as a few people watching the last minute would: a Jaeger search, a TraceQL
/// search and the service graph, one every [`QUERY_PAUSE`]. Wider lookbacks or no pause make the
/// soak a query benchmark: at 80 % of the ingest maximum a minute holds tens of millions of spans,
/// and a scan of them takes a core for seconds, which the ingest then lacks.
async fn query_loop(query: std::net::SocketAddr, shared: Arc<Shared>) {
    // Each answers for the last minute, given as `start`/`end` in microseconds (appended below).
    let paths = [
        "/api/traces?service=service-3&limit=20",
        "/api/osprey/traceql?q=%7B%20resource.service.name%20%3D%20%22service-5%22%20%26%26%20duration%20%3E%2050ms%20%7D&limit=20",
        "/api/osprey/service-graph",
    ];
    for path in paths.iter().cycle() {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64;
        let start_us = now_us.saturating_sub(60_000_000);
        let joint = if path.contains('?') { '&' } else { '?' };
        let url = format!("http://{query}{path}{joint}start={start_us}&end={now_us}");
        let at = Instant::now();
        let ok = matches!(crate::client::get(&url).await, Ok((200, _)));
        {
            let mut window = shared.window.lock();
            window.query_latencies.push(at.elapsed());
            window.failed_queries += u64::from(!ok);
        }
        tokio::time::sleep(QUERY_PAUSE).await;
    }
}

const QUERY_PAUSE: Duration = Duration::from_secs(2);

struct Sample {
    minute: f64,
    rss_mib: f64,
    rate: f64,
    throttled: u64,
    refused: u64,
    skipped: u64,
    export_p99_ms: f64,
    query_p99_ms: f64,
    failed_queries: u64,
    data_dir_mib: f64,
}

/// Four panels, one line each, sharing the time axis.
fn chart(samples: &[Sample], target_rate: u64) -> String {
    type Series = (&'static str, &'static str, fn(&Sample) -> f64);
    let panels: [Series; 4] = [
        ("server RSS (MiB)", "#1f77b4", |s| s.rss_mib),
        ("accepted spans/s", "#2ca02c", |s| s.rate),
        ("export p99 (ms)", "#d62728", |s| s.export_p99_ms),
        ("query p99 (ms)", "#9467bd", |s| s.query_p99_ms),
    ];
    let (width, height, left, top) = (900.0, 150.0, 70.0, 30.0);
    let minutes = samples.last().map_or(1.0, |s| s.minute).max(1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"18\" font-size=\"14\">osprey bench soak: {} spans/s offered, {:.0} min</text>\n",
        width + left + 20.0,
        top + panels.len() as f64 * (height + 40.0),
        thousands(target_rate),
        minutes
    );
    for (i, (title, colour, value)) in panels.iter().enumerate() {
        let y0 = top + i as f64 * (height + 40.0) + 20.0;
        let max = samples.iter().map(value).fold(0.0, f64::max).max(1e-9) * 1.1;
        let points: Vec<String> = samples
            .iter()
            .map(|s| {
                format!(
                    "{:.1},{:.1}",
                    left + s.minute / minutes * width,
                    y0 + height - value(s) / max * height
                )
            })
            .collect();
        svg.push_str(&format!(
            "<text x=\"{left}\" y=\"{:.0}\">{title}</text>\n<rect x=\"{left}\" y=\"{y0}\" width=\"{width}\" height=\"{height}\" fill=\"none\" stroke=\"#ccc\"/>\n<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{:.0}</text>\n<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">0</text>\n<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{:.0} min</text>\n",
            y0 - 5.0,
            left - 5.0,
            y0 + 10.0,
            max,
            left - 5.0,
            y0 + height,
            points.join(" "),
            left + width,
            y0 + height + 15.0,
            minutes
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
