//! The operator's own HTTP endpoints: liveness and readiness for the kubelet, metrics for
//! Prometheus.
//!
//! - `GET /healthz`: 200 `ok` for as long as the process serves at all.
//! - `GET /readyz`: 200 once [`Health::set_ready`] said so, else 503; the body says why.
//! - `GET /metrics`: 200 with [`Metrics::encode`] in the OpenMetrics text format,
//!   prometheus-client's own, which Prometheus scrapes like its older text format.
//!
//! Any other path is 404; another method on one of these paths is 405. `HEAD` is answered like
//! `GET`, without the body.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::metrics::{self, Metrics};

/// Whether the operator is ready, shared between the code that knows (the controller) and the
/// readiness endpoint. Clones share the same flags.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    leading: Arc<AtomicBool>,
}

impl Health {
    /// Ready means the caches have synced and the controller runs (on the leader), or the
    /// replica is standing by for leadership (on the others): either way it is doing its job.
    pub fn set_ready(&self, ready: bool) {
        // Relaxed: each flag is read on its own, and nothing else is published through it.
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether this replica leads. Shown in the readiness body only: if readiness followed
    /// leadership, every standby would be reported unready and dropped from its Service.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }

    fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    health: Health,
}

/// Serves the endpoints on `addr` until `shutdown` resolves, then lets requests in flight
/// finish. The address actually bound (useful with port 0) is sent through `bound` once the
/// socket listens; a dropped receiver is not an error.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bound: oneshot::Sender<SocketAddr>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let _ = bound.send(listener.local_addr()?);

    axum::serve(listener, router(Endpoints { metrics, health }))
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(endpoints)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(endpoints): State<Endpoints>) -> (StatusCode, &'static str) {
    let health = &endpoints.health;
    match (health.is_ready(), health.is_leading()) {
        (true, true) => (StatusCode::OK, "ready: leading\n"),
        (true, false) => (StatusCode::OK, "ready: not leading\n"),
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the controller has not started or its caches have not synced\n",
        ),
    }
}

async fn metrics_text(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    let now = jiff::Timestamp::now().as_second();
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        endpoints.metrics.encode(now),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    struct Running {
        base: String,
        health: Health,
        metrics: Arc<Metrics>,
        stop: oneshot::Sender<()>,
        server: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    async fn start() -> Running {
        let health = Health::default();
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel();
        let server = tokio::spawn(serve(
            "127.0.0.1:0".parse().unwrap(),
            metrics.clone(),
            health.clone(),
            async {
                let _ = stopped.await;
            },
            bound_tx,
        ));
        let addr = bound_rx.await.expect("the server reports its address");
        Running {
            base: format!("http://{addr}"),
            health,
            metrics,
            stop,
            server,
        }
    }

    fn client() -> reqwest::Client {
        // reqwest is built without a default crypto provider and will not build a client
        // without one, even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn get(client: &reqwest::Client, url: String) -> (u16, Option<String>, String) {
        let answer = client.get(url).send().await.expect("request");
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        (status, content_type, answer.text().await.unwrap())
    }

    #[tokio::test]
    async fn endpoints_answer_and_the_server_stops_on_shutdown() {
        let running = start().await;
        let client = client();
        let base = &running.base;

        let (status, _, body) = get(&client, format!("{base}/healthz")).await;
        assert_eq!((status, body.as_str()), (200, "ok"));

        let (status, _, body) = get(&client, format!("{base}/readyz")).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.starts_with("not ready"), "{body}");

        running.health.set_ready(true);
        let (status, _, body) = get(&client, format!("{base}/readyz")).await;
        assert_eq!((status, body.as_str()), (200, "ready: not leading\n"));

        running.health.set_leading(true);
        let (status, _, body) = get(&client, format!("{base}/readyz")).await;
        assert_eq!((status, body.as_str()), (200, "ready: leading\n"));

        running.health.set_ready(false);
        let (status, _, _) = get(&client, format!("{base}/readyz")).await;
        assert_eq!(status, 503);

        // Liveness does not depend on readiness.
        let (status, _, _) = get(&client, format!("{base}/healthz")).await;
        assert_eq!(status, 200);

        running
            .metrics
            .reconciled("success", "KeySynced", Duration::from_millis(5));
        let (status, content_type, body) = get(&client, format!("{base}/metrics")).await;
        assert_eq!(status, 200);
        assert_eq!(content_type.as_deref(), Some(metrics::CONTENT_TYPE));
        assert!(
            body.lines().any(|line| line
                == r#"terrakio_operator_reconciles_total{result="success",reason="KeySynced"} 1"#),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");

        for path in ["/", "/nope", "/metrics/extra", "/healthz/"] {
            let (status, _, _) = get(&client, format!("{base}{path}")).await;
            assert_eq!(status, 404, "{path}");
        }

        let answer = client.post(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 405);

        running.stop.send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), running.server)
            .await
            .expect("the server stops after shutdown")
            .expect("the server task does not panic");
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn metrics_count_down_between_reconciles() {
        let running = start().await;
        let client = client();
        let in_an_hour = jiff::Timestamp::now().as_second() + 3_600;
        running
            .metrics
            .credential_state("ns", "cred", "True", "KeySynced", Some(in_an_hour));

        let (_, _, body) = get(&client, format!("{}/metrics", running.base)).await;
        let prefix = r#"terrakio_operator_next_rotation_in_seconds{namespace="ns",name="cred"} "#;
        let seconds: i64 = body
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no countdown in\n{body}"))
            .parse()
            .unwrap();
        // Computed against the clock when served, not when recorded; allow for a slow machine.
        assert!((3_540..=3_600).contains(&seconds), "{seconds}");
    }

    #[tokio::test]
    async fn binding_a_taken_address_is_an_error() {
        let running = start().await;
        let taken: SocketAddr = running.base.trim_start_matches("http://").parse().unwrap();

        let (bound_tx, bound_rx) = oneshot::channel();
        let result = serve(
            taken,
            Arc::new(Metrics::new()),
            Health::default(),
            std::future::pending(),
            bound_tx,
        )
        .await;
        assert!(result.is_err(), "{result:?}");
        assert!(
            bound_rx.await.is_err(),
            "no address is reported when binding failed"
        );
    }
}
