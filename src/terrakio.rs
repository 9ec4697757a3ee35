//! The Terrakio account API client: login, view key, generate key.
//!
//! It knows HTTP and the API's rules (bare token in `Authorization`, which answers mean what,
//! which calls may be retried) and nothing about Kubernetes. Secrets go in and come out only as
//! [`Password`], [`Token`] and [`ApiKey`], and no error built here carries one: error bodies
//! are cut short and request URLs are stripped from transport errors.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::sensitive::{ApiKey, Password, Token};

/// Error details quoted from Terrakio are cut to this many characters.
const MAX_DETAIL_CHARS: usize = 200;
/// A `Retry-After` longer than this is not waited out inside one call: the caller reschedules.
const MAX_INLINE_RETRY_AFTER: Duration = Duration::from_secs(10);
/// A pause of an endpoint this short is waited out inside the call.
const MAX_QUEUED_PAUSE: Duration = Duration::from_secs(1);
/// How long an endpoint that answered 429 without `Retry-After` is left alone.
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);

/// The calls the operator makes, named for errors, logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Login,
    ViewKey,
    GenerateKey,
}

impl Call {
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Login => "login",
            Call::ViewKey => "view_key",
            Call::GenerateKey => "generate_key",
        }
    }

    fn method(self) -> Method {
        match self {
            Call::ViewKey => Method::GET,
            Call::Login | Call::GenerateKey => Method::POST,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Call::Login => "users/login",
            Call::ViewKey => "users/key",
            Call::GenerateKey => "users/generate_key",
        }
    }

    /// Whether an answer with this status may be retried as it is. A GET may always be
    /// repeated; a POST only when the status shows that the application never saw it.
    fn retries_status(self, status: StatusCode) -> bool {
        match self.method() {
            Method::GET => matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504),
            _ => matches!(status.as_u16(), 408 | 502 | 503 | 504),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TerrakioError {
    /// Login refused: wrong email or password, or an email Terrakio does not accept.
    #[error("Terrakio refused the login (HTTP {status}): {detail}")]
    LoginRefused { status: u16, detail: String },

    /// The token was refused; the session should log in again.
    #[error("Terrakio refused the login token for {call} (HTTP {status}): {detail}")]
    NotAuthenticated {
        call: Call,
        status: u16,
        detail: String,
    },

    #[error("Terrakio is rate limiting {call}{}", retry_hint(*.retry_after))]
    RateLimited {
        call: Call,
        retry_after: Option<Duration>,
    },

    /// Timeouts, connection failures, 5xx and 408: the service did not answer usefully.
    /// `request_sent` is false only when no connection was made; `retry_safe` is true when
    /// the request demonstrably did not reach the application (no connection, or 408, 502,
    /// 503, 504 from the front), which is when even a POST may be repeated.
    #[error("Terrakio is unavailable for {call}: {reason}")]
    Unavailable {
        call: Call,
        reason: String,
        request_sent: bool,
        retry_safe: bool,
    },

    /// Any other refusal.
    #[error("Terrakio answered {call} with HTTP {status}: {detail}")]
    Rejected {
        call: Call,
        status: u16,
        detail: String,
    },

    /// A success status whose body is not what the API documents.
    #[error("Terrakio answered {call} with an unexpected body: {reason}")]
    InvalidResponse { call: Call, reason: String },

    /// The server's certificate was not trusted, or TLS failed otherwise. Never retried: it
    /// needs a fix (spec.caBundleSecretRef for a private CA), not patience.
    #[error("TLS with Terrakio failed for {call}: {reason}")]
    Tls { call: Call, reason: String },

    /// spec.caBundleSecretRef holds no usable certificate.
    #[error("the CA bundle is not usable: {0}")]
    CaBundle(String),
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(" (retry after {}s)", after.as_secs()),
        None => String::new(),
    }
}

