//! The operator's Prometheus metrics, exposed in the OpenMetrics text format.
//!
//! Event metrics (reconciles, Terrakio requests, rotations) are counters and histograms that
//! only ever go up. Per-credential state is different: it is kept as a map of the latest state
//! of each credential and turned into gauges when the metrics are encoded, so a credential that
//! changes state moves from one series to another instead of being counted in both, and the
//! countdown to its next rotation is computed against the scrape's clock.
//!
//! Apart from a credential's namespace and name, label values are never taken from data: each
//! is checked against the small vocabulary it belongs to (fixed words, snake_case outcome words,
//! CamelCase reasons, HTTP status codes), and anything else is recorded as `other` / `Other`.
//! That keeps a message, a URL or a token from reaching a label by mistake, and keeps the number
//! of series bounded.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of what [`Metrics::encode`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const PREFIX: &str = "terrakio_operator";

/// A reconcile that changes nothing ends in milliseconds; one that logs in, generates a key and
/// writes the Secret takes a few round trips; one stuck behind Terrakio's retries and
/// `Retry-After` pauses can take minutes, which the top buckets catch.
const RECONCILE_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// One Terrakio request, from a fast answer up to the client's timeout (30s by default).
const REQUEST_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// What a label value outside its vocabulary is recorded as.
const OTHER: &str = "other";
const OTHER_REASON: &str = "Other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    call: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    call: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    trigger: &'static str,
}

/// The latest state of one credential, as last reported by its reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CredentialState {
    ready: &'static str,
    reason: String,
    next_rotation_unix: Option<i64>,
}

/// Credentials by namespace and name; ordered, so the exposition is stable between scrapes.
type CredentialMap = BTreeMap<(String, String), CredentialState>;

