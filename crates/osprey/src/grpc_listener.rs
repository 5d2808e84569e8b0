//! The plain-text gRPC ports' connections, handed to tonic only once the client has sent
//! something: one that sends nothing within [`HEADER_READ_TIMEOUT`] (the HTTP ports' deadline) is
//! closed instead of holding a socket and a task for ever, which tonic's HTTP/2 server would let
//! it do. (With TLS the handshake has its own deadline: `tls.rs`.) Connections that went quiet
//! later are found by HTTP/2 keepalive pings (`serve.rs`).

use std::io;

use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;

use crate::http_server::HEADER_READ_TIMEOUT;

/// Accepted connections that have sent their first bytes, with `TCP_NODELAY` set (small gRPC
/// answers would otherwise wait out delayed ACKs, ~40 ms an export).
pub fn incoming(listener: TcpListener) -> ReceiverStream<io::Result<TcpStream>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while !sender.is_closed() {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: tonic's own loop would also go on.
                    tracing::warn!(error = %e, "accepting a gRPC connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut first = [0u8; 1];
                match tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut first)).await {
                    Ok(Ok(read)) if read > 0 => {
                        let _ = sender.send(Ok(stream)).await;
                    }
                    _ => tracing::debug!(?peer, "closed a gRPC connection that sent nothing"),
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}