impl TerrakioError {
    /// The same error with `secret` blanked out of every text it quotes.
    pub fn redacted(self, secret: &str) -> TerrakioError {
        let clean = |text: String| error_text_without(&text, &[secret]);
        match self {
            TerrakioError::LoginRefused { status, detail } => TerrakioError::LoginRefused {
                status,
                detail: clean(detail),
            },
            TerrakioError::NotAuthenticated {
                call,
                status,
                detail,
            } => TerrakioError::NotAuthenticated {
                call,
                status,
                detail: clean(detail),
            },
            TerrakioError::Unavailable {
                call,
                reason,
                request_sent,
                retry_safe,
            } => TerrakioError::Unavailable {
                call,
                reason: clean(reason),
                request_sent,
                retry_safe,
            },
            TerrakioError::Rejected {
                call,
                status,
                detail,
            } => TerrakioError::Rejected {
                call,
                status,
                detail: clean(detail),
            },
            TerrakioError::InvalidResponse { call, reason } => TerrakioError::InvalidResponse {
                call,
                reason: clean(reason),
            },
            TerrakioError::Tls { call, reason } => TerrakioError::Tls {
                call,
                reason: clean(reason),
            },
            other => other,
        }
    }

    /// True when a generate call may have reached Terrakio and rotated the key even though no
    /// answer said so. The key must then be read back, never generated again blindly. Any
    /// request that was sent counts: a gateway's 504 may come after the application acted.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            TerrakioError::Unavailable { request_sent, .. } => *request_sent,
            TerrakioError::InvalidResponse { .. } => true,
            _ => false,
        }
    }

    fn retryable(&self, call: Call) -> bool {
        match self {
            TerrakioError::RateLimited { retry_after, .. } => {
                call.method() == Method::GET
                    && retry_after.is_none_or(|after| after <= MAX_INLINE_RETRY_AFTER)
            }
            TerrakioError::Unavailable { retry_safe, .. } => match call {
                Call::ViewKey => true,
                Call::Login => *retry_safe,
                // A repeated generate may rotate twice; the caller reads back instead.
                Call::GenerateKey => false,
            },
            _ => false,
        }
    }
}

/// How calls are retried inside one request: up to 3 retries after 1, 2 and 4 seconds, which
/// is what the official client does. Tests shorten the pauses.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub first_pause: Duration,
    pub max_pause: Duration,
    pub retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_pause: Duration::from_secs(1),
            max_pause: Duration::from_secs(8),
            retries: 3,
        }
    }
}

/// How hard the operator may press Terrakio, across every credential and endpoint: a cold
/// start with thousands of credentials must not flood the service.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests per second, sustained.
    pub rate: NonZeroU32,
    /// Requests allowed in a burst above the rate.
    pub burst: NonZeroU32,
    /// Requests in flight at once.
    pub max_concurrent: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate: NonZeroU32::new(10).expect("non-zero"),
            burst: NonZeroU32::new(20).expect("non-zero"),
            max_concurrent: 8,
        }
    }
}

/// Sees every request sent, for metrics. `outcome` is the HTTP status as text, or one of
/// `timeout`, `connect_error`, `tls_error`, `transport_error`, `rate_limited_locally`.
pub trait Observer: Send + Sync {
    fn request(&self, call: Call, outcome: &str, duration: Duration);
}

/// A client for any number of Terrakio endpoints; the base URL is given with each call.
/// Clones share the limits, the endpoints' rate-limit pauses and the observer.
#[derive(Clone)]
pub struct TerrakioClient {
    http: reqwest::Client,
    retry: RetryPolicy,
    shared: Arc<Shared>,
}

struct Shared {
    timeout: Duration,
    limiter: governor::DefaultDirectRateLimiter,
    permits: tokio::sync::Semaphore,
    /// Endpoints (by origin) that answered 429, and until when every caller leaves them alone.
    paused: Mutex<HashMap<String, Instant>>,
    observer: Option<Arc<dyn Observer>>,
    /// Clients that also trust a private CA, by the bundle's digest.
    with_ca: Mutex<HashMap<[u8; 32], reqwest::Client>>,
}

#[derive(Deserialize)]
struct LoginAnswer {
    token: Option<String>,
}

