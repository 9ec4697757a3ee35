//! The `TerrakioCredential` custom resource: what a user asks for, and what the operator reports.
//!
//! The CRD in `crds/` is generated from these types (`terrakio-operator crd`), so the doc
//! comments below are what `kubectl explain terrakiocredential` shows. Admission-time checks
//! live in the schema (patterns, lengths); what only the operator can judge is checked by
//! [`validate`], whose errors name the field and say what to do.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

/// The production Terrakio API.
pub const DEFAULT_ENDPOINT: &str = "https://api.terrak.io";
/// The data key the official Python client reads from the environment.
pub const DEFAULT_TARGET_KEY: &str = "TERRAKIO_API_KEY";
/// The label every Secret written by the operator carries; the operator watches only these.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "terrakio-operator";
/// Shorter refresh intervals would turn every credential into a steady stream of API calls.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";
const DATA_KEY: &str = r"^[-._a-zA-Z0-9]+$";
const GO_DURATION: &str = r"^([0-9]+(ms|s|m|h))+$";
const QUALIFIED_NAME: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";
const LABEL_VALUE: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
const CRON_SHAPE: &str = r"^\s*\S+(\s+\S+){4}\s*$";

/// A Terrakio API key kept in a Secret of this namespace.
///
/// The operator logs in to Terrakio with the email and password of the login Secret, reads the
/// account's current API key (generating one only when the account has none) and writes it to
/// the target Secret, which it keeps in place and in sync with Terrakio.
// Several printer columns repeat `type_ = "string"`, which the lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "terrak.io",
    version = "v1alpha1",
    kind = "TerrakioCredential",
    plural = "terrakiocredentials",
    shortname = "tkc",
    namespaced,
    status = "TerrakioCredentialStatus",
    doc = "A Terrakio API key that the operator obtains with a login Secret and keeps in a \
           target Secret of the same namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
    printcolumn(
        name = "Last Rotation",
        type_ = "date",
        json_path = ".status.lastRotationTime"
    ),
    printcolumn(
        name = "Next Rotation",
        type_ = "string",
        description = "When the next scheduled rotation is due (a date column would show a future time as <invalid>)",
        json_path = ".status.nextRotationTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TerrakioCredentialSpec {
    /// Base URL of the Terrakio API, for example https://api.terrak.io. It must use https://:
    /// the password is sent to it. Plain http:// is accepted only when the operator runs with
    /// --allow-insecure-endpoints (tests and demos).
    #[serde(default = "default_endpoint")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint: String,

    /// The Secret, in this namespace, holding the Terrakio account's email and password.
    pub login_secret_ref: LoginSecretRef,

    /// Where the API key is written. Every field has a default, so this may be omitted.
    #[serde(default)]
    pub target: TargetSpec,

    /// How often the current key is read back from Terrakio to catch a key that was changed
    /// elsewhere, as a duration such as 30m or 1h (at least 5s).
    #[serde(default = "default_refresh_interval")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub refresh_interval: String,

    /// A Secret in this namespace holding extra CA certificates (PEM) to trust for the endpoint,
    /// for on-prem deployments behind a private CA. The system's roots stay trusted; there is
    /// no way to turn verification off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<CaBundleSecretRef>,

    /// When to replace the key with a new one. Without it the key is never rotated, only kept in
    /// sync; setting the annotation terrak.io/rotate to a new value rotates it on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationSpec>,

    /// While true the operator makes no Terrakio call and writes nothing for this credential.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// What happens to the target Secret when the credential is deleted: Delete (the default)
    /// deletes it with the credential, Retain leaves it in place, no longer managed.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Workloads in this namespace to restart, as kubectl rollout restart does, each time the key
    /// in the Secret changes. Workloads that mount the Secret as a volume see a new key without a
    /// restart; those that read it into environment variables need one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_targets: Vec<RestartTarget>,
}

