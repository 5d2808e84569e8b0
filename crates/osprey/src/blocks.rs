//! `osprey blocks`: the blocks of a tenant, read from the store (local directory or bucket) without a
//! running server.

use std::path::PathBuf;

use clap::Args;

use osprey_store::objects::META_FILE;
use osprey_store::{BlockMeta, ObjectStorage, DEFAULT_TENANT};

#[derive(Args, Debug)]
pub struct BlocksArgs {
    /// The server's data directory (its blocks are in blocks/ there unless --storage says otherwise).
    #[arg(long, env = "OSPREY_DATA_DIR", default_value = "./osprey-data")]
    data_dir: PathBuf,
    /// Where blocks are kept: a directory or an s3://, gs://, az:// URL, as for `serve`.
    #[arg(long, env = "OSPREY_STORAGE")]
    storage: Option<String>,
    /// The tenant whose blocks to list.
    #[arg(long, default_value = DEFAULT_TENANT)]
    tenant: String,
    /// Print each block's meta.json as one JSON line instead of a table.
    #[arg(long)]
    json: bool,
}

fn time(ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ns.to_string())
}

pub async fn run(args: BlocksArgs) -> anyhow::Result<()> {
    let spec = args
        .storage
        .unwrap_or_else(|| args.data_dir.join("blocks").to_string_lossy().into_owned());
    let storage = ObjectStorage::open(&spec).map_err(anyhow::Error::msg)?;
    let mut metas: Vec<BlockMeta> = Vec::new();
    let mut incomplete = Vec::new();
    for id in storage.list_blocks(&args.tenant).await? {
        match storage
            .get_if_exists(&storage.block_file(&args.tenant, &id, META_FILE))
            .await?
        {
            Some(bytes) => metas.push(serde_json::from_slice(&bytes)?),
            None => incomplete.push(id),
        }
    }
    // Blocks a compaction replaced (left behind by a crash before their deletion) hold nothing new.
    let replaced: std::collections::HashSet<String> = metas
        .iter()
        .flat_map(|m| m.replaces.iter().cloned())
        .collect();
    metas.retain(|m| !replaced.contains(&m.block_id));
    metas.sort_by_key(|m| (m.start_unix_nano, m.block_id.clone()));
    if args.json {
        for meta in &metas {
            println!("{}", serde_json::to_string(meta)?);
        }
        return Ok(());
    }
    println!(
        "{:<32}  {:<30}  {:<30}  {:>12}  {:>10}  {:>14}  level",
        "block", "first span", "last span end", "spans", "traces", "bytes"
    );
    for m in &metas {
        println!(
            "{:<32}  {:<30}  {:<30}  {:>12}  {:>10}  {:>14}  {}",
            m.block_id,
            time(m.start_unix_nano),
            time(m.end_unix_nano),
            m.span_count,
            m.trace_count,
            m.data_bytes + m.index_bytes,
            m.compaction_level
        );
    }
    let spans: u64 = metas.iter().map(|m| m.span_count).sum();
    let bytes: u64 = metas.iter().map(|m| m.data_bytes + m.index_bytes).sum();
    println!(
        "{} blocks, {} spans, {} bytes ({:.1} bytes a span) in {}",
        metas.len(),
        spans,
        bytes,
        bytes as f64 / spans.max(1) as f64,
        storage.description
    );
    for id in incomplete {
        println!("incomplete (no meta.json, ignored): {id}");
    }
    Ok(())
}
