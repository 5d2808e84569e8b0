//! `osprey-demo up`: Osprey, the six services and the load, as separate processes on this machine.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::load::{self, LoadArgs};
use crate::shop::{Faults, Service};

#[derive(Args, Debug)]
pub struct UpArgs {
    /// OTLP/gRPC endpoint of a running Osprey. Without it, `up` starts `osprey serve` on the default
    /// ports with --data-dir.
    #[arg(long)]
    osprey_endpoint: Option<String>,
    /// The `osprey` binary to start (default: the one next to this binary).
    #[arg(long)]
    osprey_bin: Option<PathBuf>,
    /// Data directory of the Osprey that `up` starts.
    #[arg(long, default_value = "./osprey-demo-data")]
    data_dir: PathBuf,
    /// Port of the gateway; the other services take the next five. 0 picks free ports.
    #[arg(long, default_value_t = 8080)]
    base_port: u16,
    /// Checkouts per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Stop everything after this many checkouts (default: run until Ctrl-C).
    #[arg(long)]
    requests: Option<u64>,
    #[command(flatten)]
    faults: Faults,
}

/// Resolves on SIGINT or SIGTERM.
pub async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Child processes, stopped with SIGTERM when dropped, newest first: the services flush their last
/// spans while the Osprey they export to (started first) is still up.
struct Processes(Vec<(String, Child)>);

impl Processes {
    /// Starts `command` in its own process group, so a terminal's Ctrl-C reaches only `up`, which then
    /// stops everything in order. (So if `up` itself is killed with SIGKILL, its children keep running.)
    fn spawn(&mut self, name: &str, command: &mut Command) -> anyhow::Result<()> {
        command.process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.0.push((name.to_string(), child));
        Ok(())
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        while let Some((name, mut child)) = self.0.pop() {
            // SAFETY: kill(2) on a pid we own; a stale pid only yields an error.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = child.try_wait() {
                tracing::warn!(process = %name, "did not stop on SIGTERM; killing it");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn ports(base: u16) -> anyhow::Result<Vec<u16>> {
    if base != 0 {
        return Ok((0..Service::ALL.len() as u16).map(|i| base + i).collect());
    }
    let listeners: Vec<TcpListener> = Service::ALL
        .iter()
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

async fn wait_ready(url: &str, what: &str) -> anyhow::Result<()> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(url.parse()?).await {
            if response.status().is_success() {
                let _ = response.into_body().collect().await;
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{what} did not become ready at {url} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let mut processes = Processes(Vec::new());
    let this = std::env::current_exe()?;
    let endpoint = match &args.osprey_endpoint {
        Some(endpoint) => endpoint.clone(),
        None => {
            let bin = args
                .osprey_bin
                .clone()
                .unwrap_or_else(|| this.with_file_name("osprey"));
            let child = Command::new(&bin)
                .arg("serve")
                .arg("--data-dir")
                .arg(&args.data_dir)
                .stdin(Stdio::null())
                .spawn()
                .with_context(|| {
                    format!(
                        "starting {} (build it with cargo build --release)",
                        bin.display()
                    )
                })?;
            processes.0.push(("osprey".into(), child));
            wait_ready("http://127.0.0.1:16686/ready", "osprey").await?;
            "http://127.0.0.1:4317".to_string()
        }
    };
    let ports = ports(args.base_port)?;
    let url = |service: Service| {
        let index = Service::ALL.iter().position(|s| *s == service).unwrap_or(0);
        format!("http://127.0.0.1:{}", ports[index])
    };
    let f = &args.faults;
    for (service, port) in Service::ALL.iter().zip(&ports) {
        let mut command = Command::new(&this);
        command
            .args([
                "serve",
                service.name(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--auth-url", &url(Service::Auth)])
            .args(["--orders-url", &url(Service::Orders)])
            .args(["--inventory-url", &url(Service::Inventory)])
            .args(["--payments-url", &url(Service::Payments)])
            .args(["--database-url", &url(Service::Database)])
            .args(["--slow-db-share", &f.slow_db_share.to_string()])
            .args(["--lock-wait-ms", &f.lock_wait_ms.to_string()])
            .args(["--payment-error-share", &f.payment_error_share.to_string()])
            .args([
                "--slow-inventory-share",
                &f.slow_inventory_share.to_string(),
            ])
            .args(["--slow-inventory-ms", &f.slow_inventory_ms.to_string()])
            .env("OTEL_SERVICE_NAME", service.name())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .stdin(Stdio::null());
        if std::env::var_os("OTEL_BSP_SCHEDULE_DELAY").is_none() {
            // Spans reach Osprey within half a second instead of the SDK's default 5 s.
            command.env("OTEL_BSP_SCHEDULE_DELAY", "500");
        }
        processes.spawn(service.name(), &mut command)?;
    }
    for service in Service::ALL {
        wait_ready(&format!("{}/healthz", url(service)), service.name()).await?;
    }
    tracing::info!(
        gateway = %url(Service::Gateway),
        osprey = %endpoint,
        "the shop is up; sending load (Ctrl-C stops everything)"
    );
    let outcome = load::run(LoadArgs {
        gateway_url: url(Service::Gateway),
        rate: args.rate,
        requests: args.requests,
    })
    .await?;
    println!("checkouts: {} ok, {} failed", outcome.ok, outcome.failed);
    drop(processes);
    Ok(())
}