#[derive(Deserialize)]
struct KeyAnswer {
    #[serde(rename = "apiKey")]
    api_key: Option<String>,
}

impl TerrakioClient {
    /// A client with the default limits and no observer.
    pub fn new(timeout: Duration, retry: RetryPolicy) -> Result<Self, reqwest::Error> {
        TerrakioClient::with_limits(timeout, retry, Limits::default(), None)
    }

    pub fn with_limits(
        timeout: Duration,
        retry: RetryPolicy,
        limits: Limits,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Self, reqwest::Error> {
        let http = http_client(timeout, None)?;
        let quota = governor::Quota::per_second(limits.rate).allow_burst(limits.burst);
        let shared = Arc::new(Shared {
            timeout,
            limiter: governor::RateLimiter::direct(quota),
            permits: tokio::sync::Semaphore::new(limits.max_concurrent.max(1)),
            paused: Mutex::default(),
            observer,
            with_ca: Mutex::default(),
        });
        Ok(TerrakioClient {
            http,
            retry,
            shared,
        })
    }

    /// The same client, also trusting the CA certificates of `bundle` (PEM) besides the
    /// system's roots. Clients are built once per bundle and shared.
    pub fn trusting(&self, bundle: &[u8]) -> Result<TerrakioClient, TerrakioError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(bundle).into();
        let mut cache = self.shared.with_ca.lock().expect("client cache lock");
        let http = match cache.get(&digest) {
            Some(http) => http.clone(),
            None => {
                let certs = reqwest::Certificate::from_pem_bundle(bundle).map_err(|err| {
                    TerrakioError::CaBundle(format!("not PEM certificates ({err})"))
                })?;
                if certs.is_empty() {
                    return Err(TerrakioError::CaBundle("no certificate in it".into()));
                }
                let http = http_client(self.shared.timeout, Some(certs))
                    .map_err(|err| TerrakioError::CaBundle(err.to_string()))?;
                cache.insert(digest, http.clone());
                http
            }
        };
        Ok(TerrakioClient {
            http,
            retry: self.retry,
            shared: self.shared.clone(),
        })
    }

    /// `POST /users/login`: a fresh token for the account.
    pub async fn login(
        &self,
        endpoint: &Url,
        email: &str,
        password: &Password,
    ) -> Result<Token, TerrakioError> {
        let body = serde_json::json!({ "email": email, "password": password.expose() });
        let secrets = [password.expose()];
        let (status, bytes) = self
            .send(Call::Login, endpoint, None, Some(&body), &secrets)
            .await?;
        match status.as_u16() {
            200..=299 => {
                let answer: LoginAnswer = parse_json(Call::Login, &bytes)?;
                match answer.token {
                    Some(token) if !token.is_empty() => Ok(Token::new(token)),
                    _ => Err(TerrakioError::InvalidResponse {
                        call: Call::Login,
                        reason: "no token in the answer".into(),
                    }),
                }
            }
            400 | 401 | 403 | 422 => Err(TerrakioError::LoginRefused {
                status: status.as_u16(),
                detail: error_detail(&bytes, &secrets),
            }),
            _ => Err(classify_failure(Call::Login, status, &bytes, &secrets)),
        }
    }

    /// `GET /users/key`: the account's current key, or `None` when it has none yet (404, a
    /// null key and an empty key all mean that).
    pub async fn view_key(
        &self,
        endpoint: &Url,
        token: &Token,
    ) -> Result<Option<ApiKey>, TerrakioError> {
        let secrets = [token.expose()];
        let (status, bytes) = self
            .send(Call::ViewKey, endpoint, Some(token), None, &secrets)
            .await?;
        match status.as_u16() {
            200..=299 => {
                let answer: KeyAnswer = parse_json(Call::ViewKey, &bytes)?;
                Ok(answer
                    .api_key
                    .filter(|key| !key.is_empty())
                    .map(ApiKey::new))
            }
            404 => Ok(None),
            _ => Err(classify_failure(Call::ViewKey, status, &bytes, &secrets)),
        }
    }

