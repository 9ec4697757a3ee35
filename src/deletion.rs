//! What `deletionPolicy: Retain` needs: a finalizer, and on deletion the release of the
//! Secret. Only the Kubernetes API is involved, never Terrakio, so an outage cannot block a
//! deletion.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use crate::credential::{DeletionPolicy, TerrakioCredential};
use crate::error::Error;
use crate::reconcile::{Context, RETAIN_FINALIZER};
use crate::report::publish;
use crate::target;

/// Adds or removes the finalizer that `deletionPolicy: Retain` needs.
pub(crate) async fn ensure_finalizer(
    ctx: &Context,
    cr: &TerrakioCredential,
    policy: DeletionPolicy,
) -> Result<(), Error> {
    let has = cr.finalizers().iter().any(|f| f == RETAIN_FINALIZER);
    let wanted = policy == DeletionPolicy::Retain;
    if has == wanted {
        return Ok(());
    }
    let mut finalizers: Vec<String> = cr
        .finalizers()
        .iter()
        .filter(|f| *f != RETAIN_FINALIZER)
        .cloned()
        .collect();
    if wanted {
        finalizers.push(RETAIN_FINALIZER.to_string());
    }
    let api: Api<TerrakioCredential> =
        Api::namespaced(ctx.client.clone(), &cr.namespace().unwrap_or_default());
    let patch = json!({
        "metadata": { "finalizers": finalizers, "resourceVersion": cr.resource_version() }
    });
    api.patch(
        &cr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
    .map_err(|source| Error::Kubernetes {
        step: "updating the finalizer",
        source,
    })
}

/// On deletion of a credential with `deletionPolicy: Retain`: releases the Secret (removes the
/// owner reference, so the garbage collector keeps it), then lets the deletion proceed. It
/// needs only the Kubernetes API, never Terrakio, so an outage cannot block a deletion.
pub(crate) async fn release_on_deletion(
    cr: &TerrakioCredential,
    ctx: &Context,
) -> Result<(), Error> {
    if !cr.finalizers().iter().any(|f| f == RETAIN_FINALIZER) {
        return Ok(());
    }
    let namespace = cr.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = cr
        .status
        .as_ref()
        .and_then(|s| s.secret_name.clone())
        .or_else(|| cr.spec.target.name.clone())
        .unwrap_or_else(|| cr.name_any());
    let step = "releasing the target Secret";
    let found = secrets
        .get_opt(&name)
        .await
        .map_err(|source| Error::Kubernetes { step, source })?;
    if let Some(secret) = found
        && let target::Ownership::Controlled = target::ownership(Some(&secret), cr)
    {
        let uid = cr.metadata.uid.clone().unwrap_or_default();
        let owners: Vec<_> = secret
            .owner_references()
            .iter()
            .filter(|o| o.uid != uid)
            .cloned()
            .collect();
        // Released: no owner, and no longer labelled (so no longer watched) as managed.
        let patch = json!({ "metadata": {
            "ownerReferences": owners,
            "labels": { crate::credential::MANAGED_BY_LABEL: null },
        } });
        secrets
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| Error::Kubernetes { step, source })?;
        tracing::info!(%namespace, name = %cr.name_any(), secret = %name, "credential deleted; Secret retained");
        let note = format!("Secret {name} retained after the credential's deletion");
        publish(ctx, cr, EventType::Normal, "Retained", "Delete", note).await;
    }
    let finalizers: Vec<String> = cr
        .finalizers()
        .iter()
        .filter(|f| *f != RETAIN_FINALIZER)
        .cloned()
        .collect();
    let api: Api<TerrakioCredential> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({ "metadata": { "finalizers": finalizers } });
    match api
        .patch(
            &cr.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Kubernetes {
            step: "removing the finalizer",
            source,
        }),
    }
}
