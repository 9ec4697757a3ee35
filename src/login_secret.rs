//! The login Secret: the account's email and password, read when needed and never cached
//! beyond the reconcile that reads it.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::credential::{CaBundleSecretRef, LoginSecretRef};
use crate::error::Error;
use crate::sensitive::Password;

pub struct LoginSecret {
    pub email: String,
    pub password: Password,
    /// Tells a changed Secret from the one last used.
    pub resource_version: Option<String>,
}

pub async fn read(secrets: &Api<Secret>, reference: &LoginSecretRef) -> Result<LoginSecret, Error> {
    let found = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|source| Error::Kubernetes {
            step: "reading the login Secret",
            source,
        })?;
    let secret = found.ok_or_else(|| Error::LoginSecretNotFound {
        name: reference.name.clone(),
    })?;
    let (email, password) =
        parse(&secret, reference).map_err(|problem| Error::LoginSecretInvalid {
            name: reference.name.clone(),
            problem,
        })?;
    Ok(LoginSecret {
        email,
        password,
        resource_version: secret.metadata.resource_version,
    })
}

/// The PEM bundle of `spec.caBundleSecretRef`.
pub async fn read_ca_bundle(
    secrets: &Api<Secret>,
    reference: &CaBundleSecretRef,
) -> Result<Vec<u8>, Error> {
    let found = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|source| Error::Kubernetes {
            step: "reading the CA bundle Secret",
            source,
        })?;
    let invalid = |problem: String| {
        Error::InvalidSpec(format!(
            "spec.caBundleSecretRef: Secret {:?} {problem}",
            reference.name
        ))
    };
    let secret = found.ok_or_else(|| invalid("not found in this namespace; create it".into()))?;
    let bytes = secret
        .data
        .and_then(|mut data| data.remove(&reference.key))
        .ok_or_else(|| invalid(format!("has no data key {:?}", reference.key)))?;
    Ok(bytes.0)
}

/// Extracts email and password; the error says which data key is wrong and how. The email is
/// trimmed (a trailing newline from `echo` is a common slip); the password is taken as it is.
pub fn parse(secret: &Secret, reference: &LoginSecretRef) -> Result<(String, Password), String> {
    let value = |key: &str| -> Result<String, String> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .ok_or_else(|| {
                format!(
                    "has no data key {key:?}; add it or set the key's name in spec.loginSecretRef"
                )
            })?;
        let text = String::from_utf8(bytes.0.clone())
            .map_err(|_| format!("data key {key:?} is not UTF-8 text"))?;
        if text.trim().is_empty() {
            return Err(format!("data key {key:?} is empty"));
        }
        Ok(text)
    };
    let email = value(&reference.email_key)?.trim().to_string();
    let password = Password::new(value(&reference.password_key)?);
    Ok((email, password))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    fn secret(entries: &[(&str, &[u8])]) -> Secret {
        let data = entries
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
            .collect();
        Secret {
            data: Some(data),
            ..Secret::default()
        }
    }

    #[test]
    fn parse_table() {
        let reference = LoginSecretRef {
            name: "login".into(),
            email_key: "email".into(),
            password_key: "password".into(),
        };
        let cases: [(&str, Secret, Result<&str, &str>); 6] = [
            (
                "good",
                secret(&[("email", b"a@example.com"), ("password", b"pw")]),
                Ok("a@example.com"),
            ),
            (
                "email trimmed",
                secret(&[("email", b"a@example.com\n"), ("password", b"pw")]),
                Ok("a@example.com"),
            ),
            (
                "no email",
                secret(&[("password", b"pw")]),
                Err(r#"has no data key "email""#),
            ),
            (
                "no password",
                secret(&[("email", b"a@example.com")]),
                Err(r#"has no data key "password""#),
            ),
            (
                "binary password",
                secret(&[("email", b"a@b"), ("password", &[0xff, 0xfe])]),
                Err("is not UTF-8"),
            ),
            (
                "empty email",
                secret(&[("email", b" \n"), ("password", b"pw")]),
                Err(r#"data key "email" is empty"#),
            ),
        ];
        for (name, secret, expected) in cases {
            match (parse(&secret, &reference), expected) {
                (Ok((email, password)), Ok(want)) => {
                    assert_eq!(email, want, "{name}");
                    assert_eq!(password.expose(), "pw", "{name}");
                }
                (Err(problem), Err(want)) => assert!(problem.contains(want), "{name}: {problem}"),
                (got, want) => panic!("{name}: got {:?}, want {want:?}", got.map(|(e, _)| e)),
            }
        }
        let no_data = Secret::default();
        assert!(parse(&no_data, &reference).is_err());
    }
}