/// How often the key is replaced: exactly one of schedule and interval.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("has(self.schedule) != has(self.interval)")
        .message("set exactly one of rotation.schedule and rotation.interval"),
    validation = Rule::new("!has(self.timeZone) || has(self.schedule)")
        .message("rotation.timeZone applies only to rotation.schedule")
)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// A standard 5-field cron expression (minute hour day-of-month month day-of-week), for
    /// example "0 3 * * 1" for Mondays at 03:00.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = CRON_SHAPE))]
    pub schedule: Option<String>,

    /// IANA time zone of the schedule, for example Europe/Berlin; UTC when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,

    /// Time between rotations, as a duration such as 720h or 90m (at least 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub interval: Option<String>,
}

/// What happens to the target Secret when its credential is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// The Secret is deleted with the credential (through its owner reference).
    #[default]
    Delete,
    /// The Secret stays, without owner reference, and is no longer managed.
    Retain,
}

/// A workload of the credential's namespace that reads the key and must restart to see a new one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartTarget {
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: WorkloadKind,
    /// Name of the workload.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
}

/// The kinds of workload that can be restarted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// A reference to the login Secret. It is always read from the credential's own namespace, so
/// a credential can never make the operator read another namespace's Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,

    /// Data key holding the account's email address.
    #[serde(default = "default_email_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY))]
    pub email_key: String,

    /// Data key holding the account's password.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY))]
    pub password_key: String,
}

/// A reference to a Secret holding CA certificates, in the credential's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaBundleSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
    /// Data key holding the PEM certificates.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_string()
}

/// The Secret the API key is written to, in the credential's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// Name of the Secret; defaults to the credential's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: Option<String>,

    /// Data key the API key is stored under. The default, TERRAKIO_API_KEY, is the environment
    /// variable the official Python client reads, so the Secret can be mounted with envFrom.
    #[serde(default = "default_target_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY))]
    pub key: String,

    /// Extra labels for the Secret. app.kubernetes.io/managed-by is always set by the operator.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Extra annotations for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Take over a Secret of that name that this credential does not control. Without it such a
    /// Secret is never touched and the credential reports TargetConflict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
}

impl Default for TargetSpec {
    fn default() -> Self {
        TargetSpec {
            name: None,
            key: default_target_key(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            overwrite: false,
        }
    }
}

/// What the operator last did and saw. Never holds the key itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerrakioCredentialStatus {
    /// Current state. Ready is True once the target Secret holds the account's current key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Name of the Secret holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// sha256: and the first 16 hex digits of the SHA-256 of the key in the Secret. It tells
    /// keys apart without revealing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,

    /// When the key was last confirmed with Terrakio and written or found in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// When the key was last replaced by a new one, by this credential or another credential of
    /// the same account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,

    /// When the next scheduled rotation is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<Time>,

    /// The last value of the terrak.io/rotate annotation that was handled; the same value never
    /// rotates twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotate_request: Option<String>,

    /// A rotation that was started and not yet recorded as done. Written before the new key is
    /// generated, so that after a crash the key is read back and delivered, never generated
    /// a second time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_rotation: Option<PendingRotation>,
}

/// A rotation in flight.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRotation {
    /// Fingerprint of the key being replaced: a different current key means the new key exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_fingerprint: Option<String>,
    /// When the rotation started.
    pub started_at: Time,
    /// The terrak.io/rotate value being handled, for an on-demand rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.to_string()
}
fn default_email_key() -> String {
    "email".to_string()
}
fn default_password_key() -> String {
    "password".to_string()
}
fn default_target_key() -> String {
    DEFAULT_TARGET_KEY.to_string()
}
fn default_refresh_interval() -> String {
    "1h".to_string()
}

/// Rotations closer together than this would be indistinguishable from a fault.
pub const MIN_ROTATION_INTERVAL: Duration = Duration::from_secs(10);

/// A spec the operator can act on: defaults applied, endpoint parsed, durations read.
#[derive(Clone, Debug)]
pub struct ValidSpec {
    pub endpoint: Url,
    pub login: LoginSecretRef,
    pub target_name: String,
    pub target_key: String,
    pub target_labels: BTreeMap<String, String>,
    pub target_annotations: BTreeMap<String, String>,
    pub target_overwrite: bool,
    pub refresh_interval: Duration,
    pub rotation: Option<crate::schedule::Policy>,
    pub ca_bundle: Option<CaBundleSecretRef>,
    pub suspend: bool,
    pub deletion_policy: DeletionPolicy,
    pub restart_targets: Vec<RestartTarget>,
}

