//! The fake seen from outside: over HTTP, as the operator and the demo see it.
//!
//! One test binary with a module per concern, so the workspace links it once.

mod account_api;
mod binary;
mod control;
mod faults;
mod tls;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fake_terrakio::FakeTerrakio;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub const EMAIL: &str = "alice@example.com";
pub const PASSWORD: &str = "correct horse";

/// An HTTP client for one fake, with the few calls the tests repeat.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(base: String) -> Client {
        Client::with_timeout(base, Duration::from_secs(30))
    }

    /// A client that gives up after `timeout`, to play the caller whose answer got lost.
    pub fn with_timeout(base: String, timeout: Duration) -> Client {
        let http = builder().timeout(timeout).build().unwrap();
        Client { http, base }
    }

    /// A client that trusts the CA certificate `ca_pem` and nothing else, as the operator
    /// does with a private CA bundle.
    pub fn trusting(base: String, ca_pem: &str) -> Client {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
        let http = builder()
            .timeout(Duration::from_secs(30))
            .tls_certs_only([ca])
            .build()
            .unwrap();
        Client { http, base }
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        let url = format!("{}{path}", self.base);
        self.http.post(url).json(&body).send().await.unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.try_login(email, password).await.unwrap()
    }

    /// Login that may fail to get any answer, for when the fake is meant to be gone.
    pub async fn try_login(&self, email: &str, password: &str) -> reqwest::Result<Response> {
        let url = format!("{}/users/login", self.base);
        let body = json!({"email": email, "password": password});
        self.http.post(url).json(&body).send().await
    }

    /// Logs in and returns the token, failing the test if login fails.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let answer = self.login(email, password).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let body: Value = answer.json().await.unwrap();
        body["token"]
            .as_str()
            .expect("login answers a token")
            .to_owned()
    }

    pub async fn generate(&self, token: Option<&str>) -> reqwest::Result<Response> {
        let mut request = self.http.post(format!("{}/users/generate_key", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        request.send().await
    }

    pub async fn view(&self, token: Option<&str>) -> Response {
        let mut request = self.http.get(format!("{}/users/key", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        request.send().await.unwrap()
    }

    /// Generates a key and returns it, failing the test if that fails.
    pub async fn new_key(&self, token: &str) -> String {
        let answer = self.generate(Some(token)).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        key_of(answer).await
    }

    /// `GET /{service}` with the key in the `x-api-key` header.
    pub async fn data_by_header(&self, service: &str, key: &str) -> StatusCode {
        let url = format!("{}/{service}", self.base);
        self.http
            .get(url)
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `GET /{service}` with the key as the `api-key` URL parameter (keys need no escaping).
    pub async fn data_by_query(&self, service: &str, key: &str) -> StatusCode {
        let url = format!(
            "{}/{service}?request=GetCapabilities&api-key={key}",
            self.base
        );
        self.http.get(url).send().await.unwrap().status()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        answer.json().await.unwrap()
    }
}

/// A client builder with the settings every test wants; by default it trusts the system's
/// roots, which know nothing of a test CA.
fn builder() -> reqwest::ClientBuilder {
    // reqwest comes with TLS but without a crypto provider, as in the operator, and insists on
    // one being installed even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // No proxy: a proxy set in the environment must not stand between a test and loopback.
    reqwest::Client::builder().no_proxy()
}

/// A fresh fake with Alice's account, and a client for it.
pub async fn fake_with_alice() -> (FakeTerrakio, Client) {
    let fake = FakeTerrakio::start().await.unwrap();
    fake.add_account(EMAIL, PASSWORD);
    let client = Client::new(fake.url());
    (fake, client)
}

pub async fn key_of(answer: Response) -> String {
    let body: Value = answer.json().await.unwrap();
    body["apiKey"].as_str().expect("an apiKey").to_owned()
}

pub async fn detail_of(answer: Response) -> Value {
    let body: Value = answer.json().await.unwrap();
    body["detail"].clone()
}

/// The claims of a JWT-shaped token, failing the test if it is not one.
pub fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "three dot-separated parts");
    let payload = URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("unpadded base64url");
    serde_json::from_slice(&payload).expect("JSON claims")
}

pub fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}
