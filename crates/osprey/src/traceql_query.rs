//! `osprey query '<TraceQL>'`: the traces a TraceQL query matches, as a table (or the Tempo API's
//! JSON with `--json`), asked of a running server's Tempo port.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;

use crate::units::parse_duration;

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The TraceQL query, e.g. '{ resource.service.name = "payments" && duration > 1s }'.
    pub query: String,
    /// The Osprey Tempo endpoint to ask (`https://…` for a server with TLS).
    #[arg(
        long,
        env = "OSPREY_TEMPO_SERVER",
        default_value = "http://127.0.0.1:3200"
    )]
    pub server: String,
    /// Traces at most, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Matching spans shown per trace.
    #[arg(long, default_value_t = 3)]
    pub spss: u32,
    /// Only traces of this last stretch of time (`15m`, `2h`, `7d`); all stored ones without it.
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Print the answer as JSON (the Tempo API's search response) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub access: crate::remote::Access,
}

pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let mut params = vec![
        ("q", args.query.clone()),
        ("limit", args.limit.to_string()),
        ("spss", args.spss.to_string()),
    ];
    if let Some(since) = args.since {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        params.push(("start", now.saturating_sub(since.as_secs()).to_string()));
        params.push(("end", now.to_string()));
    }
    let url = format!(
        "{}/api/search?{}",
        args.server.trim_end_matches('/'),
        serde_urlencoded::to_string(&params)?
    );
    let (status, body) = args.access.get(&url).await?;
    if status != 200 {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    let answer: Value = serde_json::from_slice(&body).context("parsing the search answer")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", table(&answer));
    }
    Ok(())
}

/// One line per trace: id, start (UTC), duration, root service and operation, spans matched, and
/// the first matched spans as `service: name (duration)`.
pub fn table(answer: &Value) -> String {
    let traces = answer["traces"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    if traces.is_empty() {
        out.push_str("no traces match\n");
        return out;
    }
    let rows: Vec<[String; 7]> = traces
        .iter()
        .map(|t| {
            let start_ns: u64 = t["startTimeUnixNano"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let start = time::OffsetDateTime::from_unix_timestamp_nanos(start_ns as i128)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
            let sets = t["spanSets"].as_array().cloned().unwrap_or_default();
            let matched: u64 = sets.iter().filter_map(|s| s["matched"].as_u64()).sum();
            let spans: Vec<String> = sets
                .iter()
                .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
                .take(3)
                .map(|s| {
                    let ns: f64 = s["durationNanos"]
                        .as_str()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0.0);
                    format!("{} ({})", s["name"].as_str().unwrap_or(""), millis(ns))
                })
                .collect();
            [
                format!("{:0>32}", t["traceID"].as_str().unwrap_or("")),
                start,
                millis(t["durationMs"].as_f64().unwrap_or(0.0) * 1e6),
                t["rootServiceName"].as_str().unwrap_or("").to_string(),
                t["rootTraceName"].as_str().unwrap_or("").to_string(),
                matched.to_string(),
                spans.join(", "),
            ]
        })
        .collect();
    let header = [
        "TRACE ID",
        "START",
        "DURATION",
        "ROOT SERVICE",
        "ROOT NAME",
        "MATCHED",
        "SPANS",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

fn millis(ns: f64) -> String {
    let ms = ns / 1e6;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}
