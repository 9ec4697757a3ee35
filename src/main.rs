use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::CustomResourceExt;
use kube::runtime::events::{Recorder, Reporter};
use kube_lease_manager::LeaseManagerBuilder;

use terrakio_operator::cli::{Cli, Command, RotateArgs, RunArgs};
use terrakio_operator::controller::{self, Scope};
use terrakio_operator::credential::TerrakioCredential;
use terrakio_operator::metrics::Metrics;
use terrakio_operator::reconcile::{Context, Fence};
use terrakio_operator::server::{self, Health};
use terrakio_operator::terrakio::{Call, Limits, Observer, RetryPolicy, TerrakioClient};
use terrakio_operator::{check, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let printed = match cli.command {
        Command::Crd => serde_yaml_ng::to_string(&TerrakioCredential::crd())
            .map(|yaml| yaml.trim_end().to_string())
            .map_err(|err| err.to_string()),
        Command::Rotate(args) => rotate(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Run(args) => {
            telemetry::init(args.log_format);
            return match run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match printed {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Feeds the Terrakio client's requests into the metrics.
struct RequestMetrics(Arc<Metrics>);

impl Observer for RequestMetrics {
    fn request(&self, call: Call, outcome: &str, duration: Duration) {
        self.0.terrakio_request(call.as_str(), outcome, duration);
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|err| format!("cannot reach the Kubernetes API: {err}"))?;
    let scope = if args.watch_namespaces.is_empty() {
        Scope::Cluster
    } else {
        Scope::Namespaces(args.watch_namespaces.clone())
    };
    controller::preflight(&client, &scope).await?;

    let metrics = Arc::new(Metrics::new());
    let health = Health::default();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let http = tokio::spawn(server::serve(
        args.http_address,
        metrics.clone(),
        health.clone(),
        shutdown_signal(),
        bound_tx,
    ));
    match bound_rx.await {
        Ok(addr) => tracing::info!(%addr, "serving /healthz, /readyz and /metrics"),
        Err(_) => {
            let reason = match http.await {
                Ok(Err(err)) => err.to_string(),
                _ => "unknown".to_string(),
            };
            return Err(format!(
                "cannot serve on --http-address {}: {reason}",
                args.http_address
            ));
        }
    }

    let retry = RetryPolicy {
        first_pause: args.terrakio_retry_pause,
        ..RetryPolicy::default()
    };
    let limits = Limits {
        rate: args.terrakio_rate,
        burst: args.terrakio_burst,
        max_concurrent: args.terrakio_max_concurrent,
    };
    let observer: Arc<dyn Observer> = Arc::new(RequestMetrics(metrics.clone()));
    let terrakio =
        TerrakioClient::with_limits(args.terrakio_timeout, retry, limits, Some(observer))
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let reporter = Reporter {
        controller: "terrakio-operator".to_string(),
        instance: Some(identity.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let mut ctx = Context::new(
        client.clone(),
        terrakio,
        recorder,
        metrics,
        args.allow_insecure_endpoints,
    );
    if args.leader_election {
        ctx.fence = Some(Fence {
            leases: kube::Api::namespaced(client.clone(), &args.leader_election_namespace),
            lease: args.leader_election_lease.clone(),
            identity: identity.clone(),
        });
    }
    let ctx = Arc::new(ctx);

    if !args.leader_election {
        tracing::info!(?scope, "terrakio-operator starting");
        health.set_leading(true);
        controller::run(ctx, scope, args.concurrency, health).await;
        tracing::info!("terrakio-operator stopped");
        return Ok(());
    }

    // With leader election, a standby is ready (it serves its purpose by waiting) but runs no
    // controller until it holds the Lease; a leader that loses the Lease exits, so that it can
    // never reconcile beside the new leader.
    let lease_seconds = args.leader_election_lease_seconds.max(3);
    let manager = LeaseManagerBuilder::new(client.clone(), &args.leader_election_lease)
        .with_namespace(&args.leader_election_namespace)
        .with_identity(&identity)
        .with_duration(lease_seconds)
        .with_grace((lease_seconds / 3).max(1))
        .build()
        .await
        .map_err(|err| format!("cannot set up leader election: {err}"))?;
    let (mut leading, lease_task) = manager.watch().await;
    health.set_ready(true);
    tracing::info!(%identity, lease = %args.leader_election_lease, "standing by for the Lease");
    tokio::select! {
        changed = leading.wait_for(|leader| *leader) => {
            changed.map_err(|_| "leader election stopped".to_string())?;
        }
        () = shutdown_signal() => return Ok(()),
    }
    tracing::info!(%identity, ?scope, "leading: terrakio-operator starting");
    health.set_leading(true);
    health.set_ready(false);
    let outcome = tokio::select! {
        () = controller::run(ctx, scope, args.concurrency, health.clone()) => {
            tracing::info!("terrakio-operator stopped");
            Ok(())
        }
        lost = leading.wait_for(|leader| !*leader) => {
            let _ = lost;
            Err("lost the Lease to another replica; exiting".to_string())
        }
    };
    // Closing the channel makes the lease task release the Lease, so that on a rolling update
    // the next replica takes over at once instead of after the Lease expires.
    drop(leading);
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    outcome
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Sets the rotate annotation to a new value, as `kubectl annotate` would; the operator sees the
/// change and rotates once.
async fn rotate(args: RotateArgs) -> Result<String, String> {
    use kube::api::{Api, Patch, PatchParams};
    use terrakio_operator::reconcile::ROTATE_ANNOTATION;

    let config = kube::Config::infer()
        .await
        .map_err(|err| format!("no kubeconfig: {err}"))?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(|err| err.to_string())?;
    let api: Api<TerrakioCredential> = Api::namespaced(client, &namespace);
    let value = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({ "metadata": { "annotations": { ROTATE_ANNOTATION: value } } });
    api.patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|err| {
            let err = terrakio_operator::error::kubernetes_message(&err);
            format!("could not annotate {namespace}/{}: {err}", args.name)
        })?;
    Ok(format!(
        "terrakiocredential {namespace}/{} marked for rotation ({ROTATE_ANNOTATION}={value})",
        args.name
    ))
}
