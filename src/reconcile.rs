//! The doing: one reconcile of one `TerrakioCredential`.
//!
//! It gathers what [`crate::decision`] needs, follows the plan (calling Terrakio through the
//! shared sessions and writing the Secret with server-side apply), then records the outcome in
//! status, an Event and one log line. Failures are recorded the same way and retried with
//! exponential backoff and jitter by [`error_policy`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::conditions::{self, Reason};
use crate::credential::{TerrakioCredential, TerrakioCredentialStatus, ValidSpec, validate};
use crate::decision::{self, Observation, Plan, Write};
use crate::error::Error;
use crate::login_secret;
use crate::sensitive::ApiKey;
use crate::session::{Login, Sessions};
use crate::target;
use crate::terrakio::{TerrakioClient, TerrakioError};

pub const FIELD_MANAGER: &str = "terrakio-operator";
/// The longest wait between attempts of a failing credential.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// What every reconcile shares. Nothing here is global.
pub struct Context {
    pub client: Client,
    pub terrakio: TerrakioClient,
    pub sessions: Sessions,
    pub recorder: Recorder,
    pub allow_insecure_endpoints: bool,
    memory: Mutex<HashMap<ObjectRef<TerrakioCredential>, Memory>>,
}

/// Per-credential memory that must not be in status: which login Secret version last worked,
/// and the backoff of a failing credential.
#[derive(Default)]
struct Memory {
    login_version: Option<String>,
    failures: Option<ExponentialBackoff>,
}

impl Context {
    pub fn new(
        client: Client,
        terrakio: TerrakioClient,
        recorder: Recorder,
        allow_insecure_endpoints: bool,
    ) -> Self {
        Context {
            client,
            terrakio,
            sessions: Sessions::default(),
            recorder,
            allow_insecure_endpoints,
            memory: Mutex::default(),
        }
    }

    fn with_memory<T>(
        &self,
        key: &ObjectRef<TerrakioCredential>,
        f: impl FnOnce(&mut Memory) -> T,
    ) -> T {
        let mut memory = self.memory.lock().expect("memory lock");
        f(memory.entry(key.clone()).or_default())
    }

    fn login_changed(&self, key: &ObjectRef<TerrakioCredential>, version: Option<&str>) -> bool {
        self.with_memory(key, |m| {
            m.login_version.is_none() || m.login_version.as_deref() != version
        })
    }

    /// The next wait for a failing credential: exponential from the error's first retry, with
    /// jitter, capped, and never shorter than a `Retry-After` Terrakio sent.
    fn next_retry(&self, key: &ObjectRef<TerrakioCredential>, err: &Error) -> Duration {
        let delay = self.with_memory(key, |m| {
            let backoff = m.failures.get_or_insert_with(|| {
                ExponentialBuilder::default()
                    .with_min_delay(err.first_retry())
                    .with_max_delay(MAX_RETRY)
                    .with_factor(2.0)
                    .with_jitter()
                    .without_max_times()
                    .build()
            });
            backoff.next().unwrap_or(MAX_RETRY)
        });
        delay.max(err.retry_after().unwrap_or_default())
    }

    fn succeeded(&self, key: &ObjectRef<TerrakioCredential>, login_version: Option<String>) {
        self.with_memory(key, |m| {
            m.failures = None;
            if login_version.is_some() {
                m.login_version = login_version;
            }
        });
    }

    /// Drops the memory of credentials that no longer exist.
    pub fn forget(&self, key: &ObjectRef<TerrakioCredential>) {
        self.memory.lock().expect("memory lock").remove(key);
    }
}

/// The result of a successful reconcile.
struct Synced {
    secret_name: String,
    fingerprint: String,
    /// Terrakio was asked and confirmed the key (false when nothing was due).
    confirmed: bool,
    generated: bool,
    write: Option<Write>,
    login_version: Option<String>,
    requeue_after: Duration,
}

pub async fn reconcile(cr: Arc<TerrakioCredential>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(&*cr);
    let result = sync(&cr, &ctx).await;
    let previous = cr.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    match result {
        Ok(synced) => {
            ctx.succeeded(&key, synced.login_version.clone());
            let status = status_after_success(&cr, &previous, &synced, now);
            write_status(&ctx, &cr, &status).await?;
            report_success(&ctx, &cr, &previous, &synced).await;
            Ok(Action::requeue(synced.requeue_after))
        }
        Err(err) => {
            let status = status_after_failure(&cr, &previous, &err, now);
            if let Err(status_err) = write_status(&ctx, &cr, &status).await {
                tracing::warn!(namespace = ?cr.namespace(), name = %cr.name_any(), error = %status_err, "could not record the failure in status");
            }
            report_failure(&ctx, &cr, &previous, &err).await;
            Err(err)
        }
    }
}

