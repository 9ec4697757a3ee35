//! Login tokens: minted JWT-shaped, remembered, and refused from their `exp` on.
//!
//! The real service hands out identity-platform ID tokens whose claims a client reads to
//! decide when to log in again. The fake mints tokens of the same shape and, crucially, makes
//! the `exp` claim the exact truth: a token is accepted while the clock is before `exp` and
//! refused from `exp` on, so a client that renews on time never sees a refusal and one that
//! does not renew always does.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::random;

/// How long a token lives unless told otherwise; ID tokens of this kind live an hour.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Every token the fake ever handed out, and which account each belongs to.
#[derive(Debug)]
pub(crate) struct Tokens {
    lifetime: Duration,
    live: HashMap<String, Issued>,
    issued: Vec<String>,
}

#[derive(Debug)]
struct Issued {
    account_id: String,
    exp: u64,
}

impl Tokens {
    pub(crate) fn new(lifetime: Duration) -> Tokens {
        Tokens {
            lifetime,
            live: HashMap::new(),
            issued: Vec::new(),
        }
    }

    /// Changes the lifetime of tokens issued from now on; tokens already out keep their `exp`,
    /// as a client that read it is entitled to expect.
    pub(crate) fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }

    /// Mints a token for the account.
    ///
    /// `exp` is rounded *up* to whole seconds, so a token never lives less than the lifetime:
    /// with a one-second lifetime, rounding down could leave a token dead on arrival.
    pub(crate) fn issue(&mut self, account_id: &str, email: &str, now: SystemTime) -> String {
        let now = since_epoch(now);
        let iat = now.as_secs();
        let exp = ceil_secs(now + self.lifetime);

        let header = json!({"alg": "RS256", "typ": "JWT"});
        let claims = json!({"sub": account_id, "email": email, "iat": iat, "exp": exp});
        // The signature is random bytes: clients only read the claims, and the fake recognises
        // its own tokens by looking them up rather than by verifying anything.
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(random::bytes::<32>()),
        );

        self.live.insert(
            token.clone(),
            Issued {
                account_id: account_id.to_owned(),
                exp,
            },
        );
        self.issued.push(token.clone());
        token
    }

    /// The account a token belongs to, if the token is one of ours and `now` is before its
    /// `exp`. Anything else (a `Bearer ` prefix included) is simply not a token we issued.
    pub(crate) fn account_of(&self, token: &str, now: SystemTime) -> Option<&str> {
        let issued = self.live.get(token)?;
        let alive = since_epoch(now) < Duration::from_secs(issued.exp);
        alive.then_some(issued.account_id.as_str())
    }

    /// Every token ever handed out, oldest first.
    pub(crate) fn issued(&self) -> &[String] {
        &self.issued
    }
}

fn since_epoch(now: SystemTime) -> Duration {
    // A clock before 1970 is not a case a test can meet; treating it as the epoch keeps the
    // arithmetic total.
    now.duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn ceil_secs(at: Duration) -> u64 {
    at.as_secs() + u64::from(at.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(token: &str) -> serde_json::Value {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "a JWT has three parts");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
    }

    fn at(secs: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    }

    #[test]
    fn claims_carry_sub_iat_and_exp() {
        let mut tokens = Tokens::new(Duration::from_secs(60));
        let token = tokens.issue("acct-1", "a@example.com", at(1000.0));

        let claims = claims(&token);
        assert_eq!(claims["sub"], "acct-1");
        assert_eq!(claims["iat"], 1000);
        assert_eq!(claims["exp"], 1060);
        assert!(!token.contains('='), "no padding");
    }

    #[test]
    fn refused_exactly_from_exp_on() {
        let mut tokens = Tokens::new(Duration::from_secs(60));
        let token = tokens.issue("acct-1", "a@example.com", at(1000.0));

        assert_eq!(tokens.account_of(&token, at(1059.999)), Some("acct-1"));
        assert_eq!(tokens.account_of(&token, at(1060.0)), None);
        assert_eq!(tokens.account_of(&token, at(5000.0)), None);
    }

    #[test]
    fn exp_rounds_up_so_a_short_lifetime_is_never_cut() {
        let mut tokens = Tokens::new(Duration::from_secs(1));
        let token = tokens.issue("acct-1", "a@example.com", at(1000.9));

        assert_eq!(claims(&token)["exp"], 1002);
        assert_eq!(tokens.account_of(&token, at(1001.9)), Some("acct-1"));
    }

    #[test]
    fn new_lifetime_applies_to_new_tokens_only() {
        let mut tokens = Tokens::new(Duration::from_secs(60));
        let old = tokens.issue("acct-1", "a@example.com", at(1000.0));
        tokens.set_lifetime(Duration::from_secs(5));
        let new = tokens.issue("acct-1", "a@example.com", at(1000.0));

        assert_eq!(claims(&old)["exp"], 1060);
        assert_eq!(claims(&new)["exp"], 1005);
    }

    #[test]
    fn unknown_and_prefixed_tokens_are_refused() {
        let mut tokens = Tokens::new(Duration::from_secs(60));
        let token = tokens.issue("acct-1", "a@example.com", at(1000.0));

        assert_eq!(
            tokens.account_of(&format!("Bearer {token}"), at(1000.0)),
            None
        );
        assert_eq!(tokens.account_of("", at(1000.0)), None);
        assert_eq!(tokens.issued(), [token]);
    }

    #[test]
    fn tokens_are_unpredictable() {
        let mut tokens = Tokens::new(Duration::from_secs(60));
        let one = tokens.issue("acct-1", "a@example.com", at(1000.0));
        let two = tokens.issue("acct-1", "a@example.com", at(1000.0));
        assert_ne!(one, two);
    }
}
