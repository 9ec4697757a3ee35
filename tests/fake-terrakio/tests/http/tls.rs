//! HTTPS with a throwaway CA: trusted by a client given the CA, refused by any other.

use std::error::Error as _;

use fake_terrakio::{Endpoint, FakeTerrakio, TestCa};

use super::*;

/// A fake serving the certificate of `ca`, with Alice's account.
async fn tls_fake_with_alice(ca: &TestCa) -> FakeTerrakio {
    let fake = FakeTerrakio::start_tls(&ca.server_cert_pem(), &ca.server_key_pem())
        .await
        .unwrap();
    fake.add_account(EMAIL, PASSWORD);
    fake
}

/// The rustls error somewhere in the causes of `error`, if any.
///
/// Looked for by hand because an `io::Error` that wraps another error hands out that error's
/// source, not the error itself, so following `source()` alone skips it.
fn tls_error_in(error: &reqwest::Error) -> Option<rustls::Error> {
    let mut cause = error.source();
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) if io.get_ref().is_some() => io.get_ref().map(|inner| inner as _),
            _ => current.source(),
        };
    }
    None
}

#[tokio::test]
async fn a_client_trusting_the_ca_logs_in_over_https() {
    let ca = TestCa::new();
    let fake = tls_fake_with_alice(&ca).await;
    let url = fake.url();
    assert_eq!(url, format!("https://{}", fake.addr()));

    let client = Client::trusting(url, &ca.ca_pem());
    client.token(EMAIL, PASSWORD).await;

    // The certificate names localhost too, for users who write that instead of the address.
    let by_name = format!("https://localhost:{}", fake.addr().port());
    Client::trusting(by_name, &ca.ca_pem())
        .token(EMAIL, PASSWORD)
        .await;

    assert_eq!(fake.calls(Endpoint::Login), 2);
}

#[tokio::test]
async fn a_client_without_the_ca_is_refused_at_the_handshake() {
    let ca = TestCa::new();
    let fake = tls_fake_with_alice(&ca).await;

    let error = Client::new(fake.url())
        .try_login(EMAIL, PASSWORD)
        .await
        .expect_err("a client with only the system's roots must not trust a test CA");
    assert!(error.is_connect(), "{error:?}");
    let tls = tls_error_in(&error);
    assert!(
        matches!(tls, Some(rustls::Error::InvalidCertificate(_))),
        "not a certificate error: {error:?}"
    );

    let stranger = TestCa::new();
    let error = Client::trusting(fake.url(), &stranger.ca_pem())
        .try_login(EMAIL, PASSWORD)
        .await
        .expect_err("another test CA must not vouch for this server");
    assert_eq!(
        tls_error_in(&error),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )),
        "{error:?}"
    );

    // Refused before any request was sent, and the fake goes on serving those who trust it.
    assert_eq!(fake.calls(Endpoint::Login), 0);
    Client::trusting(fake.url(), &ca.ca_pem())
        .token(EMAIL, PASSWORD)
        .await;
}

#[tokio::test]
async fn plain_http_is_not_answered_on_the_tls_port() {
    let ca = TestCa::new();
    let fake = tls_fake_with_alice(&ca).await;

    let plain = format!("http://{}", fake.addr());
    assert!(Client::new(plain).try_login(EMAIL, PASSWORD).await.is_err());
    assert_eq!(fake.calls(Endpoint::Login), 0);
}

#[tokio::test]
async fn start_tls_refuses_a_key_that_is_not_the_certificates() {
    let (one, two) = (TestCa::new(), TestCa::new());

    let mismatched = FakeTerrakio::start_tls(&one.server_cert_pem(), &two.server_key_pem()).await;
    let error = mismatched.expect_err("a key of another certificate");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");

    let no_cert = FakeTerrakio::start_tls("", &one.server_key_pem()).await;
    assert_eq!(
        no_cert.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let no_key = FakeTerrakio::start_tls(&one.server_cert_pem(), &one.ca_pem()).await;
    assert_eq!(no_key.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}