    /// `POST /users/generate_key`: creates the account's key or replaces the current one.
    /// Never retried here: see [`TerrakioError::outcome_unknown`].
    pub async fn generate_key(
        &self,
        endpoint: &Url,
        token: &Token,
    ) -> Result<ApiKey, TerrakioError> {
        let secrets = [token.expose()];
        let (status, bytes) = self
            .send(Call::GenerateKey, endpoint, Some(token), None, &secrets)
            .await?;
        match status.as_u16() {
            200..=299 => {
                let answer: KeyAnswer = parse_json(Call::GenerateKey, &bytes)?;
                match answer.api_key {
                    Some(key) if !key.is_empty() => Ok(ApiKey::new(key)),
                    _ => Err(TerrakioError::InvalidResponse {
                        call: Call::GenerateKey,
                        reason: "no apiKey in the answer".into(),
                    }),
                }
            }
            _ => Err(classify_failure(
                Call::GenerateKey,
                status,
                &bytes,
                &secrets,
            )),
        }
    }

    /// Sends one call, retrying what the API allows, and returns the final status and body.
    /// Statuses that are failures but not retryable come back as `Ok` for the caller to read.
    /// `secrets` are what the request carries; an error quoting the answer never shows them.
    async fn send(
        &self,
        call: Call,
        endpoint: &Url,
        token: Option<&Token>,
        body: Option<&serde_json::Value>,
        secrets: &[&str],
    ) -> Result<(StatusCode, bytes::Bytes), TerrakioError> {
        let url = join(endpoint, call.path());
        let origin = url.origin().ascii_serialization();
        let attempt = || async {
            // Some caller was told to slow down: nobody calls this endpoint until then. A short
            // pause is waited out; a longer one goes back to the caller to reschedule, so that
            // its credential reports RateLimited instead of hanging in a queue.
            while let Some(remaining) = self.paused_for(&origin) {
                if remaining > MAX_QUEUED_PAUSE {
                    self.observe(call, "rate_limited_locally", Duration::ZERO);
                    return Err(TerrakioError::RateLimited {
                        call,
                        retry_after: Some(remaining),
                    });
                }
                tokio::time::sleep(remaining).await;
            }
            self.shared.limiter.until_ready().await;
            let _permit = self
                .shared
                .permits
                .acquire()
                .await
                .expect("semaphore never closed");
            let started = Instant::now();
            let mut request = self.http.request(call.method(), url.clone());
            if let Some(token) = token {
                // The API takes the bare token, without a "Bearer " prefix.
                request = request.header(AUTHORIZATION, token.expose());
            }
            if let Some(body) = body {
                request = request.header(CONTENT_TYPE, "application/json").json(body);
            }
            tracing::debug!(call = call.as_str(), "calling Terrakio");
            let failed = |err: reqwest::Error| {
                let err = transport_error(call, &err);
                self.observe(call, transport_outcome(&err), started.elapsed());
                err
            };
            let response = request.send().await.map_err(failed)?;
            let status = response.status();
            let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER));
            let bytes = response.bytes().await.map_err(failed)?;
            self.observe(call, status.as_str(), started.elapsed());
            tracing::debug!(
                call = call.as_str(),
                status = status.as_u16(),
                "Terrakio answered"
            );
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.pause(&origin, retry_after.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE));
                return Err(TerrakioError::RateLimited { call, retry_after });
            }
            if call.retries_status(status) {
                return Err(TerrakioError::Unavailable {
                    call,
                    reason: format!(
                        "HTTP {}: {}",
                        status.as_u16(),
                        error_detail(&bytes, secrets)
                    ),
                    request_sent: true,
                    retry_safe: never_reached_the_application(status),
                });
            }
            Ok((status, bytes))
        };

        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.first_pause)
            .with_max_delay(self.retry.max_pause)
            .with_factor(2.0)
            .with_max_times(self.retry.retries);
        attempt
            .retry(backoff)
            .when(|err: &TerrakioError| err.retryable(call))
            .adjust(|err: &TerrakioError, pause| match err {
                TerrakioError::RateLimited { retry_after: Some(after), .. } => {
                    pause.map(|pause| pause.max(*after))
                }
                _ => pause,
            })
            .notify(|err: &TerrakioError, pause| {
                tracing::debug!(call = call.as_str(), error = %err, ?pause, "retrying Terrakio call");
            })
            .await
    }
}

