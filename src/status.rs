//! The status a reconcile records, and how it is written.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::conditions::{self, Reason};
use crate::credential::{PendingRotation, TerrakioCredential, TerrakioCredentialStatus};
use crate::error::Error;
use crate::reconcile::{Context, FIELD_MANAGER, Synced};

pub(crate) fn status_after_success(
    cr: &TerrakioCredential,
    previous: &TerrakioCredentialStatus,
    synced: &Synced,
    now: Timestamp,
) -> TerrakioCredentialStatus {
    let (reason, ok, message) = if synced.suspended {
        (
            Reason::Suspended,
            false,
            "spec.suspend is true: no Terrakio call and no write until it is false".to_string(),
        )
    } else {
        (
            Reason::KeySynced,
            true,
            format!(
                "Secret {} holds key {}",
                synced.secret_name, synced.fingerprint
            ),
        )
    };
    let ready = conditions::ready(
        conditions::find(&previous.conditions, conditions::READY),
        ok,
        reason,
        message,
        cr.metadata.generation,
        now,
    );
    if synced.suspended {
        return TerrakioCredentialStatus {
            conditions: vec![ready],
            observed_generation: cr.metadata.generation,
            next_rotation_time: None,
            ..previous.clone()
        };
    }
    let request = synced.rotation.as_ref().and_then(|r| r.request.clone());
    TerrakioCredentialStatus {
        conditions: vec![ready],
        observed_generation: cr.metadata.generation,
        secret_name: Some(synced.secret_name.clone()),
        key_fingerprint: Some(synced.fingerprint.clone()),
        last_sync_time: if synced.confirmed {
            Some(Time(now))
        } else {
            previous.last_sync_time.clone()
        },
        last_rotation_time: synced.last_rotation.map(Time),
        next_rotation_time: synced.next_rotation.map(Time),
        last_rotate_request: request.or_else(|| previous.last_rotate_request.clone()),
        pending_rotation: None,
    }
}

pub(crate) fn status_after_failure(
    cr: &TerrakioCredential,
    previous: &TerrakioCredentialStatus,
    err: &Error,
    pending: Option<PendingRotation>,
    now: Timestamp,
) -> TerrakioCredentialStatus {
    let ready = conditions::ready(
        conditions::find(&previous.conditions, conditions::READY),
        false,
        err.reason(),
        err.to_string(),
        cr.metadata.generation,
        now,
    );
    TerrakioCredentialStatus {
        conditions: vec![ready],
        observed_generation: cr.metadata.generation,
        pending_rotation: pending,
        ..previous.clone()
    }
}

pub(crate) async fn write_status(
    ctx: &Context,
    cr: &TerrakioCredential,
    status: &TerrakioCredentialStatus,
) -> Result<(), Error> {
    write_status_if(ctx, cr, status, None).await
}

/// Writes the status; with `unchanged_since`, only if the credential is still at that
/// resourceVersion, so that of two processes that both believe they may rotate, only one gets
/// its journal entry in (the other is refused with a conflict and generates nothing).
pub(crate) async fn write_status_if(
    ctx: &Context,
    cr: &TerrakioCredential,
    status: &TerrakioCredentialStatus,
    unchanged_since: Option<String>,
) -> Result<(), Error> {
    if cr.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<TerrakioCredential> =
        Api::namespaced(ctx.client.clone(), &cr.namespace().unwrap_or_default());
    // Server-side apply of the whole status: a field left out (a finished pending rotation)
    // is removed, which a merge patch would keep.
    let mut body = json!({
        "apiVersion": "terrak.io/v1alpha1",
        "kind": "TerrakioCredential",
        "status": status,
    });
    if let Some(version) = unchanged_since {
        body["metadata"] = json!({ "resourceVersion": version });
    }
    api.patch_status(
        &cr.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map(drop)
    .map_err(|source| Error::Kubernetes {
        step: "updating the status",
        source,
    })
}