pub fn error_policy(cr: Arc<TerrakioCredential>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_retry(&ObjectRef::from_obj(&*cr), err);
    tracing::debug!(namespace = ?cr.namespace(), name = %cr.name_any(), reason = %err.reason(), retry_in_ms = delay.as_millis() as u64, "will retry");
    Action::requeue(delay)
}

async fn sync(cr: &TerrakioCredential, ctx: &Context) -> Result<Synced, Error> {
    let spec = validate(&cr.spec, &cr.name_any(), ctx.allow_insecure_endpoints)
        .map_err(Error::InvalidSpec)?;
    let namespace = cr.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);

    let login = login_secret::read(&secrets, &spec.login).await?;
    let found = secrets
        .get_opt(&spec.target_name)
        .await
        .map_err(|source| Error::Kubernetes {
            step: "reading the target Secret",
            source,
        })?;
    let target = target::observe(found.as_ref(), cr, &spec);

    let status = cr.status.clone().unwrap_or_default();
    let recorded = status.key_fingerprint.as_deref().filter(|_| {
        // A fingerprint recorded for another Secret name says nothing about this one.
        status.secret_name.as_deref() == Some(spec.target_name.as_str())
    });
    let key = ObjectRef::from_obj(cr);
    let seen = Observation {
        generation: cr.metadata.generation,
        observed_generation: status.observed_generation,
        ready: conditions::find(&status.conditions, conditions::READY)
            .is_some_and(|c| c.status == "True"),
        recorded_fingerprint: recorded,
        last_sync: status.last_sync_time.as_ref().map(|t| t.0),
        target: &target,
        login_changed: ctx.login_changed(&key, login.resource_version.as_deref()),
        refresh_interval: spec.refresh_interval,
        now: Timestamp::now(),
    };

    let reason = match decision::plan(&seen) {
        Plan::Conflict => {
            return Err(Error::TargetConflict {
                name: spec.target_name,
            });
        }
        Plan::UpToDate { requeue_after } => {
            tracing::debug!(requeue_in_s = requeue_after.as_secs(), "up to date");
            return Ok(Synced {
                secret_name: spec.target_name,
                fingerprint: recorded.unwrap_or_default().to_string(),
                confirmed: false,
                generated: false,
                write: None,
                login_version: None,
                requeue_after,
            });
        }
        Plan::Sync(reason) => reason,
    };

    tracing::debug!(?reason, "asking Terrakio for the current key");
    let session = Login {
        endpoint: spec.endpoint.clone(),
        email: login.email,
        password: login.password,
    };
    let (api_key, generated) = current_or_new_key(ctx, &session).await?;
    let fingerprint = api_key.fingerprint();

    let write = decision::write(&target, recorded, &fingerprint);
    if let Some(write) = write {
        tracing::debug!(?write, secret = %spec.target_name, "writing the target Secret");
        apply_secret(&secrets, cr, &spec, &api_key).await?;
    }
    remove_previous_target(&secrets, cr, &status, &spec).await?;

    Ok(Synced {
        secret_name: spec.target_name,
        fingerprint,
        confirmed: true,
        generated,
        write,
        login_version: login.resource_version,
        requeue_after: spec.refresh_interval,
    })
}

/// Adopts the account's current key; generates one only when the account has none, because a
/// key that exists may already be in use elsewhere and generating would break those users.
async fn current_or_new_key(ctx: &Context, login: &Login) -> Result<(ApiKey, bool), Error> {
    let client = &ctx.terrakio;
    let endpoint = &login.endpoint;
    let host = endpoint.host_str().unwrap_or_default().to_string();
    let failed = |step: &'static str| {
        let host = host.clone();
        move |source: TerrakioError| Error::Terrakio { step, host, source }
    };
    let view = || {
        ctx.sessions.with_token(client, login, |token| async move {
            client.view_key(endpoint, &token).await
        })
    };

    if let Some(key) = view().await.map_err(failed("reading the API key"))? {
        return Ok((key, false));
    }

    tracing::debug!("the account has no API key yet; generating one");
    let generated = ctx
        .sessions
        .with_token(client, login, |token| async move {
            client.generate_key(endpoint, &token).await
        })
        .await;
    match generated {
        Ok(key) => Ok((key, true)),
        Err(err) if err.outcome_unknown() => {
            // The key may have been generated with the answer lost: read it back rather than
            // generate again, which could rotate a key that was just handed out.
            tracing::debug!(error = %err, "generate outcome unknown; reading the key back");
            match view().await.map_err(failed("reading back the API key"))? {
                Some(key) => Ok((key, true)),
                None => Err(failed("generating an API key")(err)),
            }
        }
        Err(err) => Err(failed("generating an API key")(err)),
    }
}