impl TerrakioClient {
    fn observe(&self, call: Call, outcome: &str, duration: Duration) {
        if let Some(observer) = &self.shared.observer {
            observer.request(call, outcome, duration);
        }
    }

    fn paused_for(&self, origin: &str) -> Option<Duration> {
        let mut paused = self.shared.paused.lock().expect("pause lock");
        let until = *paused.get(origin)?;
        let remaining = until.checked_duration_since(Instant::now());
        if remaining.is_none() {
            paused.remove(origin);
        }
        remaining
    }

    fn pause(&self, origin: &str, pause: Duration) {
        let until = Instant::now() + pause;
        let mut paused = self.shared.paused.lock().expect("pause lock");
        let entry = paused.entry(origin.to_string()).or_insert(until);
        *entry = (*entry).max(until);
        tracing::debug!(
            pause_s = pause.as_secs(),
            "Terrakio asked to slow down; pausing every call to it"
        );
    }
}

fn http_client(
    timeout: Duration,
    extra_roots: Option<Vec<reqwest::Certificate>>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("terrakio-operator/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout);
    if let Some(certs) = extra_roots {
        builder = builder.tls_certs_merge(certs);
    }
    builder.build()
}

fn transport_outcome(err: &TerrakioError) -> &'static str {
    match err {
        TerrakioError::Tls { .. } => "tls_error",
        TerrakioError::Unavailable { reason, .. } if reason.starts_with("timed out") => "timeout",
        TerrakioError::Unavailable {
            request_sent: false,
            ..
        } => "connect_error",
        _ => "transport_error",
    }
}

/// Joins a call's path onto the base URL, keeping any path the base URL has.
fn join(endpoint: &Url, path: &str) -> Url {
    let mut base = endpoint.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path).unwrap_or(base)
}

/// Statuses that a proxy or the server front answers before the application sees the request.
fn never_reached_the_application(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 502 | 503 | 504)
}

fn classify_failure(
    call: Call,
    status: StatusCode,
    bytes: &[u8],
    secrets: &[&str],
) -> TerrakioError {
    let detail = error_detail(bytes, secrets);
    match status.as_u16() {
        400 | 401 => TerrakioError::NotAuthenticated {
            call,
            status: status.as_u16(),
            detail,
        },
        429 => TerrakioError::RateLimited {
            call,
            retry_after: None,
        },
        408 | 500..=599 => TerrakioError::Unavailable {
            call,
            reason: format!("HTTP {}: {detail}", status.as_u16()),
            request_sent: true,
            retry_safe: never_reached_the_application(status),
        },
        other => TerrakioError::Rejected {
            call,
            status: other,
            detail,
        },
    }
}

