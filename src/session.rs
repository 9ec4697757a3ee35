//! Login sessions, shared by every credential that logs in as the same account.
//!
//! A session is keyed by the endpoint, the email *and* the password (as a salted digest that
//! exists only in memory), so a credential can ride on a session only by knowing the password
//! that opened it. Tokens live in memory only, are renewed shortly before their `exp`, and are
//! dropped and replaced once when Terrakio answers "Not authenticated".

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::sensitive::{Password, Token};
use crate::terrakio::{TerrakioClient, TerrakioError};

/// Renew a token this long before `exp` at most; short-lived tokens renew after 80% of their
/// life instead, so a token of a few seconds is still used.
const MAX_RENEW_MARGIN: Duration = Duration::from_secs(60);

/// Who logs in: the endpoint and the account's email and password.
#[derive(Clone, Debug)]
pub struct Login {
    pub endpoint: Url,
    pub email: String,
    pub password: Password,
}

/// The claims a client may read from a token. The signature is the server's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Reads `exp` from a JWT's payload. `None` when the token is not a readable JWT, which the
/// caller must treat as already expired.
pub fn read_claims(token: &Token) -> Option<Claims> {
    #[derive(Deserialize)]
    struct Payload {
        exp: f64,
    }
    let payload = token.expose().split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let parsed: Payload = serde_json::from_slice(&bytes).ok()?;
    (parsed.exp.is_finite() && parsed.exp > 0.0).then_some(Claims {
        exp: parsed.exp as u64,
    })
}

/// When a token obtained at `obtained_at` (Unix seconds) should be replaced, in Unix seconds.
/// `None` means "do not keep it": its claims could not be read.
pub fn renew_at(claims: Option<Claims>, obtained_at: u64) -> Option<u64> {
    let exp = claims?.exp;
    let lifetime = exp.saturating_sub(obtained_at);
    let margin = (lifetime / 5).min(MAX_RENEW_MARGIN.as_secs());
    Some(exp.saturating_sub(margin.max(1)))
}

struct CachedToken {
    token: Token,
    renew_at: u64,
}

#[derive(Default)]
struct Slot {
    token: Option<CachedToken>,
}

/// The in-memory session cache.
pub struct Sessions {
    salt: [u8; 32],
    slots: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            salt: rand::random(),
            slots: Mutex::default(),
        }
    }
}

impl Sessions {
    /// Runs `call` with a valid token for `login`, logging in first when no fresh token is
    /// cached. When Terrakio refuses the token, logs in once more and repeats the call once.
    pub async fn with_token<T, F, Fut>(
        &self,
        client: &TerrakioClient,
        login: &Login,
        call: F,
    ) -> Result<T, TerrakioError>
    where
        F: Fn(Token) -> Fut,
        Fut: Future<Output = Result<T, TerrakioError>>,
    {
        let slot = self.slot(login);
        let outcome = async {
            let token = self.token(&slot, client, login, None).await?;
            match call(token.clone()).await {
                Err(TerrakioError::NotAuthenticated { .. }) => {
                    tracing::debug!("token refused; logging in again");
                    let token = self.token(&slot, client, login, Some(&token)).await?;
                    call(token).await
                }
                other => other,
            }
        }
        .await;
        // A call carries only the token, but an answer may quote the password too.
        outcome.map_err(|err| err.redacted(login.password.expose()))
    }

    /// How many sessions are held; for tests and metrics.
    pub fn len(&self) -> usize {
        self.slots.lock().expect("session map lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, login: &Login) -> Arc<tokio::sync::Mutex<Slot>> {
        let key = self.key(login);
        let mut slots = self.slots.lock().expect("session map lock");
        // Forget sessions nobody is using whose token is stale, so old passwords do not linger.
        let now = unix_now();
        slots.retain(|_, slot| {
            Arc::strong_count(slot) > 1
                || slot
                    .try_lock()
                    .is_ok_and(|s| s.token.as_ref().is_some_and(|t| t.renew_at > now))
        });
        slots.entry(key).or_default().clone()
    }

    fn key(&self, login: &Login) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(self.salt);
        for part in [
            login.endpoint.as_str(),
            &login.email,
            login.password.expose(),
        ] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        digest.finalize().into()
    }

