use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kube::CustomResourceExt;
use kube::runtime::events::{Recorder, Reporter};

use terrakio_operator::cli::{Cli, Command, RotateArgs, RunArgs};
use terrakio_operator::controller::{self, Scope};
use terrakio_operator::credential::TerrakioCredential;
use terrakio_operator::reconcile::Context;
use terrakio_operator::telemetry;
use terrakio_operator::terrakio::{RetryPolicy, TerrakioClient};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match serde_yaml_ng::to_string(&TerrakioCredential::crd()) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Rotate(args) => match rotate(args).await {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            telemetry::init(args.log_format);
            match run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| "could not install the TLS crypto provider".to_string())?;

    let client = kube::Client::try_default()
        .await
        .map_err(|err| format!("cannot reach the Kubernetes API: {err}"))?;
    let scope = if args.watch_namespaces.is_empty() {
        Scope::Cluster
    } else {
        Scope::Namespaces(args.watch_namespaces.clone())
    };
    controller::preflight(&client, &scope).await?;

    let retry = RetryPolicy {
        first_pause: args.terrakio_retry_pause,
        ..RetryPolicy::default()
    };
    let terrakio = TerrakioClient::new(args.terrakio_timeout, retry)
        .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
    let reporter = Reporter {
        controller: "terrakio-operator".to_string(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let ctx = Arc::new(Context::new(
        client,
        terrakio,
        recorder,
        args.allow_insecure_endpoints,
    ));

    tracing::info!(?scope, "terrakio-operator starting");
    controller::run(ctx, scope, args.concurrency).await;
    tracing::info!("terrakio-operator stopped");
    Ok(())
}

/// Sets the rotate annotation to a new value, as `kubectl annotate` would; the operator sees the
/// change and rotates once.
async fn rotate(args: RotateArgs) -> Result<String, String> {
    use kube::api::{Api, Patch, PatchParams};
    use terrakio_operator::reconcile::ROTATE_ANNOTATION;

    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| "could not install the TLS crypto provider".to_string())?;
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
        .map_err(|err| format!("could not annotate {namespace}/{}: {err}", args.name))?;
    Ok(format!(
        "terrakiocredential {namespace}/{} marked for rotation ({ROTATE_ANNOTATION}={value})",
        args.name
    ))
}
