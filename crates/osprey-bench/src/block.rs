//! `osprey bench block`: building one block in-process from log records, phase by phase, the work
//! every cut does: put the spans in trace order by reference, then decode them trace by trace into
//! Arrow builders and Parquet.

use std::time::Instant;

use clap::Args;
use osprey_store::block::logged::LoggedSpans;
use osprey_store::block::write::BlockWriter;

use super::report::thousands;
use super::store::generate;
use super::tracegen::Shape;

#[derive(Args, Debug)]
pub struct BlockArgs {
    /// Spans in the block.
    #[arg(long, default_value_t = 1_000_000)]
    spans: usize,
    #[arg(long, default_value_t = 10)]
    spans_per_trace: usize,
}

pub async fn run(args: BlockArgs) -> anyhow::Result<()> {
    let shape = Shape {
        spans_per_request: 1000,
        spans_per_trace: args.spans_per_trace,
        services: 10,
    };
    let requests = generate(args.spans.div_ceil(shape.spans_per_request), shape);
    let spans = (requests.len() * shape.spans_per_request) as f64;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let started = Instant::now();
        let mut logged = LoggedSpans::default();
        for (_, bytes) in &requests {
            logged.push_record(bytes.clone());
        }
        let appended = started.elapsed();
        let mut writer = BlockWriter::new()?;
        logged.write(&mut writer)?;
        let block = writer.finish("bench", "bench", 0, Vec::new(), Vec::new())?;
        let finished = started.elapsed() - appended;
        let per_span = |d: std::time::Duration| d.as_secs_f64() * 1e6 / spans;
        println!(
            "block of {} spans: index the records {:.2} µs a span, sort + decode + Parquet {:.2} µs a span, \
             {} spans/s (a thread decoding, a thread encoding); {:.1} Parquet bytes a span",
            thousands(spans as u64),
            per_span(appended),
            per_span(finished),
            thousands((spans / (appended + finished).as_secs_f64()) as u64),
            block.data.len() as f64 / spans
        );
        Ok(())
    })
    .await?
}
