//! The Ready condition, following the Kubernetes API conventions: CamelCase reasons, a message
//! for people, `observedGeneration`, and a `lastTransitionTime` that moves only when the status
//! does.

use std::fmt;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The target Secret holds the account's current key.
    KeySynced,
    InvalidSpec,
    LoginSecretNotFound,
    LoginSecretInvalid,
    /// Terrakio refused the email or password.
    LoginFailed,
    /// Timeouts, connection failures, 5xx.
    TerrakioUnavailable,
    /// 429 from Terrakio.
    RateLimited,
    /// Any other refusal or an answer that is not what the API documents.
    TerrakioRequestFailed,
    /// The target name is taken by a Secret this credential does not control.
    TargetConflict,
    /// The Kubernetes API refused or failed a read or write.
    KubernetesError,
    /// `spec.suspend` is true.
    Suspended,
    /// The Terrakio server's certificate is not trusted (or the CA bundle is unusable).
    TlsError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::KeySynced => "KeySynced",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::LoginSecretNotFound => "LoginSecretNotFound",
            Reason::LoginSecretInvalid => "LoginSecretInvalid",
            Reason::LoginFailed => "LoginFailed",
            Reason::TerrakioUnavailable => "TerrakioUnavailable",
            Reason::RateLimited => "RateLimited",
            Reason::TerrakioRequestFailed => "TerrakioRequestFailed",
            Reason::TargetConflict => "TargetConflict",
            Reason::KubernetesError => "KubernetesError",
            Reason::Suspended => "Suspended",
            Reason::TlsError => "TLSError",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Ready condition to record. `previous` is the condition currently in status; its
/// transition time is kept when the status value does not change.
pub fn ready(
    previous: Option<&Condition>,
    ok: bool,
    reason: Reason,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = match previous {
        Some(prev) if prev.status == status => prev.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: READY.to_string(),
        status: status.to_string(),
        reason: reason.as_str().to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let t1 = Timestamp::from_second(1_800_000_100).unwrap();
        let failed = ready(None, false, Reason::LoginFailed, "no".into(), Some(1), t0);
        assert_eq!(failed.last_transition_time, Time(t0));

        let cases = [
            // Same status, other reason: still the same transition.
            (false, Reason::TerrakioUnavailable, t0),
            // Status flips: the transition is now.
            (true, Reason::KeySynced, t1),
        ];
        for (ok, reason, expected) in cases {
            let next = ready(Some(&failed), ok, reason, "m".into(), Some(2), t1);
            assert_eq!(next.last_transition_time, Time(expected), "{reason}");
            assert_eq!(next.reason, reason.as_str());
            assert_eq!(next.observed_generation, Some(2));
        }
    }
}
