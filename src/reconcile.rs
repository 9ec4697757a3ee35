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

use crate::account::{AccountKey, Accounts};
use crate::conditions::{self, Reason};
use crate::credential::{
    DeletionPolicy, PendingRotation, TerrakioCredential, TerrakioCredentialStatus, ValidSpec,
    validate,
};
use crate::decision::{self, Observation, Plan, SyncReason, TargetState, Trigger, Write};
use crate::error::Error;
use crate::login_secret;
use crate::metrics::Metrics;
use crate::restart;
use crate::schedule;
use crate::sensitive::ApiKey;
use crate::session::{Login, Sessions};
use crate::target;
use crate::terrakio::{TerrakioClient, TerrakioError};

pub const FIELD_MANAGER: &str = "terrakio-operator";
/// Setting this annotation to a new value rotates the key once.
pub const ROTATE_ANNOTATION: &str = "terrak.io/rotate";
/// Keeps a credential with `deletionPolicy: Retain` until its Secret is released.
pub const RETAIN_FINALIZER: &str = "terrak.io/retain-secret";
/// The longest wait between attempts of a failing credential.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// What every reconcile shares. Nothing here is global.
pub struct Context {
    pub client: Client,
    pub terrakio: TerrakioClient,
    pub sessions: Sessions,
    pub recorder: Recorder,
    pub allow_insecure_endpoints: bool,
    pub metrics: Arc<Metrics>,
    pub accounts: Accounts,
    memory: Mutex<HashMap<ObjectRef<TerrakioCredential>, Memory>>,
    wakers: Mutex<Vec<Waker>>,
}

/// Sends credentials to the controller that watches their namespace, to reconcile them now.
struct Waker {
    namespace: Option<String>,
    sender: futures::channel::mpsc::UnboundedSender<ObjectRef<TerrakioCredential>>,
}

/// Per-credential memory that must not be in status: which login Secret version last worked,
/// and the backoff of a failing credential.
#[derive(Default)]
struct Memory {
    login_version: Option<String>,
    failures: Option<ExponentialBackoff>,
    /// The other credentials with a rotation policy on the same account, as last reported.
    reported_rotators: Vec<ObjectRef<TerrakioCredential>>,
}

impl Context {
    pub fn new(
        client: Client,
        terrakio: TerrakioClient,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        allow_insecure_endpoints: bool,
    ) -> Self {
        Context {
            client,
            terrakio,
            sessions: Sessions::default(),
            recorder,
            allow_insecure_endpoints,
            metrics,
            accounts: Accounts::default(),
            memory: Mutex::default(),
            wakers: Mutex::default(),
        }
    }

    /// A stream of credentials to reconcile now, for the controller of `namespace` (`None`:
    /// the whole cluster).
    pub fn wakeups(
        &self,
        namespace: Option<String>,
    ) -> futures::channel::mpsc::UnboundedReceiver<ObjectRef<TerrakioCredential>> {
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        self.wakers
            .lock()
            .expect("wakers lock")
            .push(Waker { namespace, sender });
        receiver
    }

