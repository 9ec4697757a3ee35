//! Rolling restarts of the workloads that read the key, after the key in the Secret changed.
//!
//! A restart is a change of the pod template, as `kubectl rollout restart` makes. Here the
//! change is the annotation `terrak.io/key-fingerprint` set to the new key's fingerprint, so a
//! workload is restarted once per key and a reconcile that changes nothing restarts nothing.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::credential::{RestartTarget, WorkloadKind};

pub const TEMPLATE_ANNOTATION: &str = "terrak.io/key-fingerprint";

/// Whether a workload whose pod template carries `current` must restart for the key with
/// `fingerprint`. `key_changed` says the Secret's key changed in this reconcile. A template
/// already marked with another key also restarts: the operator marked it, so it was meant to
/// follow the key, and a crash may have cut the restart short.
pub fn needs_restart(current: Option<&str>, fingerprint: &str, key_changed: bool) -> bool {
    match current {
        Some(marked) => marked != fingerprint,
        None => key_changed,
    }
}

/// What happened to one target.
#[derive(Debug)]
pub enum Outcome {
    Restarted,
    Unchanged,
    NotFound,
    Failed(kube::Error),
}

pub async fn restart_all(
    client: &Client,
    namespace: &str,
    targets: &[RestartTarget],
    fingerprint: &str,
    key_changed: bool,
) -> Vec<(RestartTarget, Outcome)> {
    let mut outcomes = Vec::with_capacity(targets.len());
    for target in targets {
        let outcome = match target.kind {
            WorkloadKind::Deployment => {
                restart::<Deployment>(client, namespace, &target.name, fingerprint, key_changed)
                    .await
            }
            WorkloadKind::StatefulSet => {
                restart::<StatefulSet>(client, namespace, &target.name, fingerprint, key_changed)
                    .await
            }
            WorkloadKind::DaemonSet => {
                restart::<DaemonSet>(client, namespace, &target.name, fingerprint, key_changed)
                    .await
            }
        };
        outcomes.push((target.clone(), outcome));
    }
    outcomes
}

/// The pod-template annotations of the three workload kinds, read generically.
trait PodTemplate {
    fn template_annotation(&self, key: &str) -> Option<String>;
}

macro_rules! pod_template {
    ($kind:ty) => {
        impl PodTemplate for $kind {
            fn template_annotation(&self, key: &str) -> Option<String> {
                self.spec
                    .as_ref()?
                    .template
                    .metadata
                    .as_ref()?
                    .annotations
                    .as_ref()?
                    .get(key)
                    .cloned()
            }
        }
    };
}
pod_template!(Deployment);
pod_template!(StatefulSet);
pod_template!(DaemonSet);

async fn restart<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    fingerprint: &str,
    key_changed: bool,
) -> Outcome
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + PodTemplate
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let workload = match api.get_opt(name).await {
        Ok(Some(workload)) => workload,
        Ok(None) => return Outcome::NotFound,
        Err(err) => return Outcome::Failed(err),
    };
    let current = workload.template_annotation(TEMPLATE_ANNOTATION);
    if !needs_restart(current.as_deref(), fingerprint, key_changed) {
        return Outcome::Unchanged;
    }
    let patch = json!({
        "spec": { "template": { "metadata": { "annotations": {
            TEMPLATE_ANNOTATION: fingerprint,
        } } } }
    });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Outcome::Restarted,
        Err(err) => Outcome::Failed(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_table() {
        let cases = [
            (
                "never marked, key unchanged: a no-op refresh",
                None,
                "A",
                false,
                false,
            ),
            ("never marked, key changed", None, "B", true, true),
            ("marked with this key", Some("A"), "A", false, false),
            (
                "marked with this key, reported changed",
                Some("A"),
                "A",
                true,
                false,
            ),
            ("marked with the old key", Some("A"), "B", true, true),
            (
                "marked with the old key; the restart was cut short",
                Some("A"),
                "B",
                false,
                true,
            ),
        ];
        for (name, current, fingerprint, changed, expected) in cases {
            assert_eq!(
                needs_restart(current, fingerprint, changed),
                expected,
                "{name}"
            );
        }
    }
}