/// All of the operator's metrics. Shared behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Histogram,
    terrakio_requests: Family<RequestLabels, Counter>,
    terrakio_request_duration: Family<CallLabels, Histogram, fn() -> Histogram>,
    rotations: Family<RotationLabels, Counter>,
    credentials: Mutex<CredentialMap>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration = Histogram::new(RECONCILE_BUCKETS);
        let terrakio_requests = Family::<RequestLabels, Counter>::default();
        let terrakio_request_duration: Family<CallLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        let rotations = Family::<RotationLabels, Counter>::default();

        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "reconciles",
            "Reconciles of TerrakioCredentials, by result and the Ready condition's reason",
            reconciles.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "How long one reconcile of a TerrakioCredential took",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register(
            "terrakio_requests",
            "Requests sent to Terrakio, by call and outcome (HTTP status or failure kind)",
            terrakio_requests.clone(),
        );
        registry.register_with_unit(
            "terrakio_request_duration",
            "How long one request to Terrakio took, by call",
            Unit::Seconds,
            terrakio_request_duration.clone(),
        );
        registry.register(
            "rotations",
            "API keys rotated, by what asked for the rotation",
            rotations.clone(),
        );

        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            terrakio_requests,
            terrakio_request_duration,
            rotations,
            credentials: Mutex::new(BTreeMap::new()),
        }
    }

    /// One reconcile ended. `result` is `success` or `error`; `reason` is the CamelCase reason
    /// of the Ready condition it recorded, such as `KeySynced` or `LoginFailed`.
    pub fn reconciled(&self, result: &str, reason: &str, duration: Duration) {
        let labels = ReconcileLabels {
            result: one_of(result, &["success", "error"]),
            reason: reason_label(reason),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration.observe(duration.as_secs_f64());
    }

    /// One request to Terrakio ended. `call` is `login`, `view_key` or `generate_key`;
    /// `outcome` is the HTTP status as text (`200`, `429`) or a failure kind such as `timeout`,
    /// `connect_error`, `transport_error` or `rate_limited_locally`.
    pub fn terrakio_request(&self, call: &str, outcome: &str, duration: Duration) {
        let call = word_label(call);
        let labels = RequestLabels {
            call: call.clone(),
            outcome: outcome_label(outcome),
        };
        self.terrakio_requests.get_or_create(&labels).inc();
        self.terrakio_request_duration
            .get_or_create(&CallLabels { call })
            .observe(duration.as_secs_f64());
    }

    /// A new key was generated and written. `trigger` is `schedule` (the rotation policy said
    /// it was due) or `request` (someone asked for it on the resource).
    pub fn rotated(&self, trigger: &str) {
        let labels = RotationLabels {
            trigger: one_of(trigger, &["schedule", "request"]),
        };
        self.rotations.get_or_create(&labels).inc();
    }

    /// The latest state of one credential: its Ready status (`True`, `False` or `Unknown`) and
    /// reason, and when its next rotation is due (Unix seconds) if it has a rotation policy.
    /// Replaces whatever was recorded for it before.
    pub fn credential_state(
        &self,
        namespace: &str,
        name: &str,
        ready: &str,
        reason: &str,
        next_rotation_unix: Option<i64>,
    ) {
        let state = CredentialState {
            // A status outside the three the conventions allow says nothing; call it unknown.
            ready: match one_of(ready, &["True", "False", "Unknown"]) {
                OTHER => "Unknown",
                known => known,
            },
            reason: reason_label(reason),
            next_rotation_unix,
        };
        self.lock_credentials()
            .insert((namespace.to_string(), name.to_string()), state);
    }

    /// The credential is gone: its series disappear from the next scrape.
    pub fn forget_credential(&self, namespace: &str, name: &str) {
        self.lock_credentials()
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// The OpenMetrics text exposition, ending in `# EOF`. Countdowns are computed against
    /// `now_unix`, so they keep counting down between reconciles.
    pub fn encode(&self, now_unix: i64) -> String {
        // The per-credential gauges are encoded from a snapshot taken now, through a registry
        // made for this one scrape: two scrapes at once each see their own clock, and the map's
        // lock is not held while the text is written.
        let snapshot = CredentialSnapshot {
            now_unix,
            credentials: self.lock_credentials().clone(),
        };
        let mut per_scrape = Registry::with_prefix(PREFIX);
        per_scrape.register_collector(Box::new(snapshot));

        let mut out = String::new();
        // Writing into a String cannot fail, and the only encoder errors are for native-only
        // histograms, which are not used here.
        text::encode_registry(&mut out, &self.registry).expect("metrics encode into a String");
        text::encode_registry(&mut out, &per_scrape).expect("metrics encode into a String");
        text::encode_eof(&mut out).expect("metrics encode into a String");
        out
    }

    fn lock_credentials(&self) -> std::sync::MutexGuard<'_, CredentialMap> {
        // Every change to the map is a single insert or remove, so a panic elsewhere while the
        // lock was held cannot have left it half-updated.
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The per-credential gauges as of one scrape.
#[derive(Debug)]
struct CredentialSnapshot {
    now_unix: i64,
    credentials: CredentialMap,
}

impl Collector for CredentialSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        // Only states some credential is in have a series: a zero for every reason ever seen
        // would pile up forever. When the last credential leaves a state its series vanishes,
        // which Prometheus marks stale on the next scrape.
        let mut counts: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for state in self.credentials.values() {
            *counts.entry((state.ready, &state.reason)).or_default() += 1;
        }
        if !counts.is_empty() {
            let mut family = encoder.encode_descriptor(
                "credentials",
                "TerrakioCredentials known to the operator, by Ready status and reason.",
                None,
                MetricType::Gauge,
            )?;
            for ((ready, reason), count) in counts {
                family
                    .encode_family(&[("ready", ready), ("reason", reason)])?
                    .encode_gauge(&count)?;
            }
        }

        // Clamped at zero: an overdue rotation reads "due now" rather than a growing negative
        // number, and how long it has been overdue shows in the reconcile errors instead.
        let due: Vec<(&(String, String), i64)> = self
            .credentials
            .iter()
            .filter_map(|(key, state)| {
                let next = state.next_rotation_unix?;
                Some((key, next.saturating_sub(self.now_unix).max(0)))
            })
            .collect();
        if !due.is_empty() {
            let mut family = encoder.encode_descriptor(
                "next_rotation_in",
                "Seconds until a TerrakioCredential's next scheduled rotation; 0 when it is due.",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for ((namespace, name), seconds) in due {
                family
                    .encode_family(&[("namespace", namespace.as_str()), ("name", name.as_str())])?
                    .encode_gauge(&seconds)?;
            }
        }

        Ok(())
    }
}

/// `value` if it is one of `allowed`, else `other`.
fn one_of(value: &str, allowed: &[&'static str]) -> &'static str {
    allowed
        .iter()
        .copied()
        .find(|word| *word == value)
        .unwrap_or(OTHER)
}

/// A Kubernetes condition reason: CamelCase letters and digits, starting with a capital.
fn reason_label(reason: &str) -> String {
    let camel_case = reason.len() <= 64
        && reason.starts_with(|c: char| c.is_ascii_uppercase())
        && reason.chars().all(|c| c.is_ascii_alphanumeric());
    if camel_case { reason } else { OTHER_REASON }.to_string()
}

/// A snake_case word naming a call or a failure kind, such as `view_key` or `connect_error`.
fn word_label(word: &str) -> String {
    let snake_case = word.len() <= 32
        && word.starts_with(|c: char| c.is_ascii_lowercase())
        && word.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if snake_case { word } else { OTHER }.to_string()
}

/// An HTTP status code (three digits, 100 to 599), or else a failure kind.
fn outcome_label(outcome: &str) -> String {
    let status = outcome.len() == 3
        && outcome
            .parse::<u16>()
            .is_ok_and(|code| (100..600).contains(&code));
    if status {
        outcome.to_string()
    } else {
        word_label(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Fails unless every line of `expected` is a whole line of `exposition`.
    fn assert_lines(exposition: &str, expected: &[String]) {
        for line in expected {
            assert!(
                exposition.lines().any(|l| l == line),
                "missing {line:?} in\n{exposition}"
            );
        }
    }

    /// The samples of the metric `name`, in the order they were written.
    fn samples_of<'a>(exposition: &'a str, name: &str) -> Vec<&'a str> {
        exposition
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .collect()
    }

    #[test]
    fn reconciles_are_counted_by_result_and_reason() {
        let metrics = Metrics::new();
        metrics.reconciled("success", "KeySynced", 20 * MS);
        metrics.reconciled("success", "KeySynced", 300 * MS);
        metrics.reconciled("error", "LoginFailed", 3 * MS);

        let total = "terrakio_operator_reconciles_total";
        let duration = "terrakio_operator_reconcile_duration_seconds";
        assert_lines(
            &metrics.encode(0),
            &[
                "# TYPE terrakio_operator_reconciles counter".to_string(),
                format!(r#"{total}{{result="success",reason="KeySynced"}} 2"#),
                format!(r#"{total}{{result="error",reason="LoginFailed"}} 1"#),
                format!("# TYPE {duration} histogram"),
                format!("# UNIT {duration} seconds"),
                format!("{duration}_count 3"),
                format!(r#"{duration}_bucket{{le="0.01"}} 1"#),
                format!(r#"{duration}_bucket{{le="0.025"}} 2"#),
                format!(r#"{duration}_bucket{{le="0.25"}} 2"#),
                format!(r#"{duration}_bucket{{le="0.5"}} 3"#),
                format!(r#"{duration}_bucket{{le="+Inf"}} 3"#),
            ],
        );
    }

    #[test]
    fn terrakio_requests_are_counted_by_call_and_outcome_and_timed_by_call() {
        let metrics = Metrics::new();
        metrics.terrakio_request("login", "200", 40 * MS);
        metrics.terrakio_request("login", "429", 60 * MS);
        metrics.terrakio_request("view_key", "200", 5 * MS);
        metrics.terrakio_request("generate_key", "timeout", Duration::from_secs(30));
        metrics.terrakio_request("view_key", "rate_limited_locally", Duration::ZERO);

        let total = "terrakio_operator_terrakio_requests_total";
        let duration = "terrakio_operator_terrakio_request_duration_seconds";
        assert_lines(
            &metrics.encode(0),
            &[
                format!(r#"{total}{{call="login",outcome="200"}} 1"#),
                format!(r#"{total}{{call="login",outcome="429"}} 1"#),
                format!(r#"{total}{{call="view_key",outcome="200"}} 1"#),
                format!(r#"{total}{{call="generate_key",outcome="timeout"}} 1"#),
                format!(r#"{total}{{call="view_key",outcome="rate_limited_locally"}} 1"#),
                format!(r#"{duration}_count{{call="login"}} 2"#),
                format!(r#"{duration}_sum{{call="login"}} 0.1"#),
                format!(r#"{duration}_bucket{{le="0.05",call="login"}} 1"#),
                format!(r#"{duration}_bucket{{le="0.1",call="login"}} 2"#),
                format!(r#"{duration}_count{{call="view_key"}} 2"#),
                format!(r#"{duration}_bucket{{le="10.0",call="generate_key"}} 0"#),
                format!(r#"{duration}_bucket{{le="30.0",call="generate_key"}} 1"#),
            ],
        );
    }

    #[test]
    fn rotations_are_counted_by_trigger() {
        let metrics = Metrics::new();
        metrics.rotated("schedule");
        metrics.rotated("request");
        metrics.rotated("schedule");

        let total = "terrakio_operator_rotations_total";
        assert_lines(
            &metrics.encode(0),
            &[
                format!(r#"{total}{{trigger="schedule"}} 2"#),
                format!(r#"{total}{{trigger="request"}} 1"#),
            ],
        );
    }

    #[test]
    fn label_values_outside_their_vocabulary_are_recorded_as_other() {
        let metrics = Metrics::new();
        metrics.reconciled("maybe", "login failed: password=hunter2", MS);
        metrics.terrakio_request("https://api.example/users/login", "Bearer eyJhb.x.y", MS);
        metrics.terrakio_request("login", "999", MS);
        metrics.terrakio_request("login", "tls_error", MS);
        metrics.rotated("cron");
        metrics.credential_state("ns", "a", "yes", "KeySynced", None);

        let text = metrics.encode(0);
        let requests = "terrakio_operator_terrakio_requests_total";
        assert_lines(
            &text,
            &[
                r#"terrakio_operator_reconciles_total{result="other",reason="Other"} 1"#.into(),
                format!(r#"{requests}{{call="other",outcome="other"}} 1"#),
                format!(r#"{requests}{{call="login",outcome="other"}} 1"#),
                // A failure kind the client names later needs no change here.
                format!(r#"{requests}{{call="login",outcome="tls_error"}} 1"#),
                r#"terrakio_operator_rotations_total{trigger="other"} 1"#.into(),
                r#"terrakio_operator_credentials{ready="Unknown",reason="KeySynced"} 1"#.into(),
            ],
        );
        for secret in ["hunter2", "eyJhb", "example"] {
            assert!(!text.contains(secret), "{secret} leaked into\n{text}");
        }
    }

    #[test]
    fn credentials_are_counted_by_their_latest_state() {
        enum Change {
            Set(&'static str, &'static str, &'static str),
            Forget(&'static str),
        }
        use Change::*;
        let steps: [(Change, &[&str]); 7] = [
            (
                Set("a", "False", "LoginFailed"),
                &[r#"{ready="False",reason="LoginFailed"} 1"#],
            ),
            (
                Set("b", "True", "KeySynced"),
                &[
                    r#"{ready="False",reason="LoginFailed"} 1"#,
                    r#"{ready="True",reason="KeySynced"} 1"#,
                ],
            ),
            // A credential that recovers moves to the other series; the old one vanishes.
            (
                Set("a", "True", "KeySynced"),
                &[r#"{ready="True",reason="KeySynced"} 2"#],
            ),
            // Reporting the same state again changes nothing.
            (
                Set("a", "True", "KeySynced"),
                &[r#"{ready="True",reason="KeySynced"} 2"#],
            ),
            (Forget("b"), &[r#"{ready="True",reason="KeySynced"} 1"#]),
            // Forgetting one that was never known is harmless.
            (
                Forget("never-seen"),
                &[r#"{ready="True",reason="KeySynced"} 1"#],
            ),
            // With no credentials left there is no series, and no descriptor either.
            (Forget("a"), &[]),
        ];

        let name = "terrakio_operator_credentials";
        let metrics = Metrics::new();
        for (i, (change, expected)) in steps.iter().enumerate() {
            match *change {
                Set(credential, ready, reason) => {
                    metrics.credential_state("ns", credential, ready, reason, None)
                }
                Forget(credential) => metrics.forget_credential("ns", credential),
            }

            let text = metrics.encode(0);
            let expected: Vec<String> = expected.iter().map(|s| format!("{name}{s}")).collect();
            assert_eq!(samples_of(&text, name), expected, "step {i}:\n{text}");
            let described = text.contains("# TYPE terrakio_operator_credentials gauge\n");
            assert_eq!(described, !expected.is_empty(), "step {i}:\n{text}");
        }
    }

    #[test]
    fn credentials_in_other_namespaces_are_distinct() {
        let metrics = Metrics::new();
        metrics.credential_state("one", "same", "True", "KeySynced", None);
        metrics.credential_state("two", "same", "True", "KeySynced", None);
        metrics.forget_credential("one", "same");

        let name = "terrakio_operator_credentials";
        assert_eq!(
            samples_of(&metrics.encode(0), name),
            [format!(r#"{name}{{ready="True",reason="KeySynced"}} 1"#)]
        );
    }

    #[test]
    fn next_rotation_counts_down_against_the_scrape_clock() {
        let cases: [(&str, Option<i64>, i64, Option<&str>); 6] = [
            ("due in an hour", Some(4_600), 1_000, Some("3600")),
            ("ten seconds later", Some(4_600), 1_010, Some("3590")),
            ("due exactly now", Some(4_600), 4_600, Some("0")),
            ("overdue is clamped", Some(4_600), 9_000, Some("0")),
            ("no rotation policy", None, 1_000, None),
            (
                "no overflow",
                Some(i64::MAX),
                i64::MIN,
                Some("9223372036854775807"),
            ),
        ];

        let name = "terrakio_operator_next_rotation_in_seconds";
        for (what, next, now, seconds) in cases {
            let metrics = Metrics::new();
            metrics.credential_state("ns", "cred", "True", "KeySynced", next);

            let expected: Vec<String> = seconds
                .map(|s| format!(r#"{name}{{namespace="ns",name="cred"}} {s}"#))
                .into_iter()
                .collect();
            let text = metrics.encode(now);
            assert_eq!(samples_of(&text, name), expected, "{what}:\n{text}");
        }
    }

    #[test]
    fn next_rotation_follows_the_latest_state_and_vanishes_when_forgotten() {
        let metrics = Metrics::new();
        let name = "terrakio_operator_next_rotation_in_seconds";
        metrics.credential_state("ns", "a", "True", "KeySynced", Some(200));
        metrics.credential_state("ns", "b", "True", "KeySynced", Some(300));
        assert_eq!(
            samples_of(&metrics.encode(100), name),
            [
                format!(r#"{name}{{namespace="ns",name="a"}} 100"#),
                format!(r#"{name}{{namespace="ns",name="b"}} 200"#),
            ]
        );

        // The policy was removed from "a"; "b" rotated and its next rotation moved on.
        metrics.credential_state("ns", "a", "True", "KeySynced", None);
        metrics.credential_state("ns", "b", "True", "KeySynced", Some(1_000));
        assert_eq!(
            samples_of(&metrics.encode(100), name),
            [format!(r#"{name}{{namespace="ns",name="b"}} 900"#)]
        );

        metrics.forget_credential("ns", "b");
        let text = metrics.encode(100);
        assert!(
            !text.contains(name),
            "neither series nor descriptor:\n{text}"
        );
    }

    #[test]
    fn exposition_is_openmetrics_and_ends_with_eof() {
        let metrics = Metrics::default();
        let fresh = metrics.encode(0);
        assert!(fresh.ends_with("# EOF\n"), "{fresh}");
        assert_eq!(fresh.matches("# EOF").count(), 1);
        // The reconcile histogram has no labels, so it is there before the first reconcile.
        assert_lines(
            &fresh,
            &["terrakio_operator_reconcile_duration_seconds_count 0".to_string()],
        );

        metrics.reconciled("success", "KeySynced", MS);
        metrics.terrakio_request("login", "200", MS);
        metrics.rotated("schedule");
        metrics.credential_state("ns", "a", "True", "KeySynced", Some(10));
        let text = metrics.encode(0);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        for line in text.lines() {
            assert!(
                line.starts_with("# ") || line.starts_with("terrakio_operator_"),
                "unexpected line {line:?}"
            );
        }
    }
}
