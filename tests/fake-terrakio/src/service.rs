//! The fake service itself: what each endpoint does to the accounts and what it answers.
//!
//! Nothing here knows about HTTP transport or faults; every endpoint is a plain method from a
//! request's parts to an [`Answer`], so the rules can be read (and changed) in one place.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::Accounts;
use crate::calls::CallCounts;
use crate::faults::{Fault, FaultQueue};
use crate::tokens::{self, Tokens};
use crate::{Endpoint, random};

/// A JSON answer of the account API.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            body,
        }
    }

    /// The service's error shape, `{"detail": "..."}`.
    pub(crate) fn detail(status: StatusCode, detail: &str) -> Answer {
        Answer {
            status,
            body: json!({ "detail": detail }),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The whole state of the fake: accounts, tokens, and what tests have asked for.
#[derive(Debug)]
pub(crate) struct Terrakio {
    pub(crate) accounts: Accounts,
    pub(crate) tokens: Tokens,
    pub(crate) calls: CallCounts,
    pub(crate) faults: FaultQueue,
    /// Whether login answers like newer servers, with a `refresh_token` beside the token.
    pub(crate) refresh_tokens: bool,
}

/// The state as the server tasks and every handle share it.
///
/// A std mutex suffices because no one holds it across an `.await`: each endpoint takes it
/// for one synchronous step, and faults sleep with it released.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shared(Arc<Mutex<Terrakio>>);

impl Shared {
    /// The state, even after a panic elsewhere poisoned the lock: a failed assertion in one
    /// test task must not turn every later answer of the fake into a second, confusing panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Terrakio> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

fn credentials(body: &[u8]) -> Result<Credentials, Answer> {
    serde_json::from_slice(body).map_err(|e| {
        let detail = format!(r#"body must be JSON {{"email", "password"}}: {e}"#);
        Answer::detail(StatusCode::UNPROCESSABLE_ENTITY, &detail)
    })
}

fn not_authenticated() -> Answer {
    Answer::detail(StatusCode::UNAUTHORIZED, "Not authenticated")
}

/// An address with something on both sides of an `@`; the real service validates more, but
/// this is enough for a test to provoke the refusal.
fn plausible_email(email: &str) -> bool {
    email
        .split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && !domain.is_empty())
}

impl Default for Terrakio {
    fn default() -> Terrakio {
        Terrakio {
            accounts: Accounts::default(),
            tokens: Tokens::new(tokens::DEFAULT_LIFETIME),
            calls: CallCounts::default(),
            faults: FaultQueue::default(),
            refresh_tokens: false,
        }
    }
}

impl Terrakio {
    /// Records a call the moment it arrives and hands back the fault it must suffer, if any.
    pub(crate) fn arrive(&mut self, endpoint: Endpoint) -> Option<Fault> {
        self.calls.record(endpoint);
        self.faults.take(endpoint)
    }

    /// Opens an account, or replaces its password if it exists: a test helper that should not
    /// care whether an earlier step already made the account. True if the account is new.
    pub(crate) fn add_account(&mut self, email: &str, password: &str) -> bool {
        if self.accounts.create(email, password).is_ok() {
            return true;
        }
        self.accounts.set_password(email, password);
        false
    }

    /// `POST /users/signup`
    pub(crate) fn signup(&mut self, body: &[u8]) -> Answer {
        let credentials = match credentials(body) {
            Ok(credentials) => credentials,
            Err(answer) => return answer,
        };
        if !plausible_email(&credentials.email) {
            return Answer::detail(StatusCode::UNPROCESSABLE_ENTITY, "Invalid email format");
        }

        match self
            .accounts
            .create(&credentials.email, &credentials.password)
        {
            Ok(()) => Answer::ok(json!({"message": "User registered successfully"})),
            Err(_) => Answer::detail(StatusCode::CONFLICT, "Email already registered"),
        }
    }

    /// `POST /users/login`
    pub(crate) fn login(&mut self, body: &[u8], now: SystemTime) -> Answer {
        let credentials = match credentials(body) {
            Ok(credentials) => credentials,
            Err(answer) => return answer,
        };
        let Some(account_id) = self
            .accounts
            .login(&credentials.email, &credentials.password)
        else {
            return Answer::detail(StatusCode::UNAUTHORIZED, "Invalid email or password");
        };

        let token = self.tokens.issue(account_id, &credentials.email, now);
        if self.refresh_tokens {
            Answer::ok(json!({"token": token, "refresh_token": random::alphanumeric(64)}))
        } else {
            Answer::ok(json!({ "token": token }))
        }
    }

    /// `POST /users/generate_key`
    pub(crate) fn generate_key(&mut self, authorization: Option<&str>, now: SystemTime) -> Answer {
        let Some(account_id) = authorization.and_then(|t| self.tokens.account_of(t, now)) else {
            return not_authenticated();
        };

        let account_id = account_id.to_owned();
        match self.accounts.rotate_key(&account_id) {
            Some(key) => Answer::ok(json!({ "apiKey": key })),
            None => not_authenticated(),
        }
    }

    /// `GET /users/key`
    pub(crate) fn view_key(&self, authorization: Option<&str>, now: SystemTime) -> Answer {
        let Some(account_id) = authorization.and_then(|t| self.tokens.account_of(t, now)) else {
            return not_authenticated();
        };

        match self.accounts.key_of(account_id) {
            Some(Some(key)) => Answer::ok(json!({ "apiKey": key })),
            Some(None) => Answer::detail(StatusCode::NOT_FOUND, "API key not found"),
            None => not_authenticated(),
        }
    }

    /// `GET /wcs` and `GET /wms`: open to whoever shows a current key, in the `x-api-key`
    /// header or the `api-key` URL parameter; either one being current is enough.
    pub(crate) fn data(&self, service: &str, keys: [Option<&str>; 2]) -> Answer {
        let owner = keys
            .into_iter()
            .flatten()
            .find_map(|key| self.accounts.owner_of_key(key));
        match owner {
            Some(account_id) => Answer::ok(json!({"service": service, "account": account_id})),
            None => Answer::detail(StatusCode::UNAUTHORIZED, "Invalid API key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const ALICE: &[u8] = br#"{"email": "alice@example.com", "password": "pw"}"#;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn token(answer: &Answer) -> &str {
        answer.body["token"]
            .as_str()
            .expect("login answers a token")
    }

    #[test]
    fn signup_then_login() {
        let mut fake = Terrakio::default();
        assert_eq!(fake.signup(ALICE).status, StatusCode::OK);
        assert_eq!(fake.signup(ALICE).status, StatusCode::CONFLICT);

        let answer = fake.login(ALICE, at(1000));
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.body.get("refresh_token").is_none());
        token(&answer);
    }

    #[test]
    fn signup_refuses_an_email_without_at_and_a_body_without_fields() {
        let mut fake = Terrakio::default();
        let bad = br#"{"email": "alice.example.com", "password": "pw"}"#;
        assert_eq!(fake.signup(bad).status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(fake.signup(b"{}").status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(fake.signup(b"").status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn newer_login_adds_a_refresh_token() {
        let mut fake = Terrakio {
            refresh_tokens: true,
            ..Terrakio::default()
        };
        fake.signup(ALICE);
        assert!(fake.login(ALICE, at(1000)).body["refresh_token"].is_string());
    }

    #[test]
    fn key_lifecycle() {
        let mut fake = Terrakio::default();
        fake.signup(ALICE);
        let login = fake.login(ALICE, at(1000));
        let token = Some(token(&login));

        assert_eq!(fake.view_key(token, at(1000)).status, StatusCode::NOT_FOUND);

        let first = fake.generate_key(token, at(1000)).body["apiKey"].clone();
        let second = fake.generate_key(token, at(1000)).body["apiKey"].clone();
        assert_ne!(first, second);
        assert_eq!(fake.view_key(token, at(1000)).body["apiKey"], second);

        let data = |key: &Value| fake.data("wcs", [key.as_str(), None]).status;
        assert_eq!(data(&first), StatusCode::UNAUTHORIZED);
        assert_eq!(data(&second), StatusCode::OK);
    }

    #[test]
    fn expired_token_is_not_authenticated() {
        let mut fake = Terrakio::default();
        fake.signup(ALICE);
        let login = fake.login(ALICE, at(1000));
        let token = Some(token(&login));

        let expired = fake.generate_key(token, at(1000 + 3600));
        assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
        assert_eq!(expired.body, json!({"detail": "Not authenticated"}));
        assert_eq!(
            fake.view_key(None, at(1000)).status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn data_takes_the_key_from_either_place() {
        let mut fake = Terrakio::default();
        fake.signup(ALICE);
        let login = fake.login(ALICE, at(1000));
        let key = fake.generate_key(Some(token(&login)), at(1000)).body["apiKey"].clone();
        let key = key.as_str();

        assert_eq!(fake.data("wms", [key, None]).status, StatusCode::OK);
        assert_eq!(fake.data("wms", [None, key]).status, StatusCode::OK);
        assert_eq!(
            fake.data("wms", [None, None]).status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            fake.data("wms", [Some("tk_nope"), None]).status,
            StatusCode::UNAUTHORIZED
        );
    }
}
