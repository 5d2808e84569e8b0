//! How `osprey trace` and `osprey query` reach a running server: `http://` or `https://`
//! (trusting the system's certificate authorities and `--ca-cert`), with the bearer token of
//! `--token` for a server started with `--auth-tokens`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper::header::{AUTHORIZATION, HOST};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Credentials for a server that asks for them.
#[derive(Args, Debug, Clone, Default)]
pub struct Access {
    /// Bearer token, for a server started with --auth-tokens (the token decides the tenant).
    #[arg(long, env = "OSPREY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Certificate authority (PEM) to trust for an https:// server, beside the system's: the CA
    /// that signed the server's certificate (a chain file that holds it will do).
    #[arg(long, env = "OSPREY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

impl Access {
    /// GETs `url`; returns the status code and body.
    pub async fn get(&self, url: &str) -> anyhow::Result<(u16, Bytes)> {
        let uri: Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
        let host = uri
            .host()
            .with_context(|| format!("{url} names no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("{url}: only http:// and https:// servers can be asked"),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        let mut request =
            hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()).to_string())
                .header(
                    HOST,
                    match uri.port_u16() {
                        Some(port) => format!("{}:{port}", uri.host().unwrap_or_default()),
                        None => uri.host().unwrap_or_default().to_string(),
                    },
                );
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Empty::<Bytes>::new())?;
        let (status, body) = if https {
            let tls = tokio_rustls::TlsConnector::from(Arc::new(self.tls_config()?))
                .connect(ServerName::try_from(host.clone())?, tcp)
                .await
                .with_context(|| format!("TLS with {host}:{port}"))?;
            exchange(tls, request).await
        } else {
            exchange(tcp, request).await
        }
        .with_context(|| format!("GET {url}"))?;
        Ok((status, body))
    }

    fn tls_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        // Certificates the system has that rustls cannot read are skipped, as browsers do.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(path) = &self.ca_cert {
            let read = || format!("reading the CA certificate {}", path.display());
            for certificate in CertificateDer::pem_file_iter(path).with_context(read)? {
                roots
                    .add(certificate.with_context(read)?)
                    .with_context(read)?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// One request on a fresh HTTP/1.1 connection.
async fn exchange(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    request: hyper::Request<Empty<Bytes>>,
) -> anyhow::Result<(u16, Bytes)> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    connection.abort();
    Ok((status, body))
}