    /// A usable token: the cached one when fresh and not `refused`, else a new login. The slot
    /// lock makes concurrent callers of one account share a single login.
    async fn token(
        &self,
        slot: &tokio::sync::Mutex<Slot>,
        client: &TerrakioClient,
        login: &Login,
        refused: Option<&Token>,
    ) -> Result<Token, TerrakioError> {
        let mut slot = slot.lock().await;
        if let Some(cached) = &slot.token
            && cached.renew_at > unix_now()
            && refused != Some(&cached.token)
        {
            return Ok(cached.token.clone());
        }
        slot.token = None;

        let obtained_at = unix_now();
        let token = client
            .login(&login.endpoint, &login.email, &login.password)
            .await?;
        match renew_at(read_claims(&token), obtained_at) {
            Some(renew_at) => {
                tracing::debug!(
                    expires_in_s = renew_at.saturating_sub(obtained_at),
                    "logged in"
                );
                slot.token = Some(CachedToken {
                    token: token.clone(),
                    renew_at,
                });
            }
            None => tracing::debug!("logged in; token claims unreadable, not caching it"),
        }
        Ok(token)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> Token {
        let encode = |s: &str| URL_SAFE_NO_PAD.encode(s.as_bytes());
        Token::new(format!(
            "{}.{}.sig",
            encode(r#"{"alg":"RS256"}"#),
            encode(payload)
        ))
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        let cases = [
            (
                jwt(r#"{"exp": 1700000000, "sub": "u1"}"#),
                Some(Claims { exp: 1_700_000_000 }),
            ),
            (
                jwt(r#"{"exp": 1700000000.5}"#),
                Some(Claims { exp: 1_700_000_000 }),
            ),
            (jwt(r#"{"sub": "no-exp"}"#), None),
            (jwt(r#"{"exp": "soon"}"#), None),
            (jwt("not json"), None),
            (Token::new("opaque-token"), None),
            (Token::new("a.%%%.c"), None),
        ];
        for (token, expected) in cases {
            assert_eq!(read_claims(&token), expected, "{token:?}");
        }
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let cases = [
            // (exp, obtained_at, renew_at): an hour-long token renews a minute early.
            (Some(10_000 + 3600), 10_000, Some(10_000 + 3540)),
            // A 5 s token renews one second early, so it is still used.
            (Some(10_005), 10_000, Some(10_004)),
            // A 100 s token renews after 80 s.
            (Some(10_100), 10_000, Some(10_080)),
            // Already expired when obtained: renew at once.
            (Some(9_000), 10_000, Some(8_999)),
            // Unreadable claims: never cached.
            (None, 10_000, None),
        ];
        for (exp, obtained_at, expected) in cases {
            assert_eq!(
                renew_at(exp.map(|exp| Claims { exp }), obtained_at),
                expected
            );
        }
    }

    #[test]
    fn sessions_differ_by_password() {
        let sessions = Sessions::default();
        let endpoint = Url::parse("https://api.terrak.io").unwrap();
        let login = |password: &str| Login {
            endpoint: endpoint.clone(),
            email: "a@example.com".into(),
            password: Password::new(password),
        };
        assert_eq!(sessions.key(&login("one")), sessions.key(&login("one")));
        assert_ne!(sessions.key(&login("one")), sessions.key(&login("two")));
        // Length-prefixed parts: moving characters between email and password changes the key.
        let shifted = Login {
            email: "a@example.como".into(),
            password: Password::new("ne"),
            ..login("")
        };
        assert_ne!(sessions.key(&login("one")), sessions.key(&shifted));
    }
}