    fn wake(&self, credentials: Vec<ObjectRef<TerrakioCredential>>) {
        let wakers = self.wakers.lock().expect("wakers lock");
        for credential in credentials {
            let waker = wakers.iter().find(|w| {
                w.namespace.is_none() || w.namespace.as_deref() == credential.namespace.as_deref()
            });
            if let Some(waker) = waker {
                tracing::debug!(namespace = ?credential.namespace, name = %credential.name, "waking a credential of the same account");
                let _ = waker.sender.unbounded_send(credential);
            }
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

    /// Drops everything remembered of a credential that was deleted.
    pub fn forget_deleted(&self, cr: &TerrakioCredential) {
        self.forget(&ObjectRef::from_obj(cr));
        self.metrics
            .forget_credential(&cr.namespace().unwrap_or_default(), &cr.name_any());
    }

    /// Drops the memory of credentials that no longer exist.
    pub fn forget(&self, key: &ObjectRef<TerrakioCredential>) {
        self.memory.lock().expect("memory lock").remove(key);
        self.accounts.leave(key);
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
    /// Set when the key was replaced: by this credential, or by another of the account.
    rotation: Option<Rotation>,
    /// No Terrakio call and no write were made (`spec.suspend`).
    suspended: bool,
    /// The status fields derived from the spec's rotation policy.
    next_rotation: Option<Timestamp>,
    last_rotation: Option<Timestamp>,
    /// Workloads restarted because the key changed.
    restarted: Vec<String>,
    /// Other credentials of the account with a rotation policy, when that set is news.
    new_rotators: Option<Vec<ObjectRef<TerrakioCredential>>>,
}

/// A key replacement.
#[derive(Clone, Debug)]
struct Rotation {
    at: Timestamp,
    /// This credential generated the key (false: it followed another credential's rotation).
    by_self: bool,
    /// The terrak.io/rotate value that asked for it.
    request: Option<String>,
}

/// What a failed reconcile must still record: a rotation it started.
#[derive(Default)]
struct Journal {
    pending: Option<PendingRotation>,
}

pub async fn reconcile(cr: Arc<TerrakioCredential>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = cr.namespace().unwrap_or_default();
    let name = cr.name_any();
    let key = ObjectRef::from_obj(&*cr);
    if cr.metadata.deletion_timestamp.is_some() {
        release_on_deletion(&cr, &ctx).await?;
        ctx.forget(&key);
        ctx.metrics.forget_credential(&namespace, &name);
        return Ok(Action::await_change());
    }

    let previous = cr.status.clone().unwrap_or_default();
    let mut journal = Journal {
        pending: previous.pending_rotation.clone(),
    };
    let result = sync(&cr, &ctx, &mut journal).await;
    let now = Timestamp::now();
    let (status, outcome) = match result {
        Ok(synced) => {
            ctx.succeeded(&key, synced.login_version.clone());
            let status = status_after_success(&cr, &previous, &synced, now);
            if let Some(rotation) = synced.rotation.as_ref().filter(|r| r.by_self) {
                let trigger = if rotation.request.is_some() {
                    "request"
                } else {
                    "schedule"
                };
                ctx.metrics.rotated(trigger);
            }
            let written = write_status(&ctx, &cr, &status).await;
            match written {
                Ok(()) => {
                    report_success(&ctx, &cr, &previous, &synced).await;
                    let action = if synced.suspended {
                        Action::await_change()
                    } else {
                        Action::requeue(synced.requeue_after)
                    };
                    (status, Ok(action))
                }
                Err(err) => (status, Err(err)),
            }
        }
        Err(err) if err.is_conflict() => {
            tracing::debug!(%namespace, %name, "the credential changed meanwhile; looking again");
            return Err(err);
        }
        Err(err) => {
            let status = status_after_failure(&cr, &previous, &err, journal.pending, now);
            if let Err(status_err) = write_status(&ctx, &cr, &status).await {
                tracing::warn!(%namespace, %name, error = %status_err, "could not record the failure in status");
            }
            report_failure(&ctx, &cr, &previous, &err).await;
            (status, Err(err))
        }
    };

    let ready = conditions::find(&status.conditions, conditions::READY);
    let reason = ready.map_or("Unknown", |c| c.reason.as_str());
    let result = if outcome.is_ok() { "success" } else { "error" };
    ctx.metrics.reconciled(result, reason, started.elapsed());
    ctx.metrics.credential_state(
        &namespace,
        &name,
        ready.map_or("Unknown", |c| c.status.as_str()),
        reason,
        status.next_rotation_time.as_ref().map(|t| t.0.as_second()),
    );
    outcome
}

pub fn error_policy(cr: Arc<TerrakioCredential>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_retry(&ObjectRef::from_obj(&*cr), err);
    tracing::debug!(namespace = ?cr.namespace(), name = %cr.name_any(), reason = %err.reason(), retry_in_ms = delay.as_millis() as u64, "will retry");
    Action::requeue(delay)
}

async fn sync(
    cr: &TerrakioCredential,
    ctx: &Context,
    journal: &mut Journal,
) -> Result<Synced, Error> {
    let spec = validate(&cr.spec, &cr.name_any(), ctx.allow_insecure_endpoints)
        .map_err(Error::InvalidSpec)?;
    let namespace = cr.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = cr.status.clone().unwrap_or_default();
    let anchor = cr
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    let last_rotation = status.last_rotation_time.as_ref().map(|t| t.0);
    let next_rotation = spec
        .rotation
        .as_ref()
        .and_then(|policy| schedule::next_due(policy, last_rotation, anchor));
    let mut done = Synced {
        secret_name: spec.target_name.clone(),
        fingerprint: status.key_fingerprint.clone().unwrap_or_default(),
        confirmed: false,
        generated: false,
        write: None,
        login_version: None,
        requeue_after: spec.refresh_interval,
        rotation: None,
        suspended: false,
        next_rotation,
        last_rotation,
        restarted: Vec::new(),
        new_rotators: None,
    };
    if spec.suspend {
        return Ok(Synced {
            suspended: true,
            ..done
        });
    }
    ensure_finalizer(ctx, cr, spec.deletion_policy).await?;

    let login = login_secret::read(&secrets, &spec.login).await?;
    let terrakio = match &spec.ca_bundle {
        None => ctx.terrakio.clone(),
        Some(reference) => {
            let bundle = login_secret::read_ca_bundle(&secrets, reference).await?;
            ctx.terrakio
                .trusting(&bundle)
                .map_err(|source| Error::Terrakio {
                    step: "loading spec.caBundleSecretRef",
                    host: spec.endpoint.host_str().unwrap_or_default().to_string(),
                    source,
                })?
        }
    };
    let found = secrets
        .get_opt(&spec.target_name)
        .await
        .map_err(|source| Error::Kubernetes {
            step: "reading the target Secret",
            source,
        })?;
    let target = target::observe(found.as_ref(), cr, &spec);

    let recorded = status.key_fingerprint.as_deref().filter(|_| {
        // A fingerprint recorded for another Secret name says nothing about this one.
        status.secret_name.as_deref() == Some(spec.target_name.as_str())
    });
    let key = ObjectRef::from_obj(cr);
    let account = AccountKey::new(&spec.endpoint, &login.email);
    let shared = ctx.accounts.join(&account, &key, spec.rotation.is_some());
    if spec.rotation.is_some() {
        done.new_rotators = ctx.with_memory(&key, |m| {
            (m.reported_rotators != shared.other_rotators).then(|| {
                m.reported_rotators = shared.other_rotators.clone();
                shared.other_rotators.clone()
            })
        });
    }
    let rotate_request = cr.annotations().get(ROTATE_ANNOTATION).map(String::as_str);
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
        suspended: false,
        overwrite: spec.target_overwrite
            && !target::controlled_by_another_credential(found.as_ref(), cr),
        pending_rotation: journal.pending.is_some(),
        rotate_request,
        last_rotate_request: status.last_rotate_request.as_deref(),
        rotation_due: next_rotation,
        rotation_base: Some(last_rotation.unwrap_or(anchor)),
        account_rotated_at: shared.rotated_at,
        account_fingerprint: shared.fingerprint.as_deref(),
    };

    let plan = decision::plan(&seen);
    tracing::debug!(?plan, "planned");
    let session = Login {
        endpoint: spec.endpoint.clone(),
        email: login.email,
        password: login.password,
    };
    let (api_key, rotation) = match plan {
        Plan::Suspended => {
            return Ok(Synced {
                suspended: true,
                ..done
            });
        }
        Plan::Conflict => {
            return Err(Error::TargetConflict {
                name: spec.target_name,
            });
        }
        Plan::UpToDate { requeue_after } => {
            tracing::debug!(requeue_in_s = requeue_after.as_secs(), "up to date");
            return Ok(Synced {
                requeue_after,
                fingerprint: recorded.unwrap_or_default().into(),
                ..done
            });
        }
        Plan::Sync(reason) => {
            tracing::debug!(?reason, "asking Terrakio for the current key");
            let (api_key, generated) = current_or_new_key(ctx, &terrakio, &session).await?;
            done.generated = generated;
            let followed = match reason {
                // The key changed because another credential of the account rotated it.
                // Only a rotation newer than this credential's own counts, so the recorded
                // rotation time never moves back.
                SyncReason::RotatedByAnother | SyncReason::AccountKeyChanged => shared
                    .rotated_at
                    .filter(|at| decision::rotated_by_another(Some(*at), last_rotation))
                    .map(|at| Rotation {
                        at,
                        by_self: false,
                        request: None,
                    }),
                _ => None,
            };
            (api_key, followed)
        }
        Plan::ResumeRotation => {
            let pending = journal
                .pending
                .clone()
                .expect("planned only with a pending rotation");
            let lock = ctx.accounts.rotation_lock(&account);
            let _held = lock.lock().await;
            let current = view_key(ctx, &terrakio, &session).await?;
            let from = pending.from_fingerprint.clone();
            let (rotated, unchanged): (Option<ApiKey>, Option<ApiKey>) = match current {
                Some(k) if Some(k.fingerprint()) != from => (Some(k), None),
                other => (None, other),
            };
            let withdrawn =
                pending.request.is_some() && rotate_request != pending.request.as_deref();
            match (rotated, unchanged) {
                (Some(api_key), _) => {
                    tracing::info!(namespace = %namespace, name = %cr.name_any(), fingerprint = %api_key.fingerprint(), "a rotation interrupted earlier had generated its key; delivering it");
                    let at = pending.started_at.0;
                    (
                        api_key,
                        Some(Rotation {
                            at,
                            by_self: true,
                            request: pending.request,
                        }),
                    )
                }
                // The request was withdrawn or replaced before its key existed: drop it (a new
                // value is planned as a new rotation next).
                (None, Some(api_key)) if withdrawn => {
                    tracing::info!(namespace = %namespace, name = %cr.name_any(), "rotate request withdrawn before its key was generated; dropping it");
                    journal.pending = None;
                    (api_key, None)
                }
                (None, _) => {
                    let request = pending.request.clone();
                    let api_key =
                        rotate(ctx, &terrakio, cr, &status, &session, journal, request).await?;
                    let at = pending.started_at.0;
                    (
                        api_key,
                        Some(Rotation {
                            at,
                            by_self: true,
                            request: pending.request,
                        }),
                    )
                }
            }
        }
        Plan::Rotate(trigger) => {
            let lock = ctx.accounts.rotation_lock(&account);
            let _held = lock.lock().await;
            let already = match &trigger {
                Trigger::Scheduled { due } => {
                    ctx.accounts.rotated_at(&account).filter(|at| at >= due)
                }
                Trigger::Requested { .. } => None,
            };
            match already {
                // Another credential of the account rotated while this one waited for the lock.
                Some(at) => {
                    let (api_key, _) = current_or_new_key(ctx, &terrakio, &session).await?;
                    (
                        api_key,
                        Some(Rotation {
                            at,
                            by_self: false,
                            request: None,
                        }),
                    )
                }
                None => {
                    let request = match &trigger {
                        Trigger::Requested { value } => Some(value.clone()),
                        Trigger::Scheduled { .. } => None,
                    };
                    let api_key = rotate(
                        ctx,
                        &terrakio,
                        cr,
                        &status,
                        &session,
                        journal,
                        request.clone(),
                    )
                    .await?;
                    (
                        api_key,
                        Some(Rotation {
                            at: whole_seconds(Timestamp::now()),
                            by_self: true,
                            request,
                        }),
                    )
                }
            }
        }
    };

    let fingerprint = api_key.fingerprint();
    let others = ctx.accounts.saw_key(
        &account,
        &key,
        &fingerprint,
        rotation.as_ref().filter(|r| r.by_self).map(|r| r.at),
    );
    ctx.wake(others);

    let write = decision::write(&target, recorded, &fingerprint);
    if let Some(write) = write {
        tracing::debug!(?write, secret = %spec.target_name, "writing the target Secret");
        apply_secret(&secrets, cr, &spec, &api_key).await?;
    }
    remove_previous_target(&secrets, cr, &status, &spec).await?;

    let previous_value = match &target {
        TargetState::Owned {
            key_fingerprint, ..
        } => key_fingerprint.clone(),
        TargetState::Foreign => found.as_ref().and_then(|s| {
            s.data
                .as_ref()?
                .get(&spec.target_key)
                .map(|v| crate::sensitive::fingerprint_of(&v.0))
        }),
        TargetState::Absent => None,
    };
    let key_changed =
        decision::key_changed(write, recorded, previous_value.as_deref(), &fingerprint);
    for (workload, outcome) in restart::restart_all(
        &ctx.client,
        &namespace,
        &spec.restart_targets,
        &fingerprint,
        key_changed,
    )
    .await
    {
        let what = format!("{:?}/{}", workload.kind, workload.name);
        match outcome {
            restart::Outcome::Restarted => done.restarted.push(what),
            restart::Outcome::Unchanged => {}
            restart::Outcome::NotFound => {
                let note = format!("restart target {what} not found in this namespace");
                tracing::warn!(namespace = %namespace, name = %cr.name_any(), "{note}");
                publish(
                    ctx,
                    cr,
                    EventType::Warning,
                    "RestartTargetNotFound",
                    "Restart",
                    note,
                )
                .await;
            }
            restart::Outcome::Failed(err) => {
                let note = format!("could not restart {what}: {err}");
                tracing::warn!(namespace = %namespace, name = %cr.name_any(), "{note}");
                publish(
                    ctx,
                    cr,
                    EventType::Warning,
                    "RestartFailed",
                    "Restart",
                    note,
                )
                .await;
            }
        }
    }

    let last_rotation = rotation.as_ref().map(|r| r.at).or(last_rotation);
    let next_rotation = spec
        .rotation
        .as_ref()
        .and_then(|policy| schedule::next_due(policy, last_rotation, anchor));
    let until_rotation = next_rotation
        .map(|due| Duration::try_from(due.duration_since(Timestamp::now())).unwrap_or_default());
    let requeue_after =
        until_rotation.map_or(spec.refresh_interval, |r| r.min(spec.refresh_interval));
    journal.pending = None;
    Ok(Synced {
        fingerprint,
        confirmed: true,
        write,
        login_version: login.resource_version,
        requeue_after: requeue_after.max(Duration::from_secs(1)),
        rotation,
        last_rotation,
        next_rotation,
        ..done
    })
}

/// Rotation times are kept to the second, as status records them: a time compared with its own
/// record read back must compare equal.
fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Generates the new key of a rotation, with the rotation recorded in status first so that a
/// crash after the generate is resumed by reading the key back instead of generating again.
async fn rotate(
    ctx: &Context,
    client: &TerrakioClient,
    cr: &TerrakioCredential,
    status: &TerrakioCredentialStatus,
    login: &Login,
    journal: &mut Journal,
    request: Option<String>,
) -> Result<ApiKey, Error> {
    let pending = PendingRotation {
        from_fingerprint: status.key_fingerprint.clone(),
        started_at: Time(whole_seconds(Timestamp::now())),
        request,
    };
    if journal.pending.is_none() {
        journal.pending = Some(pending.clone());
        let mut marked = status.clone();
        marked.pending_rotation = Some(pending.clone());
        write_status_if(ctx, cr, &marked, cr.resource_version()).await?;
    }

    let endpoint = &login.endpoint;
    let host = endpoint.host_str().unwrap_or_default().to_string();
    tracing::debug!("rotating: generating a new key");
    let generated = ctx
        .sessions
        .with_token(client, login, |token| async move {
            client.generate_key(endpoint, &token).await
        })
        .await;
    match generated {
        Ok(key) => Ok(key),
        Err(err) if err.outcome_unknown() => {
            tracing::debug!(error = %err, "generate outcome unknown; reading the key back");
            let current = view_key(ctx, client, login).await?;
            match current.filter(|k| Some(k.fingerprint()) != pending.from_fingerprint) {
                Some(key) => Ok(key),
                None => Err(Error::Terrakio {
                    step: "generating a new API key",
                    host,
                    source: err,
                }),
            }
        }
        Err(source) => Err(Error::Terrakio {
            step: "generating a new API key",
            host,
            source,
        }),
    }
}

async fn view_key(
    ctx: &Context,
    client: &TerrakioClient,
    login: &Login,
) -> Result<Option<ApiKey>, Error> {
    let endpoint = &login.endpoint;
    ctx.sessions
        .with_token(client, login, |token| async move {
            client.view_key(endpoint, &token).await
        })
        .await
        .map_err(|source| Error::Terrakio {
            step: "reading the API key",
            host: endpoint.host_str().unwrap_or_default().to_string(),
            source,
        })
}

/// Adds or removes the finalizer that `deletionPolicy: Retain` needs.
async fn ensure_finalizer(
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
async fn release_on_deletion(cr: &TerrakioCredential, ctx: &Context) -> Result<(), Error> {
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

/// Adopts the account's current key; generates one only when the account has none, because a
/// key that exists may already be in use elsewhere and generating would break those users.
async fn current_or_new_key(
    ctx: &Context,
    client: &TerrakioClient,
    login: &Login,
) -> Result<(ApiKey, bool), Error> {
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

fn status_after_failure(
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

async fn write_status(
    ctx: &Context,
    cr: &TerrakioCredential,
    status: &TerrakioCredentialStatus,
) -> Result<(), Error> {
    write_status_if(ctx, cr, status, None).await
}

/// Writes the status; with `unchanged_since`, only if the credential is still at that
/// resourceVersion, so that of two processes that both believe they may rotate, only one gets
/// its journal entry in (the other is refused with a conflict and generates nothing).
async fn write_status_if(
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
        publish(ctx, cr, EventType::Normal, "Rotated", "Rotate", note).await;
    }
    if !synced.restarted.is_empty() {
        let note = format!("Restarted {} for key {fp}", synced.restarted.join(", "));
        tracing::info!(%namespace, %name, fingerprint = %fp, outcome = "Restarted", "{note}");
        publish(ctx, cr, EventType::Normal, "Restarted", "Restart", note).await;
    }
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
