//! Injected faults: wrong answers, slow answers, and answers lost after the work was done.
//!
//! The operator's retry rules distinguish "the request never reached the application" from
//! "it did, but the answer was lost" (a retried generate can rotate twice). A fault can model
//! either: by default it replaces the real action, and with `after_effect` the real action
//! happens first and only its answer is replaced or delayed.

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::Endpoint;

/// What to do to the next matching calls instead of (or on top of) answering normally.
///
/// Every field is optional in JSON, so `{"endpoint": "login", "status": 503}` is a whole fault;
/// unknown fields are refused, so a misspelt one cannot silently turn the fault into a no-op.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// The endpoint the fault applies to; None for every endpoint.
    pub endpoint: Option<Endpoint>,
    /// Answer this status instead of the real answer.
    pub status: Option<u16>,
    /// Raw body of the faulty answer; `{"detail": "injected fault"}` when None.
    pub body: Option<String>,
    /// Content type of the faulty answer; `application/json` when None. Lets a test send the
    /// plain text some proxies answer with.
    pub content_type: Option<String>,
    /// Value of a `Retry-After` header added to the answer (seconds or an HTTP date).
    pub retry_after: Option<String>,
    /// Wait this long before answering, with or without `status`.
    pub latency_ms: Option<u64>,
    /// How many of the next matching calls the fault applies to; 0 means 1.
    pub times: u32,
    /// Perform the real action first, then wait and answer with the fault: the request reached
    /// the application but its answer was lost. Without it the fault comes instead of the
    /// action, and a client that gives up during `latency_ms` leaves no trace.
    pub after_effect: bool,
}

const DEFAULT_BODY: &str = r#"{"detail": "injected fault"}"#;

impl Fault {
    /// A fault on one endpoint that does nothing yet; fill in the rest with struct update
    /// syntax: `Fault { status: Some(503), ..Fault::on(Endpoint::Login) }`.
    pub fn on(endpoint: Endpoint) -> Fault {
        Fault {
            endpoint: Some(endpoint),
            ..Fault::default()
        }
    }

    /// Refuses a fault that could not be turned into an HTTP answer, so the mistake shows
    /// where the fault is injected rather than as a puzzling answer later.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(status) = self.status {
            StatusCode::from_u16(status).map_err(|_| format!("status {status} is not valid"))?;
        }
        if let Some(content_type) = &self.content_type {
            HeaderValue::from_str(content_type)
                .map_err(|_| format!("content_type {content_type:?} is not a header value"))?;
        }
        if let Some(retry_after) = &self.retry_after {
            HeaderValue::from_str(retry_after)
                .map_err(|_| format!("retry_after {retry_after:?} is not a header value"))?;
        }
        Ok(())
    }

    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency_ms.map(Duration::from_millis)
    }

    /// The faulty answer, if the fault sets a status.
    pub(crate) fn answer(&self) -> Option<Response> {
        let status = StatusCode::from_u16(self.status?).ok()?;
        let body = self.body.clone().unwrap_or_else(|| DEFAULT_BODY.to_owned());
        let content_type = self.content_type.as_deref().unwrap_or("application/json");
        let content_type = HeaderValue::from_str(content_type).ok()?;
        Some((status, [(CONTENT_TYPE, content_type)], body).into_response())
    }

    /// Adds what the fault puts on any answer, faulty or real.
    pub(crate) fn decorate(&self, response: &mut Response) {
        let retry_after = self.retry_after.as_deref().map(HeaderValue::from_str);
        if let Some(Ok(value)) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
    }

    fn applies_to(&self, endpoint: Endpoint) -> bool {
        self.endpoint.is_none_or(|e| e == endpoint)
    }
}

/// Faults waiting for their calls, oldest first.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    pending: VecDeque<Pending>,
}

#[derive(Debug)]
struct Pending {
    fault: Fault,
    left: u32,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, fault: Fault) {
        let left = fault.times.max(1);
        self.pending.push_back(Pending { fault, left });
    }

    /// Uses up one application of the oldest fault that matches a call to `endpoint`.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let index = self
            .pending
            .iter()
            .position(|p| p.fault.applies_to(endpoint))?;
        let pending = &mut self.pending[index];
        pending.left -= 1;
        if pending.left == 0 {
            self.pending.remove(index).map(|p| p.fault)
        } else {
            Some(pending.fault.clone())
        }
    }

    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(endpoint: Option<Endpoint>, status: u16, times: u32) -> Fault {
        Fault {
            endpoint,
            status: Some(status),
            times,
            ..Fault::default()
        }
    }

    #[test]
    fn times_zero_means_once() {
        let mut queue = FaultQueue::default();
        queue.push(status(None, 503, 0));

        assert_eq!(
            queue.take(Endpoint::Login).and_then(|f| f.status),
            Some(503)
        );
        assert!(queue.take(Endpoint::Login).is_none());
    }

    #[test]
    fn a_fault_lasts_its_times() {
        let mut queue = FaultQueue::default();
        queue.push(status(Some(Endpoint::Login), 503, 2));

        assert!(queue.take(Endpoint::Login).is_some());
        assert!(queue.take(Endpoint::Login).is_some());
        assert!(queue.take(Endpoint::Login).is_none());
    }

    #[test]
    fn oldest_matching_fault_goes_first() {
        let mut queue = FaultQueue::default();
        queue.push(status(Some(Endpoint::GenerateKey), 500, 1));
        queue.push(status(Some(Endpoint::Login), 502, 1));
        queue.push(status(None, 503, 1));

        assert_eq!(
            queue.take(Endpoint::Login).and_then(|f| f.status),
            Some(502)
        );
        assert_eq!(
            queue.take(Endpoint::Login).and_then(|f| f.status),
            Some(503)
        );
        assert!(queue.take(Endpoint::Login).is_none());
        assert_eq!(queue.len(), 1);
        assert_eq!(
            queue.take(Endpoint::GenerateKey).and_then(|f| f.status),
            Some(500)
        );
    }

    #[test]
    fn json_needs_only_the_fields_it_uses() {
        let fault: Fault = serde_json::from_str(r#"{"endpoint": "view_key", "status": 429}"#)
            .expect("a partial fault parses");
        assert_eq!(fault.endpoint, Some(Endpoint::ViewKey));
        assert_eq!(fault.times, 0);
        assert!(!fault.after_effect);

        assert!(serde_json::from_str::<Fault>(r#"{"latency": 5}"#).is_err());
    }

    #[test]
    fn check_refuses_what_http_cannot_carry() {
        assert!(
            Fault {
                status: Some(1000),
                ..Fault::default()
            }
            .check()
            .is_err()
        );
        let bad_header = Fault {
            retry_after: Some("1\n2".into()),
            ..Fault::default()
        };
        assert!(bad_header.check().is_err());
        assert!(status(None, 429, 1).check().is_ok());
    }

    #[test]
    fn answer_defaults_to_a_json_detail() {
        let answer = status(None, 500, 1).answer().unwrap();
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.headers()[CONTENT_TYPE], "application/json");
        assert!(Fault::default().answer().is_none());
    }
}
