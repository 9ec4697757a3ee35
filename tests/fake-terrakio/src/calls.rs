//! The endpoints of the account API, and how often each was called.
//!
//! Tests read the counts to prove what the operator did *not* do: no second generate after a
//! doubtful one, no login while its token is still fresh. So a call counts the moment it
//! arrives, whatever its answer turns out to be, and the control API never adds to the counts.

use serde::{Deserialize, Serialize};

/// An endpoint of the account API, as tests and injected faults name it.
///
/// `/wcs` and `/wms` are both [`Endpoint::Data`]: the operator never calls them itself, they
/// only prove that a delivered key really opens the data services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /users/signup`
    Signup,
    /// `POST /users/login`
    Login,
    /// `POST /users/generate_key`
    GenerateKey,
    /// `GET /users/key`
    ViewKey,
    /// `GET /wcs` and `GET /wms`
    Data,
}

impl Endpoint {
    /// Every endpoint, in the order the control API lists them.
    pub const ALL: [Endpoint; 5] = [
        Endpoint::Signup,
        Endpoint::Login,
        Endpoint::GenerateKey,
        Endpoint::ViewKey,
        Endpoint::Data,
    ];

    /// The endpoint's name as it appears in JSON (`"generate_key"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Signup => "signup",
            Endpoint::Login => "login",
            Endpoint::GenerateKey => "generate_key",
            Endpoint::ViewKey => "view_key",
            Endpoint::Data => "data",
        }
    }
}

/// One counter per endpoint.
#[derive(Debug, Default)]
pub(crate) struct CallCounts {
    counts: [u64; Endpoint::ALL.len()],
}

impl CallCounts {
    pub(crate) fn record(&mut self, endpoint: Endpoint) {
        self.counts[endpoint as usize] += 1;
    }

    pub(crate) fn get(&self, endpoint: Endpoint) -> u64 {
        self.counts[endpoint as usize]
    }

    pub(crate) fn reset(&mut self) {
        self.counts = Default::default();
    }

    /// Every endpoint with its count, zeros included, so a script can read any key it names.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let map = Endpoint::ALL
            .iter()
            .map(|&endpoint| (endpoint.as_str().to_owned(), self.get(endpoint).into()))
            .collect::<serde_json::Map<_, _>>();
        serde_json::Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for endpoint in Endpoint::ALL {
            let json = serde_json::to_value(endpoint).unwrap();
            assert_eq!(json, endpoint.as_str());
            assert_eq!(serde_json::from_value::<Endpoint>(json).unwrap(), endpoint);
        }
    }

    #[test]
    fn counts_are_per_endpoint_and_reset_to_zero() {
        let mut calls = CallCounts::default();
        calls.record(Endpoint::Login);
        calls.record(Endpoint::Login);
        calls.record(Endpoint::Data);

        assert_eq!(calls.get(Endpoint::Login), 2);
        assert_eq!(calls.get(Endpoint::Data), 1);
        assert_eq!(calls.get(Endpoint::GenerateKey), 0);
        assert_eq!(
            calls.to_json(),
            serde_json::json!({
                "signup": 0, "login": 2, "generate_key": 0, "view_key": 0, "data": 1
            })
        );

        calls.reset();
        assert!(Endpoint::ALL.iter().all(|&e| calls.get(e) == 0));
    }
}