fn transport_error(call: Call, err: &reqwest::Error) -> TerrakioError {
    // A connection that never opened cannot have reached Terrakio; anything later might have.
    let request_sent = !err.is_connect();
    let mut reason = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "could not connect".to_string()
    } else {
        "connection failed".to_string()
    };
    let mut source = std::error::Error::source(err);
    let mut tls = false;
    while let Some(cause) = source {
        let text = cause.to_string();
        tls |= text.contains("certificate") || text.contains("tls") || text.contains("TLS");
        reason.push_str(": ");
        reason.push_str(&text);
        source = cause.source();
    }
    if tls {
        return TerrakioError::Tls {
            call,
            reason: truncate(&reason),
        };
    }
    TerrakioError::Unavailable {
        call,
        reason: truncate(&reason),
        request_sent,
        retry_safe: !request_sent,
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(call: Call, bytes: &[u8]) -> Result<T, TerrakioError> {
    serde_json::from_slice(bytes).map_err(|err| TerrakioError::InvalidResponse {
        call,
        // The serde error names the position and the expected shape, never the content.
        reason: format!("not the documented JSON ({})", err.classify_name()),
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

/// What an error body says: `detail` as a string or as `{"message": ...}`, or the plain text
/// a proxy sent, cut to a sane length. Never fails. Servers that echo the request in their
/// validation errors would show what it carried, so each of `secrets` is blanked out first.
pub fn error_detail(bytes: &[u8], secrets: &[&str]) -> String {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Detail {
        Text(String),
        Message { message: String },
        Other(serde_json::Value),
    }
    #[derive(Deserialize)]
    struct Body {
        detail: Detail,
    }

    let shown = match serde_json::from_slice::<Body>(bytes) {
        Ok(Body {
            detail: Detail::Text(text),
        }) => text,
        Ok(Body {
            detail: Detail::Message { message },
        }) => message,
        Ok(Body {
            detail: Detail::Other(value),
        }) => value.to_string(),
        Err(_) => String::from_utf8_lossy(bytes).trim().to_string(),
    };
    let shown = error_text_without(&shown, secrets);
    if shown.is_empty() {
        "(empty body)".to_string()
    } else {
        truncate(&shown)
    }
}

/// `text` with each of `secrets` blanked, as given and as a JSON string would escape it (a
/// `detail` object is shown re-serialised), and with whatever looks like a key or token masked:
/// an answer may quote what the client did not send, such as the account's key. Unbroken runs
/// of token characters, 24 or more, or 12 or more with a digit, are what keys, tokens and their
/// fragments look like, and what messages meant for people never need.
fn error_text_without(text: &str, secrets: &[&str]) -> String {
    let shown = secrets.iter().filter(|secret| !secret.is_empty()).fold(
        text.to_string(),
        |text, secret| {
            let escaped = serde_json::to_string(secret).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            text.replace(secret, "[redacted]")
                .replace(escaped, "[redacted]")
        },
    );
    static TOKEN_LIKE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"[A-Za-z0-9_+=.\-]{12,}").expect("pattern compiles")
    });
    TOKEN_LIKE
        .replace_all(&shown, |found: &regex::Captures<'_>| {
            let run = &found[0];
            if run.len() >= 24 || run.chars().any(|c| c.is_ascii_digit()) {
                "[redacted]".to_string()
            } else {
                run.to_string()
            }
        })
        .into_owned()
}

