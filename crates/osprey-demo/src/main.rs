//! `osprey-demo`: a small shop of instrumented microservices, a load generator with fault injection,
//! and `up`, which runs it all (with Osprey) on one machine.

mod load;
mod shop;
mod telemetry;
mod traced_http;
mod up;

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};

use shop::{Service, ShopArgs};

#[derive(Parser)]
#[command(name = "osprey-demo", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one service of the shop. OTEL_SERVICE_NAME defaults to the service's name;
    /// OTEL_EXPORTER_OTLP_ENDPOINT says where spans go (default http://localhost:4317).
    Serve {
        service: Service,
        /// Listen address (default: 0.0.0.0 on the service's own port, 8080 for the gateway to 8085
        /// for the database).
        #[arg(long, env = "DEMO_LISTEN")]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        shop: ShopArgs,
    },
    /// Send checkouts to the gateway.
    Load(load::LoadArgs),
    /// Start Osprey (unless --osprey-endpoint is given), every service, and the load, on this machine.
    Up(up::UpArgs),
}

pub fn default_port(service: Service) -> u16 {
    8080 + Service::ALL.iter().position(|s| *s == service).unwrap_or(0) as u16
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DEMO_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    match Cli::parse().command {
        Command::Serve {
            service,
            listen,
            shop,
        } => runtime.block_on(serve(service, listen, shop)),
        Command::Load(args) => runtime.block_on(load::run(args)).map(|_| ()),
        Command::Up(args) => runtime.block_on(up::run(args)),
    }
}

async fn serve(service: Service, listen: Option<SocketAddr>, shop: ShopArgs) -> anyhow::Result<()> {
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        // Safe: set before any other thread reads the environment (the runtime's workers do not).
        unsafe { std::env::set_var("OTEL_SERVICE_NAME", service.name()) };
    }
    let provider = telemetry::init()?;
    let listen = listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port(service))));
    let app = shop::router(service, shop)
        .route_layer(axum::middleware::from_fn(traced_http::server_span))
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(service = service.name(), %listen, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(up::terminated())
        .await?;
    telemetry::shutdown(provider).await;
    Ok(())
}
