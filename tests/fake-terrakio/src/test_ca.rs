//! A certificate authority made up on the spot, so HTTPS can be tested without a real one.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::random;

/// A throwaway certificate authority and a server certificate it signed for 127.0.0.1 and
/// localhost.
///
/// Every one has fresh keys, so no two tests trust each other's server by accident, and a
/// client that has not been given this CA's certificate refuses the server. The CA's key is
/// dropped once the server certificate is signed: nothing else will ever be signed by it.
///
/// The certificates keep rcgen's validity of 1975 to 4096: they live as long as a test or a
/// demo, and a wide window means a skewed clock in a container never makes them "not yet
/// valid".
#[derive(Clone)]
pub struct TestCa {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
}

impl TestCa {
    /// Makes a new CA and server certificate, with new keys.
    pub fn new() -> TestCa {
        // ECDSA P-256 keys and signatures: fast to make, and every TLS client takes them.
        let ca_key = KeyPair::generate().expect("ring generates a P-256 key");
        let mut ca = CertificateParams::default();
        // A name of its own: clients look the issuer up by name, so with a shared name a
        // server of another TestCa would fail as "bad signature" instead of "unknown issuer".
        let name = format!("fake-terrakio test CA {}", random::alphanumeric(12));
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca
            .self_signed(&ca_key)
            .expect("the CA's parameters are valid");
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().expect("ring generates a P-256 key");
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut server = CertificateParams::new(names).expect("both names are valid SANs");
        server
            .distinguished_name
            .push(DnType::CommonName, "fake-terrakio");
        server.use_authority_key_identifier_extension = true;
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .expect("the server's parameters are valid");

        TestCa {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    /// The CA's certificate in PEM: what a user puts in a Secret as `ca.crt` for clients to
    /// trust.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The server's certificate in PEM, for [`crate::FakeTerrakio::start_tls`].
    pub fn server_cert_pem(&self) -> String {
        self.server_cert_pem.clone()
    }

    /// The server's private key in PKCS#8 PEM, for [`crate::FakeTerrakio::start_tls`].
    pub fn server_key_pem(&self) -> String {
        self.server_key_pem.clone()
    }
}

impl Default for TestCa {
    fn default() -> TestCa {
        TestCa::new()
    }
}

impl fmt::Debug for TestCa {
    // The certificates are public; the key is left out, as keys are everywhere in the fake.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_pem", &self.ca_pem)
            .field("server_cert_pem", &self.server_cert_pem)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, Error, RootCertStore};

    use super::*;

    /// Checks the server certificate of `ca` for `name` as a client trusting `trusted` would.
    fn verify(trusted: &TestCa, ca: &TestCa, name: &str) -> Result<(), Error> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(trusted.ca_pem().as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();

        let leaf = CertificateDer::from_pem_slice(ca.server_cert_pem().as_bytes()).unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn the_server_certificate_is_good_for_loopback_under_its_own_ca() {
        let ca = TestCa::new();
        verify(&ca, &ca, "127.0.0.1").unwrap();
        verify(&ca, &ca, "localhost").unwrap();

        let other_name = verify(&ca, &ca, "example.com").unwrap_err();
        assert!(
            matches!(
                other_name,
                Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{other_name:?}"
        );
    }

    #[test]
    fn each_ca_is_new_and_trusts_only_its_own_server() {
        let (one, two) = (TestCa::new(), TestCa::new());
        assert_ne!(one.ca_pem(), two.ca_pem());
        assert_ne!(one.server_key_pem(), two.server_key_pem());

        let error = verify(&one, &two, "127.0.0.1").unwrap_err();
        assert_eq!(
            error,
            Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn pem_has_the_labels_that_users_and_tools_expect() {
        let ca = TestCa::new();
        assert!(ca.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            ca.server_cert_pem()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(
            ca.server_key_pem()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }
}