async fn apply_secret(
    secrets: &Api<Secret>,
    cr: &TerrakioCredential,
    spec: &ValidSpec,
    key: &ApiKey,
) -> Result<(), Error> {
    let secret = target::desired(cr, spec, key);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    secrets
        .patch(&spec.target_name, &params, &Patch::Apply(&secret))
        .await
        .map(drop)
        .map_err(|source| Error::Kubernetes {
            step: "writing the target Secret",
            source,
        })
}

/// After `spec.target.name` changed, deletes the Secret written under the old name, if this
/// credential still controls it.
async fn remove_previous_target(
    secrets: &Api<Secret>,
    cr: &TerrakioCredential,
    status: &TerrakioCredentialStatus,
    spec: &ValidSpec,
) -> Result<(), Error> {
    let Some(old) = status
        .secret_name
        .as_deref()
        .filter(|old| *old != spec.target_name)
    else {
        return Ok(());
    };
    let step = "removing the previous target Secret";
    let found = secrets
        .get_opt(old)
        .await
        .map_err(|source| Error::Kubernetes { step, source })?;
    if let target::Ownership::Controlled = target::ownership(found.as_ref(), cr) {
        secrets
            .delete(old, &DeleteParams::default())
            .await
            .map_err(|source| Error::Kubernetes { step, source })?;
        tracing::info!(
            secret = old,
            "removed the Secret written under the previous name"
        );
    }
    Ok(())
}

fn status_after_success(
    cr: &TerrakioCredential,
    previous: &TerrakioCredentialStatus,
    synced: &Synced,
    now: Timestamp,
) -> TerrakioCredentialStatus {
    let message = format!(
        "Secret {} holds key {}",
        synced.secret_name, synced.fingerprint
    );
    let ready = conditions::ready(
        conditions::find(&previous.conditions, conditions::READY),
        true,
        Reason::KeySynced,
        message,
        cr.metadata.generation,
        now,
    );
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
    }
}

fn status_after_failure(
    cr: &TerrakioCredential,
    previous: &TerrakioCredentialStatus,
    err: &Error,
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
        ..previous.clone()
    }
}

async fn write_status(
    ctx: &Context,
    cr: &TerrakioCredential,
    status: &TerrakioCredentialStatus,
) -> Result<(), Error> {
    if cr.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<TerrakioCredential> =
        Api::namespaced(ctx.client.clone(), &cr.namespace().unwrap_or_default());
    api.patch_status(
        &cr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(drop)
    .map_err(|source| Error::Kubernetes {
        step: "updating the status",
        source,
    })
}

async fn report_success(
    ctx: &Context,
    cr: &TerrakioCredential,
    previous: &TerrakioCredentialStatus,
    synced: &Synced,
) {
    let namespace = cr.namespace().unwrap_or_default();
    let name = cr.name_any();
    let fp = &synced.fingerprint;
    let secret = &synced.secret_name;
    let was_ready = conditions::find(&previous.conditions, conditions::READY)
        .is_some_and(|c| c.status == "True");

    if synced.generated {
        tracing::info!(%namespace, %name, fingerprint = %fp, "generated an API key: the account had none");
        let note = format!("The account had no API key; generated key {fp}");
        publish(ctx, cr, EventType::Normal, "Generated", "GenerateKey", note).await;
    }
    let event = match synced.write {
        Some(Write::Create) => Some(("Synced", format!("Wrote key {fp} to Secret {secret}"))),
        Some(Write::Restore) => Some((
            "Restored",
            format!("Secret {secret} was deleted or edited; restored key {fp}"),
        )),
        Some(Write::Update) => Some(("Updated", format!("Secret {secret} now holds key {fp}"))),
        None if !was_ready => Some(("Synced", format!("Secret {secret} holds key {fp}"))),
        None => None,
    };
    match event {
        Some((reason, note)) => {
            tracing::info!(%namespace, %name, secret = %secret, fingerprint = %fp, outcome = reason, "key in place");
            publish(ctx, cr, EventType::Normal, reason, "SyncKey", note).await;
        }
        None if synced.confirmed => {
            tracing::info!(%namespace, %name, secret = %secret, fingerprint = %fp, outcome = "Confirmed", "key unchanged at Terrakio");
        }
        None => {}
    }
}

async fn report_failure(
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

async fn publish(
    ctx: &Context,
    cr: &TerrakioCredential,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &cr.object_ref(&())).await {
        tracing::warn!(namespace = ?cr.namespace(), name = %cr.name_any(), error = %err, "could not publish an Event");
    }
}
