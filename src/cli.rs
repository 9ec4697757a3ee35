//! The command line.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "terrakio-operator",
    version,
    about = "Provisions Terrakio API keys into Kubernetes Secrets"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: watch TerrakioCredentials and keep their Secrets.
    Run(RunArgs),
    /// Print the TerrakioCredential CustomResourceDefinition as YAML.
    Crd,
    /// Ask the operator to rotate a credential's key now, by setting its terrak.io/rotate
    /// annotation to the current time.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Name of the TerrakioCredential.
    pub name: String,
    /// Its namespace; the kubeconfig's namespace when not given.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Accept http:// endpoints. The password then travels in clear: for tests and demos only.
    #[arg(long, env = "TERRAKIO_ALLOW_INSECURE_ENDPOINTS")]
    pub allow_insecure_endpoints: bool,

    /// Watch only these namespaces (comma-separated); the whole cluster when not given.
    #[arg(long, env = "TERRAKIO_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// How many credentials are reconciled at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,

    /// Timeout of one request to Terrakio, e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub terrakio_timeout: Duration,

    /// Pause before the first retry of a failed Terrakio request (doubling, up to 8s).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, hide = true)]
    pub terrakio_retry_pause: Duration,

    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
