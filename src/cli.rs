//! The command line.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
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
    /// Log in and read the account's key, printing its fingerprint: a check of a login before
    /// it goes into a Secret. Exits non-zero, with the reason, when the login does not work.
    Check(CheckArgs),
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

    /// Requests per second to Terrakio, across all credentials and endpoints.
    #[arg(long, default_value = "10")]
    pub terrakio_rate: NonZeroU32,

    /// Requests to Terrakio allowed in a burst above the rate.
    #[arg(long, default_value = "20")]
    pub terrakio_burst: NonZeroU32,

    /// Requests to Terrakio in flight at once.
    #[arg(long, default_value_t = 8)]
    pub terrakio_max_concurrent: usize,

    /// Address of the operator's own HTTP endpoints: /healthz, /readyz and /metrics.
    #[arg(long, env = "TERRAKIO_HTTP_ADDRESS", default_value = "0.0.0.0:8080")]
    pub http_address: SocketAddr,

    /// Run only while holding the Lease, so that of several replicas exactly one reconciles.
    #[arg(long, env = "TERRAKIO_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Name of the Lease.
    #[arg(long, default_value = "terrakio-operator")]
    pub leader_election_lease: String,

    /// Namespace of the Lease; the operator's own namespace (POD_NAMESPACE) by default.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,

    /// Seconds a leader's Lease stays valid without renewal; a standby takes over after it.
    #[arg(long, default_value_t = 10)]
    pub leader_election_lease_seconds: u64,

    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Base URL of the Terrakio API.
    #[arg(long, default_value = crate::credential::DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// The account's email.
    #[arg(long)]
    pub email: String,
    /// A file holding the password (a trailing newline is ignored). Never pass the password
    /// itself on the command line: it would show in the process list and shell history.
    #[arg(long)]
    pub password_file: PathBuf,
    /// Extra CA certificates (PEM) to trust, as spec.caBundleSecretRef would.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Accept an http:// endpoint (tests and demos).
    #[arg(long)]
    pub allow_insecure_endpoints: bool,
    /// Print the key itself, not only its fingerprint.
    #[arg(long)]
    pub show_key: bool,
}