/// Checks what the schema cannot: the endpoint's scheme and shape, the duration's value, and
/// labels that would hide the Secret from the operator. `name` is the credential's name, the
/// default target.
pub fn validate(
    spec: &TerrakioCredentialSpec,
    name: &str,
    allow_insecure_endpoints: bool,
) -> Result<ValidSpec, String> {
    let endpoint = parse_endpoint(&spec.endpoint, allow_insecure_endpoints)?;

    let refresh_interval = parse_duration("spec.refreshInterval", &spec.refresh_interval)?;
    if refresh_interval < MIN_REFRESH_INTERVAL {
        return Err(format!(
            "spec.refreshInterval: {:?} is shorter than the minimum of 5s; use a longer interval",
            spec.refresh_interval
        ));
    }

    for (field, value, pattern) in [
        (
            "spec.loginSecretRef.name",
            spec.login_secret_ref.name.as_str(),
            DNS_SUBDOMAIN,
        ),
        (
            "spec.loginSecretRef.emailKey",
            &spec.login_secret_ref.email_key,
            DATA_KEY,
        ),
        (
            "spec.loginSecretRef.passwordKey",
            &spec.login_secret_ref.password_key,
            DATA_KEY,
        ),
        ("spec.target.key", &spec.target.key, DATA_KEY),
    ] {
        check_pattern(field, value, pattern)?;
    }
    if spec.login_secret_ref.email_key == spec.login_secret_ref.password_key {
        return Err(
            "spec.loginSecretRef: emailKey and passwordKey name the same data key; \
                    point them at two different keys"
                .to_string(),
        );
    }

    let target_name = spec.target.name.clone().unwrap_or_else(|| name.to_string());
    check_pattern("spec.target.name", &target_name, DNS_SUBDOMAIN)?;
    if target_name == spec.login_secret_ref.name {
        return Err(
            "spec.target.name: the target Secret would overwrite the login Secret; \
                    choose another name"
                .to_string(),
        );
    }
    for (key, value) in &spec.target.labels {
        check_metadata_key("spec.target.labels", key)?;
        if value.len() > 63 || !matches(LABEL_VALUE, value) {
            return Err(format!(
                "spec.target.labels: the value of {key:?} is not a valid label value (at most 63 \
                 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
            ));
        }
    }
    for key in spec.target.annotations.keys() {
        check_metadata_key("spec.target.annotations", key)?;
    }
    if let Some(value) = spec.target.labels.get(MANAGED_BY_LABEL)
        && value != MANAGED_BY_VALUE
    {
        return Err(format!(
            "spec.target.labels: {MANAGED_BY_LABEL} is set by the operator and must not be \
             overridden; remove it"
        ));
    }

    let rotation = match &spec.rotation {
        None => None,
        Some(r) => Some(crate::schedule::parse(
            r.schedule.as_deref(),
            r.time_zone.as_deref(),
            r.interval.as_deref(),
            MIN_ROTATION_INTERVAL,
        )?),
    };
    let mut seen = std::collections::HashSet::new();
    for target in &spec.restart_targets {
        check_pattern("spec.restartTargets[].name", &target.name, DNS_SUBDOMAIN)?;
        if !seen.insert((target.kind, target.name.as_str())) {
            return Err(format!(
                "spec.restartTargets: {:?} {} is listed twice; list each workload once",
                target.kind, target.name
            ));
        }
    }

    Ok(ValidSpec {
        endpoint,
        login: spec.login_secret_ref.clone(),
        target_name,
        target_key: spec.target.key.clone(),
        target_labels: spec.target.labels.clone(),
        target_annotations: spec.target.annotations.clone(),
        target_overwrite: spec.target.overwrite,
        refresh_interval,
        rotation,
        ca_bundle: spec.ca_bundle_secret_ref.clone(),
        suspend: spec.suspend,
        deletion_policy: spec.deletion_policy,
        restart_targets: spec.restart_targets.clone(),
    })
}

