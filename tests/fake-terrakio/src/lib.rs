//! A fake of the Terrakio account API, for the operator's tests and demo.
//!
//! It serves the documented legacy endpoints (signup, login, generate key, view key) and two
//! data endpoints (`/wcs`, `/wms`) that tell whether a key is current, with the same shapes,
//! statuses and rules as the real service: one current key per account, tokens that die at
//! their `exp` claim, `{"detail": ...}` errors. On top it lets a test count calls, inject
//! faults and reach into the accounts, either in process through [`FakeTerrakio`] or from
//! another process through the `/_fake/` control API.
//!
//! It speaks plain HTTP, or HTTPS with a given certificate; [`TestCa`] makes a throwaway CA
//! and a certificate for 127.0.0.1 and localhost, for tests of clients that must trust a
//! private CA.
//!
//! # Control API
//!
//! JSON in and out; none of these calls is counted.
//!
//! | call | does |
//! | --- | --- |
//! | `GET /_fake/calls` | count per endpoint: `{"signup": N, "login": N, ..., "data": N}` |
//! | `DELETE /_fake/calls` | sets the counts to zero |
//! | `POST /_fake/faults` | queues a [`Fault`] given as JSON; 422 if it has an unknown field |
//! | `DELETE /_fake/faults` | forgets the faults not yet used up |
//! | `POST /_fake/accounts` | `{"email", "password"}`: 201 if new, 200 if the password changed |
//! | `GET /_fake/accounts` | `[{"email", "id", "api_key"}]`, `api_key` null before a generate |
//! | `POST /_fake/token-lifetime` | `{"seconds": N}`: lifetime of tokens issued from now on |

mod accounts;
mod api;
mod calls;
mod control;
mod faults;
mod random;
mod server;
mod service;
mod test_ca;
mod tokens;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use calls::Endpoint;
pub use faults::Fault;
pub use test_ca::TestCa;

use server::Transport;
use service::Shared;

/// A running fake server, and the test's hand on its state.
///
/// Clones share one server; it stops (listener closed, open connections cut) when the last
/// clone is dropped. Must be started inside a Tokio runtime.
#[derive(Clone)]
pub struct FakeTerrakio {
    shared: Shared,
    addr: SocketAddr,
    tls: bool,
    _server: Arc<ServerTask>,
}

/// Aborts the server task when the last handle goes.
struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl fmt::Debug for FakeTerrakio {
    // Only the address: the state is full of passwords, tokens and keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeTerrakio")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl FakeTerrakio {
    /// Starts a fake on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<FakeTerrakio> {
        FakeTerrakio::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a fake on `addr`; port 0 picks a free port, which [`FakeTerrakio::url`] tells.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<FakeTerrakio> {
        FakeTerrakio::start_with(addr, Transport::Plain).await
    }

    /// Like [`FakeTerrakio::start`], but over TLS with the given certificate chain (leaf
    /// first) and private key, both PEM; [`FakeTerrakio::url`] then starts with `https://`.
    ///
    /// Fails with [`std::io::ErrorKind::InvalidInput`] if the PEM does not parse or the key
    /// does not belong to the certificate.
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> std::io::Result<FakeTerrakio> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        FakeTerrakio::start_tls_on(addr, cert_pem, key_pem).await
    }

    /// Like [`FakeTerrakio::start_tls`], on `addr`.
    pub async fn start_tls_on(
        addr: SocketAddr,
        cert_pem: &str,
        key_pem: &str,
    ) -> std::io::Result<FakeTerrakio> {
        let transport = Transport::tls(cert_pem, key_pem)?;
        FakeTerrakio::start_with(addr, transport).await
    }

    async fn start_with(addr: SocketAddr, transport: Transport) -> std::io::Result<FakeTerrakio> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;

        let tls = matches!(transport, Transport::Tls(_));
        let shared = Shared::default();
        let app = server::app(shared.clone());
        let task = tokio::spawn(server::serve(listener, app, transport));
        Ok(FakeTerrakio {
            shared,
            addr,
            tls,
            _server: Arc::new(ServerTask(task)),
        })
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT` (`https://` under TLS), without a trailing
    /// slash.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Opens an account as signup would, without counting a call; if the email already has
    /// an account its password is replaced, so a test need not care what ran before.
    pub fn add_account(&self, email: &str, password: &str) {
        self.shared.lock().add_account(email, password);
    }

    /// Changes an account's password. Tokens already issued stay valid until their `exp`.
    ///
    /// Panics if there is no such account: a misspelt email should fail the test here.
    pub fn set_password(&self, email: &str, password: &str) {
        let changed = self.shared.lock().accounts.set_password(email, password);
        assert!(changed, "fake-terrakio: no account {email:?}");
    }

    /// The account id that the account's tokens carry as `sub`.
    pub fn account_id(&self, email: &str) -> Option<String> {
        self.shared.lock().accounts.id_of(email).map(str::to_owned)
    }

    /// Rotates the account's key as generate key would, without counting a call; the old key
    /// stops working at once. Returns the new key.
    ///
    /// Panics if there is no such account.
    pub fn generate_key_for(&self, email: &str) -> String {
        let mut fake = self.shared.lock();
        let id = fake.accounts.id_of(email).map(str::to_owned);
        let id = id.unwrap_or_else(|| panic!("fake-terrakio: no account {email:?}"));
        fake.accounts
            .rotate_key(&id)
            .expect("the account was just found")
    }

    /// The account's current key; None if it has none or there is no such account.
    pub fn current_key(&self, email: &str) -> Option<String> {
        self.shared
            .lock()
            .accounts
            .key_of_email(email)
            .map(str::to_owned)
    }

    /// Lifetime of the tokens issued from now on (default an hour). Tokens already issued keep
    /// their `exp`, which is rounded up to whole seconds.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().tokens.set_lifetime(lifetime);
    }

    /// Whether login answers like newer servers, with a `refresh_token` beside the token
    /// (default no). The fake never asks for the refresh token back.
    pub fn set_refresh_tokens(&self, enabled: bool) {
        self.shared.lock().refresh_tokens = enabled;
    }

    /// How many calls of `endpoint` arrived since start or the last reset, faulted ones
    /// included.
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.shared.lock().calls.get(endpoint)
    }

    /// Sets every call count back to zero.
    pub fn reset_calls(&self) {
        self.shared.lock().calls.reset();
    }

    /// Queues a fault behind those already queued; each matching call uses up the oldest.
    ///
    /// Panics if the fault cannot be sent over HTTP (a status outside 100..=999, a header
    /// value with control characters).
    pub fn inject(&self, fault: Fault) {
        if let Err(problem) = fault.check() {
            panic!("fake-terrakio: bad fault: {problem}");
        }
        self.shared.lock().faults.push(fault);
    }

    /// Forgets every fault not yet used up.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Every token ever handed out by login, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().tokens.issued().to_vec()
    }

    /// Every key ever generated (through the API or [`FakeTerrakio::generate_key_for`]),
    /// oldest first.
    pub fn issued_keys(&self) -> Vec<String> {
        self.shared.lock().accounts.issued_keys().to_vec()
    }

    /// Whether the data endpoints would accept this key now, i.e. it is some account's
    /// current key.
    pub fn data_accepts(&self, key: &str) -> bool {
        self.shared.lock().accounts.owner_of_key(key).is_some()
    }
}
