//! Values that must never be shown: the account password, the login token and the API key.
//!
//! Each is a distinct type so that a password can never be passed where a key is expected,
//! and each wraps a [`SecretString`], whose `Debug` prints a placeholder and whose memory is
//! zeroed on drop. Reading the value requires an explicit `expose()`, which makes every place
//! that handles a secret easy to find.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

macro_rules! sensitive_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret itself, for the one place that must send or store it.
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }

            pub fn is_empty(&self) -> bool {
                self.expose().is_empty()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.expose() == other.expose()
            }
        }

        impl Eq for $name {}
    };
}

sensitive_string!(
    /// The password of a Terrakio account, read from the login Secret.
    Password
);
sensitive_string!(
    /// A login token (a JWT) handed out by `POST /users/login`.
    Token
);
sensitive_string!(
    /// A Terrakio API key, as written to the target Secret.
    ApiKey
);

impl ApiKey {
    /// A public name for the key: `sha256:` and the first 16 hex digits of its SHA-256.
    ///
    /// It tells two keys apart in status, Events and logs without revealing either.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(self.expose().as_bytes())
    }
}

/// The fingerprint of raw key bytes, as found in a Secret's data.
pub fn fingerprint_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let cases = [
            format!("{:?}", Password::new("hunter2-password")),
            format!("{:?}", Token::new("eyJhbGciOi.token-value")),
            format!("{:?}", ApiKey::new("tk_key_value_123")),
        ];
        for shown in cases {
            assert!(shown.contains("[redacted]"), "{shown}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("token-value"),
                "{shown}"
            );
            assert!(!shown.contains("key_value"), "{shown}");
        }
    }

    #[test]
    fn fingerprint_is_sha256_prefix_of_the_key() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(ApiKey::new("abc").fingerprint(), "sha256:ba7816bf8f01cfea");
        assert_eq!(fingerprint_of(b"abc"), "sha256:ba7816bf8f01cfea");
    }
}
