//! Accepting connections and serving the routes on them, until stopped.
//!
//! This is a small accept loop of our own rather than `axum::serve`, because that one spawns
//! each connection as a free task: aborting it stops new connections but leaves pooled
//! keep-alive ones answering. Here every connection lives in a [`JoinSet`] owned by the loop,
//! so aborting the loop drops them all and the fake is really gone, as a test of "the service
//! went away" needs.
//!
//! Under TLS the handshake runs in the connection's task, so a client that stalls it holds up
//! only itself, and it is cut with the rest when the loop is aborted.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::service::{Answer, Shared};
use crate::{api, control};

/// Every route of the fake, with the service's JSON error shape for unknown paths and methods.
pub(crate) fn app(shared: Shared) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(control::routes())
        .fallback(|| async { Answer::detail(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            Answer::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .with_state(shared)
}

/// What runs between TCP and HTTP.
#[derive(Clone)]
pub(crate) enum Transport {
    Plain,
    Tls(TlsAcceptor),
}

impl Transport {
    /// TLS with a certificate chain (leaf first) and its private key, both PEM.
    ///
    /// The crypto provider is passed in rather than taken from the process-wide default, so
    /// the fake works in a test binary that never installed one.
    pub(crate) fn tls(cert_pem: &str, key_pem: &str) -> io::Result<Transport> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| invalid(format!("the certificate PEM does not parse: {error}")))?;
        if chain.is_empty() {
            return Err(invalid(
                "the certificate PEM holds no certificate".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|error| invalid(format!("the key PEM holds no private key: {error}")))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid(format!("TLS versions: {error}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|error| invalid(format!("the certificate and key do not fit: {error}")))?;
        // Only HTTP/1.1 is served; saying so lets a client that insists on HTTP/2 fail at the
        // handshake with a clear reason instead of sending frames the fake cannot read.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Transport::Tls(TlsAcceptor::from(Arc::new(config))))
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Serves `app` on every connection `listener` accepts; never returns on its own.
pub(crate) async fn serve(listener: TcpListener, app: Router, transport: Transport) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: passing, and no reason to stop serving.
                eprintln!("fake-terrakio: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };

        // Small answers must not wait for Nagle, or latency tests would measure it.
        let _ = stream.set_nodelay(true);
        while connections.try_join_next().is_some() {}

        let service = TowerToHyperService::new(app.clone());
        let transport = transport.clone();
        connections.spawn(async move {
            match transport {
                Transport::Plain => serve_connection(stream, service).await,
                Transport::Tls(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => serve_connection(stream, service).await,
                    // Said aloud because it is the usual sign of a client that does not trust
                    // the certificate, which is worth seeing when a demo cannot connect.
                    Err(error) => eprintln!("fake-terrakio: TLS handshake failed: {error}"),
                },
            }
        });
    }
}

async fn serve_connection<S>(stream: S, service: TowerToHyperService<Router>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A client hanging up mid-answer ends its connection, and that is all.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