/// Checks an endpoint as `spec.endpoint` is checked; for the `check` command.
pub fn validate_endpoint(raw: &str, allow_insecure: bool) -> Result<Url, String> {
    parse_endpoint(raw, allow_insecure)
}

fn parse_endpoint(raw: &str, allow_insecure: bool) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|err| {
        format!("spec.endpoint: {raw:?} is not a URL ({err}); use e.g. https://api.terrak.io")
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(
                "spec.endpoint: plain http:// would send the password in clear; use \
                        https:// (the operator accepts http:// only with \
                        --allow-insecure-endpoints)"
                    .to_string(),
            );
        }
        other => {
            return Err(format!(
                "spec.endpoint: scheme {other:?} is not supported; use https://"
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("spec.endpoint: {raw:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "spec.endpoint: must not carry user info; put the login in the login Secret"
                .to_string(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("spec.endpoint: must be a base URL without ?query or #fragment".to_string());
    }
    Ok(url)
}

/// Reads a duration written the way Kubernetes users write them (`90m`, `1h30m`, `10s`).
pub fn parse_duration(field: &str, raw: &str) -> Result<Duration, String> {
    // The CRD's shape first: humantime alone would also read `1 day` or `2M` (two months).
    if !matches(GO_DURATION, raw) {
        return Err(format!(
            "{field}: {raw:?} is not a duration; write whole numbers with the units ms, s, m or \
             h, such as 720h, 90m or 1h30m"
        ));
    }
    humantime::parse_duration(raw)
        .map_err(|err| format!("{field}: {raw:?} cannot be read ({err}); write a shorter duration"))
}

/// A label or annotation key: an optional DNS-subdomain prefix and `/`, then a name of at most
/// 63 characters.
fn check_metadata_key(field: &str, key: &str) -> Result<(), String> {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    if prefix.len() > 253 || name.len() > 63 || !matches(QUALIFIED_NAME, key) {
        return Err(format!(
            "{field}: {key:?} is not a valid key (an optional DNS prefix and '/', then at most 63 \
             letters, digits, '-', '_' or '.')"
        ));
    }
    Ok(())
}

fn check_pattern(field: &str, value: &str, pattern: &str) -> Result<(), String> {
    if matches(pattern, value) && value.len() <= 253 {
        Ok(())
    } else {
        Err(format!(
            "{field}: {value:?} is not a valid name here (allowed: {pattern})"
        ))
    }
}

fn matches(pattern: &str, value: &str) -> bool {
    static COMPILED: LazyLock<[(&str, Regex); 5]> = LazyLock::new(|| {
        [
            DNS_SUBDOMAIN,
            DATA_KEY,
            GO_DURATION,
            QUALIFIED_NAME,
            LABEL_VALUE,
        ]
        .map(|pattern| (pattern, Regex::new(pattern).expect("pattern compiles")))
    });
    COMPILED
        .iter()
        .any(|(known, regex)| *known == pattern && regex.is_match(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(edit: impl FnOnce(&mut TerrakioCredentialSpec)) -> TerrakioCredentialSpec {
        let mut spec = TerrakioCredentialSpec {
            endpoint: DEFAULT_ENDPOINT.into(),
            login_secret_ref: LoginSecretRef {
                name: "login".into(),
                email_key: "email".into(),
                password_key: "password".into(),
            },
            target: TargetSpec::default(),
            refresh_interval: "1h".into(),
            ca_bundle_secret_ref: None,
            rotation: None,
            suspend: false,
            deletion_policy: DeletionPolicy::Delete,
            restart_targets: Vec::new(),
        };
        edit(&mut spec);
        spec
    }

    #[test]
    fn a_default_spec_is_valid() {
        let valid = validate(&spec(|_| {}), "geo", false).unwrap();
        assert_eq!(valid.endpoint.as_str(), "https://api.terrak.io/");
        assert_eq!(valid.target_name, "geo");
        assert_eq!(valid.target_key, "TERRAKIO_API_KEY");
        assert_eq!(valid.refresh_interval, Duration::from_secs(3600));
    }

    #[test]
    fn validate_table() {
        type Edit = Box<dyn FnOnce(&mut TerrakioCredentialSpec)>;
        let cases: Vec<(&str, Edit, bool, Result<(), &str>)> = vec![
            (
                "http refused",
                Box::new(|s| s.endpoint = "http://fake:8080".into()),
                false,
                Err("spec.endpoint: plain http://"),
            ),
            (
                "http allowed when insecure",
                Box::new(|s| s.endpoint = "http://fake:8080".into()),
                true,
                Ok(()),
            ),
            (
                "https with a base path",
                Box::new(|s| s.endpoint = "https://onprem.example/terrakio".into()),
                false,
                Ok(()),
            ),
            (
                "not a URL",
                Box::new(|s| s.endpoint = "https://".into()),
                false,
                Err("spec.endpoint"),
            ),
            (
                "other scheme",
                Box::new(|s| s.endpoint = "ftp://x".into()),
                true,
                Err("scheme \"ftp\""),
            ),
            (
                "user info",
                Box::new(|s| s.endpoint = "https://u:p@api.terrak.io".into()),
                false,
                Err("user info"),
            ),
            (
                "query",
                Box::new(|s| s.endpoint = "https://api.terrak.io/?a=b".into()),
                false,
                Err("?query"),
            ),
            (
                "compound duration",
                Box::new(|s| s.refresh_interval = "1h30m".into()),
                false,
                Ok(()),
            ),
            (
                "duration word",
                Box::new(|s| s.refresh_interval = "soon".into()),
                false,
                Err("spec.refreshInterval: \"soon\" is not a duration"),
            ),
            (
                "fractional duration",
                Box::new(|s| s.refresh_interval = "1.5h".into()),
                false,
                Err("spec.refreshInterval"),
            ),
            (
                "too short",
                Box::new(|s| s.refresh_interval = "1s".into()),
                false,
                Err("minimum of 5s"),
            ),
            (
                "same data key twice",
                Box::new(|s| s.login_secret_ref.password_key = "email".into()),
                false,
                Err("same data key"),
            ),
            (
                "target is the login Secret",
                Box::new(|s| s.target.name = Some("login".into())),
                false,
                Err("overwrite the login Secret"),
            ),
            (
                "bad target name",
                Box::new(|s| s.target.name = Some("Geo_Key".into())),
                false,
                Err("spec.target.name"),
            ),
            (
                "bad target key",
                Box::new(|s| s.target.key = "A KEY".into()),
                false,
                Err("spec.target.key"),
            ),
            (
                "label key with a space",
                Box::new(|s| {
                    s.target.labels.insert("bad key!".into(), "x".into());
                }),
                false,
                Err("spec.target.labels: \"bad key!\""),
            ),
            (
                "label value too long",
                Box::new(|s| {
                    s.target.labels.insert("team".into(), "x".repeat(64));
                }),
                false,
                Err("not a valid label value"),
            ),
            (
                "prefixed keys are fine",
                Box::new(|s| {
                    s.target
                        .labels
                        .insert("example.com/team".into(), "geo".into());
                    s.target
                        .annotations
                        .insert("example.com/owner".into(), "any text".into());
                }),
                false,
                Ok(()),
            ),
            (
                "managed-by overridden",
                Box::new(|s| {
                    s.target.labels.insert(MANAGED_BY_LABEL.into(), "me".into());
                }),
                false,
                Err("must not be overridden"),
            ),
        ];
        for (name, edit, insecure, expected) in cases {
            let got = validate(&spec(edit), "geo", insecure).map(drop);
            match (&got, expected) {
                (Ok(()), Ok(())) => {}
                (Err(message), Err(want)) => assert!(message.contains(want), "{name}: {message}"),
                _ => panic!("{name}: got {got:?}, want {expected:?}"),
            }
        }
    }
}