fn truncate(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_DETAIL_CHARS)
        .collect();
    if text.chars().count() > MAX_DETAIL_CHARS {
        format!("{clean}...")
    } else {
        clean
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_reads_every_documented_shape() {
        let cases: [(&[u8], &str); 6] = [
            (br#"{"detail": "Not authenticated"}"#, "Not authenticated"),
            (
                br#"{"detail": {"message": "Invalid email or password"}}"#,
                "Invalid email or password",
            ),
            (br#"{"detail": [{"loc": "email"}]}"#, r#"[{"loc":"email"}]"#),
            (b"<html>Bad Gateway</html>\n", "<html>Bad Gateway</html>"),
            (b"", "(empty body)"),
            (&[0xff, 0xfe, b'x'], "\u{fffd}\u{fffd}x"),
        ];
        for (body, expected) in cases {
            assert_eq!(error_detail(body, &[]), expected);
        }
    }

    #[test]
    fn error_detail_masks_what_looks_like_a_key_or_token() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"upstream error while serving key tk_4f9a8b7c6d5e4f3a2b1c0d9e8f7a",
                "upstream error while serving key [redacted]",
            ),
            (
                br#"{"detail": "bad token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"}"#,
                "bad token [redacted]",
            ),
            (
                br#"{"detail": "Invalid email or password"}"#,
                "Invalid email or password",
            ),
            (
                b"502 Bad Gateway from api.terrak.io",
                "502 Bad Gateway from api.terrak.io",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(error_detail(body, &[]), expected);
        }
    }

    #[test]
    fn a_redacted_error_quotes_neither_the_password_nor_key_fragments() {
        let password = r#"pw"with\quote"#;
        let body = format!(
            r#"{{"detail": "key fragment 4f9a8b7c6d5e4f3a2 is bad; pw {}"}}"#,
            password.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let err = classify_failure(Call::ViewKey, StatusCode::BAD_REQUEST, body.as_bytes(), &[])
            .redacted(password);
        let shown = err.to_string();
        assert!(!shown.contains("4f9a8b7c6d5e4f3a2"), "{shown}");
        assert!(!shown.contains("with"), "{shown}");
        assert!(shown.contains("key fragment [redacted] is bad"), "{shown}");
    }

    #[test]
    fn error_detail_blanks_a_secret_in_its_json_escaped_form() {
        let password = r#"Qx"7\vB-pw"#;
        let body = serde_json::json!({ "detail": [{ "input": password }] }).to_string();
        let shown = error_detail(body.as_bytes(), &[password]);
        assert!(
            !shown.contains("Qx") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn error_detail_never_repeats_what_the_request_carried() {
        let body = br#"{"detail": [{"loc": ["body", "password"], "input": "s3cret-pw"}]}"#;
        let shown = error_detail(body, &["s3cret-pw"]);
        assert!(
            !shown.contains("s3cret-pw") && shown.contains("[redacted]"),
            "{shown}"
        );
        let text = b"bad token eyJhbGc.payload.sig given";
        assert_eq!(
            error_detail(text, &["eyJhbGc.payload.sig"]),
            "bad token [redacted] given"
        );
    }

    #[test]
    fn error_detail_is_cut_short() {
        let long = format!(r#"{{"detail": "{}"}}"#, "many words ".repeat(500));
        let shown = error_detail(long.as_bytes(), &[]);
        assert_eq!(shown.len(), MAX_DETAIL_CHARS + 3);
        assert!(shown.ends_with("..."));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        use reqwest::header::HeaderValue;
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("5"))),
            Some(Duration::from_secs(5))
        );
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&past)), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("soon"))),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn which_statuses_are_retried_per_method() {
        let cases = [
            (Call::ViewKey, 429, true),
            (Call::ViewKey, 500, true),
            (Call::ViewKey, 503, true),
            (Call::ViewKey, 404, false),
            (Call::ViewKey, 401, false),
            (Call::Login, 500, false),
            (Call::Login, 429, false),
            (Call::Login, 502, true),
            (Call::Login, 408, true),
            (Call::GenerateKey, 504, true),
            (Call::GenerateKey, 500, false),
        ];
        for (call, status, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(call.retries_status(status), expected, "{call} {status}");
        }
    }

    #[test]
    fn join_keeps_a_base_path() {
        let cases = [
            ("https://api.terrak.io", "https://api.terrak.io/users/login"),
            (
                "https://api.terrak.io/",
                "https://api.terrak.io/users/login",
            ),
            (
                "https://onprem.example/terrakio",
                "https://onprem.example/terrakio/users/login",
            ),
            (
                "https://onprem.example/terrakio/",
                "https://onprem.example/terrakio/users/login",
            ),
        ];
        for (base, expected) in cases {
            assert_eq!(
                join(&Url::parse(base).unwrap(), "users/login").as_str(),
                expected
            );
        }
    }

    #[test]
    fn an_unknown_generate_outcome_is_flagged() {
        let sent = TerrakioError::Unavailable {
            call: Call::GenerateKey,
            reason: "timed out".into(),
            request_sent: true,
            retry_safe: false,
        };
        let not_sent = TerrakioError::Unavailable {
            call: Call::GenerateKey,
            reason: "could not connect".into(),
            request_sent: false,
            retry_safe: true,
        };
        assert!(sent.outcome_unknown());
        assert!(!not_sent.outcome_unknown());
        assert!(!sent.retryable(Call::GenerateKey));
        let refused = TerrakioError::NotAuthenticated {
            call: Call::GenerateKey,
            status: 401,
            detail: "Not authenticated".into(),
        };
        assert!(!refused.outcome_unknown());
    }
}
