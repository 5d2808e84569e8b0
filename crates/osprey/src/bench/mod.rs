//! `osprey bench`: throughput figures measured on this machine. Benchmarks print; they never fail on
//! time.

mod ingest;
mod server_process;
mod tracegen;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// OTLP/gRPC ingest: tracegen-shaped load from concurrent clients against a real server, plus the
    /// decode-only rate of the same requests for comparison.
    Ingest(ingest::IngestArgs),
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(args).await,
    }
}
