//! `osprey trace <id>`: a trace as an indented tree in the terminal.

use std::fmt::Write;

use anyhow::{bail, Context};
use clap::Args;

use osprey_model::otlp::ResourceSpans;
use osprey_model::TraceId;
use osprey_query::analysis::analyze;

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// The trace id (32 hex digits; 16 for a 64-bit id).
    pub trace_id: String,
    /// The Osprey query endpoint to ask (`https://…` for a server with TLS).
    #[arg(long, env = "OSPREY_SERVER", default_value = "http://127.0.0.1:16686")]
    pub server: String,
    /// Width of the duration bars, in characters.
    #[arg(long, default_value_t = 40)]
    pub bar_width: usize,
    #[command(flatten)]
    pub access: crate::remote::Access,
}

pub async fn run(args: TraceArgs) -> anyhow::Result<()> {
    let id = TraceId::from_hex(&args.trace_id)
        .map_err(|e| anyhow::anyhow!("malformed trace id {:?}: {e}", args.trace_id))?;
    let url = format!("{}/api/v3/traces/{id}", args.server.trim_end_matches('/'));
    let (status, body) = args.access.get(&url).await?;
    match status {
        200 => {}
        404 => bail!("trace {id} not found"),
        _ => bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
    let response: serde_json::Value = serde_json::from_slice(&body).context("parsing the trace")?;
    let resource_spans: Vec<ResourceSpans> =
        serde_json::from_value(response["result"]["resourceSpans"].clone())
            .context("parsing the trace's OTLP/JSON")?;
    print!("{}", render(&id, &resource_spans, args.bar_width));
    Ok(())
}

/// Renders the tree: one line per span, children under their parent in start order; spans whose parent
/// is missing from the trace are shown as extra roots.
pub fn render(id: &TraceId, resource_spans: &[ResourceSpans], bar_width: usize) -> String {
    let trace = analyze(resource_spans);
    let spans = &trace.spans;
    let mut out = String::new();
    if spans.is_empty() {
        let _ = writeln!(out, "trace {id}: no spans");
        return out;
    }
    let start = trace.start_ns;
    let total = trace.end_ns.saturating_sub(start).max(1);
    let mut services: Vec<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    let _ = writeln!(
        out,
        "trace {id}  {}  {} spans  {} services  {} errors",
        duration_text(total),
        spans.len(),
        services.len(),
        spans.iter().filter(|s| s.error).count()
    );

    let mut lines: Vec<(String, usize)> = Vec::new();
    let mut stack: Vec<(usize, usize)> = trace.roots.iter().rev().map(|r| (*r, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        lines.push((
            format!(
                "{}{}: {}",
                "  ".repeat(depth),
                spans[i].service,
                spans[i].name
            ),
            i,
        ));
        stack.extend(trace.children[i].iter().rev().map(|k| (*k, depth + 1)));
    }
    let label_width = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{:label_width$}  {:>10}  {:>9}  {:>9}",
        "", "start", "duration", "self"
    );
    for (label, i) in lines {
        let span = &spans[i];
        let offset = span.start_ns.saturating_sub(start);
        let duration = span.end_ns - span.start_ns;
        let bar_start = (offset as u128 * bar_width as u128 / total as u128) as usize;
        let bar_len = ((duration as u128 * bar_width as u128).div_ceil(total as u128) as usize)
            .clamp(1, bar_width.saturating_sub(bar_start).max(1));
        let bar = format!("{}{}", " ".repeat(bar_start), "█".repeat(bar_len));
        let pad = label_width - label.chars().count();
        let _ = writeln!(
            out,
            "{label}{}  {:>10}  {:>9}  {:>9}  |{bar:<bar_width$}|{}",
            " ".repeat(pad),
            format!("+{}", duration_text(offset)),
            duration_text(duration),
            duration_text(span.self_ns),
            if span.error { "  ✗ ERROR" } else { "" },
        );
    }
    if let Some(heaviest) = spans.iter().max_by_key(|s| s.self_ns) {
        let _ = writeln!(
            out,
            "most self time: {}: {}, {} of {} ({:.0}%)",
            heaviest.service,
            heaviest.name,
            duration_text(heaviest.self_ns),
            duration_text(total),
            100.0 * heaviest.self_ns as f64 / total as f64
        );
    }
    out
}

fn duration_text(nanos: u64) -> String {
    match nanos {
        n if n >= 1_000_000_000 => format!("{:.3}s", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}ms", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}µs", n as f64 / 1e3),
        n => format!("{n}ns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::fixtures::{self, service_spans as resource};
    use osprey_model::otlp::{status::StatusCode, Span, Status};

    fn span(
        id: u8,
        parent: Option<u8>,
        name: &str,
        start_ms: u64,
        end_ms: u64,
        error: bool,
    ) -> Span {
        Span {
            status: error.then(|| Status {
                code: StatusCode::Error as i32,
                message: "boom".into(),
            }),
            ..fixtures::span(
                9,
                id,
                parent,
                name,
                start_ms * 1_000_000,
                end_ms * 1_000_000,
            )
        }
    }

    #[test]
    fn renders_the_tree_in_order_with_offsets_bars_and_errors() {
        let trace = vec![
            resource(
                "payments",
                vec![span(3, Some(2), "SELECT payments", 100, 1900, true)],
            ),
            resource(
                "gateway",
                vec![
                    span(1, None, "GET /checkout", 0, 2000, false),
                    span(2, Some(1), "charge", 50, 1950, false),
                ],
            ),
        ];
        let text = render(&TraceId([9; 16]), &trace, 20);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("2.000s  3 spans  2 services  1 errors"),
            "{text}"
        );
        assert!(
            lines[1].contains("start") && lines[1].contains("self"),
            "{text}"
        );
        assert!(lines[2].starts_with("gateway: GET /checkout"), "{text}");
        assert!(lines[3].starts_with("  gateway: charge"), "{text}");
        assert!(
            lines[4].starts_with("    payments: SELECT payments"),
            "{text}"
        );
        assert!(
            lines[4].contains("+100.00ms") && lines[4].contains("1.800s"),
            "{text}"
        );
        assert!(lines[4].ends_with("✗ ERROR"), "{text}");
        assert!(lines[2].contains(&"█".repeat(20)), "{text}");
        // gateway: 2.0 s minus charge's 1.9 s; charge: 1.9 s minus the query's 1.8 s.
        assert!(lines[2].contains("100.00ms  |"), "{text}");
        assert!(lines[3].contains("100.00ms  |"), "{text}");
        assert_eq!(
            lines[5],
            "most self time: payments: SELECT payments, 1.800s of 2.000s (90%)"
        );
    }
}
