//! Unpredictable strings for account ids, keys and token signatures.
//!
//! A test that passes because a key happened to be guessable, or because two accounts got the
//! same id, proves nothing; so everything the fake hands out comes from the thread-local CSPRNG
//! rather than from a counter.

use rand::RngExt;
use rand::distr::Alphanumeric;

/// `len` random ASCII letters and digits.
pub(crate) fn alphanumeric(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect()
}

/// `N` random bytes.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill(&mut out[..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphanumeric_has_the_asked_length_and_alphabet() {
        let s = alphanumeric(40);
        assert_eq!(s.len(), 40);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn two_draws_differ() {
        assert_ne!(alphanumeric(40), alphanumeric(40));
        assert_ne!(bytes::<32>(), bytes::<32>());
    }
}
