//! The target Secret: what it should look like, and how what is there compares.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::credential::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, TerrakioCredential, ValidSpec};
use crate::decision::TargetState;
use crate::sensitive::{ApiKey, fingerprint_of};

/// Annotation recording which key the Secret holds, so `kubectl get secret -o yaml` tells keys
/// apart without decoding them.
pub const FINGERPRINT_ANNOTATION: &str = "terrak.io/key-fingerprint";

/// The owner reference that makes the credential the Secret's controller: the garbage
/// collector deletes the Secret with the credential.
pub fn owner_reference(credential: &TerrakioCredential) -> Option<OwnerReference> {
    credential.controller_owner_ref(&())
}

/// Whose a Secret is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    Absent,
    /// Its controller owner reference names this credential (by uid, so a credential deleted
    /// and recreated under the same name starts afresh).
    Controlled,
    Foreign,
}

pub fn ownership(found: Option<&Secret>, credential: &TerrakioCredential) -> Ownership {
    let Some(secret) = found else {
        return Ownership::Absent;
    };
    let uid = credential.metadata.uid.as_deref();
    let controlled = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.controller == Some(true) && Some(owner.uid.as_str()) == uid);
    if controlled {
        Ownership::Controlled
    } else {
        Ownership::Foreign
    }
}

/// Whether another TerrakioCredential controls the Secret. `spec.target.overwrite` never takes
/// a Secret from another credential: two credentials would take it from each other forever.
pub fn controlled_by_another_credential(
    found: Option<&Secret>,
    credential: &TerrakioCredential,
) -> bool {
    let uid = credential.metadata.uid.as_deref();
    found.is_some_and(|secret| {
        secret
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|owner| {
                owner.controller == Some(true)
                    && owner.kind == "TerrakioCredential"
                    && Some(owner.uid.as_str()) != uid
            })
    })
}

/// Compares the Secret found under the target name with what `spec` wants.
pub fn observe(
    found: Option<&Secret>,
    credential: &TerrakioCredential,
    spec: &ValidSpec,
) -> TargetState {
    let secret = match (found, ownership(found, credential)) {
        (Some(secret), Ownership::Controlled) => secret,
        (_, Ownership::Absent) | (None, _) => return TargetState::Absent,
        (_, Ownership::Foreign) => return TargetState::Foreign,
    };

    let key_fingerprint = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&spec.target_key))
        .map(|value| fingerprint_of(&value.0));
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let metadata_current = desired_labels(spec)
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && spec
            .target_annotations
            .iter()
            .all(|(k, v)| annotations.get(k) == Some(v))
        && secret.type_.as_deref().unwrap_or("Opaque") == "Opaque";
    TargetState::Owned {
        key_fingerprint,
        metadata_current,
    }
}

/// The Secret as the operator applies it (server-side apply, so fields other managers own,
/// such as extra data keys, are kept).
pub fn desired(credential: &TerrakioCredential, spec: &ValidSpec, key: &ApiKey) -> Secret {
    let mut annotations = spec.target_annotations.clone();
    annotations.insert(FINGERPRINT_ANNOTATION.to_string(), key.fingerprint());
    Secret {
        metadata: ObjectMeta {
            name: Some(spec.target_name.clone()),
            namespace: credential.metadata.namespace.clone(),
            labels: Some(desired_labels(spec)),
            annotations: Some(annotations),
            owner_references: owner_reference(credential).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            spec.target_key.clone(),
            ByteString(key.expose().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn desired_labels(spec: &ValidSpec) -> BTreeMap<String, String> {
    let mut labels = spec.target_labels.clone();
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{LoginSecretRef, TargetSpec, TerrakioCredentialSpec, validate};

    fn credential() -> TerrakioCredential {
        let mut cr = TerrakioCredential::new(
            "team-a",
            TerrakioCredentialSpec {
                endpoint: "https://api.terrak.io".into(),
                login_secret_ref: LoginSecretRef {
                    name: "login".into(),
                    email_key: "email".into(),
                    password_key: "password".into(),
                },
                target: TargetSpec {
                    labels: BTreeMap::from([("team".into(), "a".into())]),
                    ..TargetSpec::default()
                },
                refresh_interval: "1h".into(),
                ca_bundle_secret_ref: None,
                rotation: None,
                suspend: false,
                deletion_policy: Default::default(),
                restart_targets: Vec::new(),
            },
        );
        cr.spec.target.key = "TERRAKIO_API_KEY".into();
        cr.metadata.namespace = Some("ns".into());
        cr.metadata.uid = Some("uid-1".into());
        cr
    }

    #[test]
    fn observe_table() {
        let cr = credential();
        let spec = validate(&cr.spec, "team-a", false).unwrap();
        let key = ApiKey::new("tk_one");
        let ours = desired(&cr, &spec, &key);

        let mut edited = ours.clone();
        edited.data = Some(BTreeMap::from([(
            "TERRAKIO_API_KEY".into(),
            ByteString(b"x".to_vec()),
        )]));
        let mut unlabelled = ours.clone();
        unlabelled.metadata.labels = None;
        let mut foreign = ours.clone();
        foreign.metadata.owner_references = None;
        let mut other_owner = ours.clone();
        other_owner.metadata.owner_references.as_mut().unwrap()[0].uid = "uid-2".into();

        let cases = [
            ("absent", None, TargetState::Absent),
            (
                "as written",
                Some(&ours),
                TargetState::Owned {
                    key_fingerprint: Some(key.fingerprint()),
                    metadata_current: true,
                },
            ),
            (
                "value edited",
                Some(&edited),
                TargetState::Owned {
                    key_fingerprint: Some(fingerprint_of(b"x")),
                    metadata_current: true,
                },
            ),
            (
                "labels removed",
                Some(&unlabelled),
                TargetState::Owned {
                    key_fingerprint: Some(key.fingerprint()),
                    metadata_current: false,
                },
            ),
            ("not owned", Some(&foreign), TargetState::Foreign),
            (
                "owned by another credential",
                Some(&other_owner),
                TargetState::Foreign,
            ),
        ];
        for (name, found, expected) in cases {
            assert_eq!(observe(found, &cr, &spec), expected, "{name}");
        }
    }

    #[test]
    fn desired_secret_is_labelled_owned_and_opaque() {
        let cr = credential();
        let spec = validate(&cr.spec, "team-a", false).unwrap();
        let secret = desired(&cr, &spec, &ApiKey::new("tk_one"));
        assert_eq!(secret.metadata.name.as_deref(), Some("team-a"));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
        assert_eq!(labels["team"], "a");
        let owner = &secret.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.controller, owner.uid.as_str()),
            (Some(true), "uid-1")
        );
        assert_eq!(secret.data.unwrap()["TERRAKIO_API_KEY"].0, b"tk_one");
    }
}
