//! The `osprey` binary: `serve` (the default), `trace`, `query`, `blocks` and `bench`.

mod auth;
mod blocks;
mod config;
mod grpc_listener;
mod http_server;
mod remote;
mod serve;
mod tls;
mod trace_tree;
mod traceql_query;
mod units;

use clap::{Parser, Subcommand};

/// Ingest allocates and frees millions of small strings per second (decoded attributes); glibc's
/// allocator spent a third of the CPU on that, with lock contention between threads. mimalloc halves it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Osprey: a distributed tracing backend in one binary. Takes OTLP (gRPC and HTTP), keeps spans durably,
/// shows them in its web UI (port 16686) and answers the Jaeger (16686) and Tempo (3200) query APIs.
#[derive(Parser)]
#[command(name = "osprey", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Flags of `serve`, which runs when no command is given.
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default command).
    Serve(Box<serve::ServeArgs>),
    /// Print one trace as an indented tree: service, operation, start offset, duration, a bar, errors.
    Trace(trace_tree::TraceArgs),
    /// Find traces with a TraceQL query: a table of the matching traces, newest first.
    Query(traceql_query::QueryArgs),
    /// List the blocks in the store: time range, spans, traces, bytes.
    Blocks(blocks::BlocksArgs),
    /// Measure Osprey on this machine.
    #[command(subcommand)]
    Bench(osprey_bench::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    config::apply_file(&args)?;
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OSPREY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    // 8 MiB stacks (the default is 2): TraceQL evaluation recurses down a query's operators, and a
    // query of the longest allowed (traceql::MAX_TOKENS) needs about 4 MiB in a debug build.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()?;
    match cli.command {
        None => runtime.block_on(serve::run(cli.serve)),
        Some(Command::Serve(args)) => runtime.block_on(serve::run(*args)),
        Some(Command::Trace(args)) => runtime.block_on(trace_tree::run(args)),
        Some(Command::Query(args)) => runtime.block_on(traceql_query::run(args)),
        Some(Command::Blocks(args)) => runtime.block_on(blocks::run(args)),
        Some(Command::Bench(command)) => runtime.block_on(osprey_bench::run(command)),
    }
}
