//! TLS on every TCP listener (`--tls-cert`, `--tls-key`): rustls with the certificate and key
//! read from PEM files, and read again when either file changes, so a renewed certificate (a
//! cert-manager Secret update, a certbot renewal) is served without a restart.
//!
//! Handshakes run in tasks of their own, each under a deadline, and only finished connections are
//! handed to the HTTP and gRPC servers: a client that connects and stalls never holds up others.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate and key files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// The certificate served, swapped when the files change.
#[derive(Debug)]
struct ReloadingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// What a TLS port speaks once the handshake is done, offered by ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// gRPC: clients insist on `h2` being agreed.
    H2,
    /// The HTTP ports, served as HTTP/1.1 (see `http_server`).
    Http1,
}

/// The TLS set-up shared by every listener.
#[derive(Clone)]
pub struct Tls {
    grpc: TlsAcceptor,
    http: TlsAcceptor,
}

impl Tls {
    /// Reads the certificate chain and key, and starts watching both files.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate = Arc::new(ReloadingCertificate {
            current: RwLock::new(certified_key(cert, key, &provider)?),
        });
        let acceptor = |alpn: &[u8]| -> anyhow::Result<TlsAcceptor> {
            let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_no_client_auth()
                .with_cert_resolver(certificate.clone());
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        let (grpc, http) = (acceptor(b"h2")?, acceptor(b"http/1.1")?);
        tokio::spawn(watch(
            certificate,
            cert.to_path_buf(),
            key.to_path_buf(),
            provider,
        ));
        Ok(Tls { grpc, http })
    }

    /// Accepts on `listener`, shakes hands in a task per connection, and hands over the
    /// connections that finished it.
    pub fn accept(&self, listener: TcpListener, alpn: Alpn) -> TlsListener {
        let local = listener.local_addr().ok();
        let (sender, receiver) = mpsc::channel(64);
        let acceptor = match alpn {
            Alpn::H2 => self.grpc.clone(),
            Alpn::Http1 => self.http.clone(),
        };
        tokio::spawn(async move {
            loop {
                // Stops (and frees the port) once the server has dropped its listener.
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = sender.closed() => break,
                };
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { receiver, local }
    }
}

/// Finished TLS connections of one port, for `axum::serve` and tonic.
pub struct TlsListener {
    receiver: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: Option<SocketAddr>,
}

impl TlsListener {
    /// The connections as a stream, for tonic's `serve_with_incoming`.
    pub fn into_stream(
        self,
    ) -> impl tokio_stream::Stream<Item = io::Result<TlsStream<TcpStream>>> + Send + 'static {
        use tokio_stream::StreamExt;
        tokio_stream::wrappers::ReceiverStream::new(self.receiver).map(|(stream, _)| Ok(stream))
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.receiver.recv().await {
            Some(connection) => connection,
            // The accepting task only stops once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.local
            .ok_or_else(|| io::Error::other("the listener's address is unknown"))
    }
}

/// The certificate chain of `cert` with the private key of `key`, checked to belong together.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no PEM certificate", cert.display());
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS key {}", key.display()))?;
    let certified = CertifiedKey::from_der(chain, private_key, provider).with_context(|| {
        format!(
            "the TLS key {} does not fit the certificate {}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// Modification time and length of a file, to notice a change.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// Reads the files again whenever either changes; keeps serving the old certificate when the new
/// files do not load (a renewal half-way through writing them, say), and says so.
async fn watch(
    certificate: Arc<ReloadingCertificate>,
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
) {
    let mut seen = (stamp(&cert), stamp(&key));
    loop {
        tokio::time::sleep(RELOAD_CHECK).await;
        let now = (stamp(&cert), stamp(&key));
        if now == seen {
            continue;
        }
        seen = now;
        match certified_key(&cert, &key, &provider) {
            Ok(loaded) => {
                *certificate.current.write() = loaded;
                tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "the changed TLS certificate or key could not be loaded; still serving the previous one"
            ),
        }
    }
}
