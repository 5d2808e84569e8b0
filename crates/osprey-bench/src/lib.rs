//! `osprey bench`: throughput figures measured on this machine. Benchmarks print; they never fail on
//! time. They run inside the `osprey` binary (the command line calls [`run`]) and start that same
//! binary as the server they measure.

mod block;
pub mod client;
mod crash;
mod ingest;
mod protocols;
mod report;
mod server_process;
mod soak;
mod store;
mod tracegen;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// OTLP/gRPC ingest: tracegen-shaped load from concurrent clients against a real server, plus the
    /// decode-only rate of the same requests for comparison.
    Ingest(ingest::IngestArgs),
    /// Write-ahead log appends (group commit, index insertion) in-process, from concurrent appenders.
    Wal(store::WalArgs),
    /// Building one block: decoding, Arrow builders, sorting, Parquet encoding.
    Block(block::BlockArgs),
    /// Search, trace assembly, summaries, service graph and RED over a store of tracegen-shaped spans.
    Query(store::QueryArgs),
    /// SIGKILL the server at random moments under concurrent gRPC and HTTP exports (blocks being
    /// cut and compacted), restart it, and count acknowledged spans lost or doubled.
    Crash(crash::CrashArgs),
    /// An hour (or --minutes) at 80 % of the sustained rate with blocks cut, compacted and deleted
    /// and queries in parallel: memory, rate and p99s sampled every 30 s, as CSV and an SVG chart.
    Soak(soak::SoakArgs),
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(args).await,
        BenchCommand::Wal(args) => store::wal(args).await,
        BenchCommand::Query(args) => store::query(args).await,
        BenchCommand::Block(args) => block::run(args).await,
        BenchCommand::Crash(args) => crash::run(args).await,
        BenchCommand::Soak(args) => soak::run(args).await,
    }
}
