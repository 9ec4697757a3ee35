//! Accepting connections and serving the routes on them, until stopped.
//!
//! This is a small accept loop of our own rather than `axum::serve`, because that one spawns
//! each connection as a free task: aborting it stops new connections but leaves pooled
//! keep-alive ones answering. Here every connection lives in a [`JoinSet`] owned by the loop,
//! so aborting the loop drops them all and the fake is really gone, as a test of "the service
//! went away" needs.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

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

/// Serves `app` on every connection `listener` accepts; never returns on its own.
pub(crate) async fn serve(listener: TcpListener, app: Router) {
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
        connections.spawn(async move {
            // A client hanging up mid-answer ends its connection, and that is all.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
