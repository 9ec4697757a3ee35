//! What a reconcile tells people: one log line per outcome and Kubernetes Events, never with
//! a secret in them.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use crate::conditions::{self, Reason};
use crate::credential::{TerrakioCredential, TerrakioCredentialStatus};
use crate::decision::Write;
use crate::error::Error;
use crate::reconcile::{Context, Synced};

pub(crate) async fn report_success(
    ctx: &Context,
    cr: &TerrakioCredential,
    previous: &TerrakioCredentialStatus,
    synced: &Synced,
) {
    let namespace = cr.namespace().unwrap_or_default();
    let name = cr.name_any();
    let fp = &synced.fingerprint;
    let secret = &synced.secret_name;
    let about = synced
        .secret_version
        .as_deref()
        .map(|version| (secret.as_str(), version));
    let was_ready = conditions::find(&previous.conditions, conditions::READY)
        .is_some_and(|c| c.status == "True");

    if synced.suspended {
        if !previous
            .conditions
            .iter()
            .any(|c| c.reason == Reason::Suspended.as_str())
        {
            tracing::info!(%namespace, %name, outcome = "Suspended", "suspended");
            let note = "Suspended: no Terrakio call and no write until spec.suspend is false";
            publish(
                ctx,
                cr,
                EventType::Normal,
                "Suspended",
                "Suspend",
                note.into(),
            )
            .await;
        }
        return;
    }
    if let Some(others) = &synced.new_rotators
        && !others.is_empty()
    {
        let names: Vec<String> = others
            .iter()
            .map(|o| format!("{}/{}", o.namespace.as_deref().unwrap_or(""), o.name))
            .collect();
        let note = format!(
            "Credentials {} share this account's key and also have a rotation policy; each \
             rotation replaces the key for all of them",
            names.join(", ")
        );
        tracing::warn!(%namespace, %name, others = %names.join(","), "several rotation policies on one account");
        publish(
            ctx,
            cr,
            EventType::Warning,
            "SharedRotationPolicy",
            "Rotate",
            note,
        )
        .await;
    }
    if let Some(rotation) = synced.rotation.as_ref().filter(|r| r.by_self) {
        let why = rotation
            .request
            .as_ref()
            .map_or("on schedule".to_string(), |v| format!("on request {v:?}"));
        tracing::info!(%namespace, %name, fingerprint = %fp, outcome = "Rotated", "rotated the key {why}");
        let note = format!("Rotated the key {why}; Secret {secret} now holds key {fp}");
        publish_about(ctx, cr, EventType::Normal, "Rotated", "Rotate", note, about).await;
    }
    if !synced.restarted.is_empty() {
        let note = format!("Restarted {} for key {fp}", synced.restarted.join(", "));
        tracing::info!(%namespace, %name, fingerprint = %fp, outcome = "Restarted", "{note}");
        publish_about(
            ctx,
            cr,
            EventType::Normal,
            "Restarted",
            "Restart",
            note,
            about,
        )
        .await;
    }
    if synced.generated {
        tracing::info!(%namespace, %name, fingerprint = %fp, "generated an API key: the account had none");
        let note = format!("The account had no API key; generated key {fp}");
        publish_about(
            ctx,
            cr,
            EventType::Normal,
            "Generated",
            "GenerateKey",
            note,
            about,
        )
        .await;
    }
    let event = match synced.write {
        Some(Write::Create) => Some(("Synced", format!("Wrote key {fp} to Secret {secret}"))),
        Some(Write::Restore) => Some((
            "Restored",
            format!("Secret {secret} was deleted or edited; restored key {fp}"),
        )),
        Some(Write::Update) => Some(("Updated", format!("Secret {secret} now holds key {fp}"))),
        Some(Write::Adopt) => Some((
            "Adopted",
            format!("Took over the existing Secret {secret}; it now holds key {fp}"),
        )),
        None if !was_ready => Some(("Synced", format!("Secret {secret} holds key {fp}"))),
        None => None,
    };
    match event {
        Some((reason, note)) => {
            tracing::info!(%namespace, %name, secret = %secret, fingerprint = %fp, outcome = reason, "key in place");
            publish_about(ctx, cr, EventType::Normal, reason, "SyncKey", note, about).await;
        }
        None if synced.confirmed => {
            tracing::info!(%namespace, %name, secret = %secret, fingerprint = %fp, outcome = "Confirmed", "key unchanged at Terrakio");
        }
        None => {}
    }
}

pub(crate) async fn report_failure(
    ctx: &Context,
    cr: &TerrakioCredential,
    previous: &TerrakioCredentialStatus,
    err: &Error,
) {
    let reason = err.reason();
    let message = err.to_string();
    tracing::warn!(namespace = ?cr.namespace(), name = %cr.name_any(), %reason, error = %message, "sync failed");
    let unchanged = conditions::find(&previous.conditions, conditions::READY).is_some_and(|c| {
        c.status == "False" && c.reason == reason.as_str() && c.message == message
    });
    if !unchanged {
        publish(
            ctx,
            cr,
            EventType::Warning,
            reason.as_str(),
            "SyncKey",
            message,
        )
        .await;
    }
}

pub(crate) async fn publish(
    ctx: &Context,
    cr: &TerrakioCredential,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    publish_about(ctx, cr, type_, reason, action, note, None).await;
}

/// An Event that also names the Secret version it is about. Events with the same reason about
/// the same object are folded into one series whose text stays the first one's; naming the
/// Secret's resourceVersion as the related object keeps each key's Event, with its own
/// fingerprint.
async fn publish_about(
    ctx: &Context,
    cr: &TerrakioCredential,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
    secret: Option<(&str, &str)>,
) {
    let secondary = secret.map(|(name, version)| ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Secret".to_string()),
        name: Some(name.to_string()),
        namespace: cr.namespace(),
        resource_version: Some(version.to_string()),
        ..ObjectReference::default()
    });
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary,
    };
    if let Err(err) = ctx.recorder.publish(&event, &cr.object_ref(&())).await {
        tracing::warn!(namespace = ?cr.namespace(), name = %cr.name_any(), error = %err, "could not publish an Event");
    }
}
