//! Why a reconcile failed. Each variant names the step that failed; each maps to the Ready
//! condition's reason, and its message says what to do. No message carries a secret.

use std::time::Duration;

use crate::conditions::Reason;
use crate::terrakio::TerrakioError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidSpec(String),

    #[error(
        "login Secret {name:?} not found in this namespace; create it with the account's email \
         and password"
    )]
    LoginSecretNotFound { name: String },

    #[error("login Secret {name:?}: {problem}")]
    LoginSecretInvalid { name: String, problem: String },

    #[error("{step} at {host}: {source}")]
    Terrakio {
        step: &'static str,
        host: String,
        source: TerrakioError,
    },

    #[error(
        "Secret {name:?} already exists and is not controlled by this TerrakioCredential; delete \
         or rename it, or set spec.target.name to another name"
    )]
    TargetConflict { name: String },

    #[error("this replica no longer holds the leader election Lease")]
    NotLeading,

    #[error("{step}: {}", kubernetes_message(source))]
    Kubernetes {
        step: &'static str,
        source: kube::Error,
    },
}

impl Error {
    pub fn reason(&self) -> Reason {
        match self {
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::LoginSecretNotFound { .. } => Reason::LoginSecretNotFound,
            Error::LoginSecretInvalid { .. } => Reason::LoginSecretInvalid,
            Error::TargetConflict { .. } => Reason::TargetConflict,
            Error::Kubernetes { .. } | Error::NotLeading => Reason::KubernetesError,
            Error::Terrakio { source, .. } => match source {
                TerrakioError::LoginRefused { .. } => Reason::LoginFailed,
                TerrakioError::RateLimited { .. } => Reason::RateLimited,
                TerrakioError::Unavailable { .. } => Reason::TerrakioUnavailable,
                TerrakioError::Tls { .. } | TerrakioError::CaBundle(_) => Reason::TlsError,
                TerrakioError::NotAuthenticated { .. }
                | TerrakioError::Rejected { .. }
                | TerrakioError::InvalidResponse { .. } => Reason::TerrakioRequestFailed,
            },
        }
    }

    /// The shortest wait before trying again. Problems a person must fix wait longer at first:
    /// a fix to the spec or the login Secret triggers a reconcile at once anyway.
    pub fn first_retry(&self) -> Duration {
        match self.reason() {
            Reason::TerrakioUnavailable | Reason::KubernetesError => Duration::from_secs(1),
            Reason::RateLimited => Duration::from_secs(2),
            _ => Duration::from_secs(5),
        }
    }

    /// A write refused because the object changed meanwhile: not a failure to report, only
    /// a reason to look again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kubernetes { source: kube::Error::Api(status), .. } if status.code == 409)
    }

    /// The wait Terrakio asked for, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Terrakio {
                source: TerrakioError::RateLimited { retry_after, .. },
                ..
            } => *retry_after,
            _ => None,
        }
    }
}

/// The API server's own message for a refusal, which says what was wrong, rather than the
/// whole status object.
pub fn kubernetes_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message, status.code),
        other => other.to_string(),
    }
}
