//! The doing: one reconcile of one `TerrakioCredential`.
//!
//! It gathers what [`crate::decision`] needs, follows the plan (getting the key through
//! [`crate::keys`], writing the Secret with server-side apply, restarting consumers), then
//! records the outcome with [`crate::status`] and [`crate::report`]. Failures are recorded the
//! same way and retried with exponential backoff and jitter by [`error_policy`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};

use crate::account::{AccountKey, Accounts};
use crate::conditions::{self};
use crate::credential::{
    PendingRotation, TerrakioCredential, TerrakioCredentialStatus, ValidSpec, validate,
};
use crate::decision::{self, Observation, Plan, SyncReason, TargetState, Trigger, Write};
use crate::deletion::{ensure_finalizer, release_on_deletion};
use crate::error::Error;
use crate::keys::{current_or_new_key, rotate, view_key, whole_seconds};
use crate::login_secret;
use crate::metrics::Metrics;
use crate::report::{publish, report_failure, report_success};
use crate::restart;
use crate::schedule;
use crate::sensitive::ApiKey;
use crate::session::{Login, Sessions};
use crate::status::{status_after_failure, status_after_success, write_status};
use crate::target;
use crate::terrakio::TerrakioClient;

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
    /// Set when running with leader election.
    pub fence: Option<Fence>,
    memory: Mutex<HashMap<ObjectRef<TerrakioCredential>, Memory>>,
    wakers: Mutex<Vec<Waker>>,
}

/// Leader election's last word before a write: does this process still hold the Lease? A
/// leader paused (by a stalled node, a debugger, SIGSTOP) may resume after its Lease was taken
/// and before it notices; checking the Lease itself before each generate and Secret write keeps
/// such a leader from acting beside its successor.
pub struct Fence {
    pub leases: Api<k8s_openapi::api::coordination::v1::Lease>,
    pub lease: String,
    pub identity: String,
}

impl Fence {
    async fn check(&self) -> Result<(), Error> {
        let lease = self
            .leases
            .get(&self.lease)
            .await
            .map_err(|source| Error::Kubernetes {
                step: "checking the Lease",
                source,
            })?;
        let spec = lease.spec.unwrap_or_default();
        let holder = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let valid_until = spec
            .renew_time
            .map(|t| t.0)
            .zip(spec.lease_duration_seconds)
            .map(|(renewed, seconds)| {
                renewed + jiff::SignedDuration::from_secs(i64::from(seconds))
            });
        if holder && valid_until.is_some_and(|until| until > Timestamp::now()) {
            Ok(())
        } else {
            Err(Error::NotLeading)
        }
    }
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
            fence: None,
            memory: Mutex::default(),
            wakers: Mutex::default(),
        }
    }

    /// Fails with [`Error::NotLeading`] when leader election is on and the Lease is not held.
    pub(crate) async fn still_leading(&self) -> Result<(), Error> {
        match &self.fence {
            Some(fence) => fence.check().await,
            None => Ok(()),
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

    fn succeeded(&self, key: &ObjectRef<TerrakioCredential>, synced: &Synced) {
        self.with_memory(key, |m| {
            m.failures = None;
            if synced.login_version.is_some() {
                m.login_version = synced.login_version.clone();
            }
            if let Some(others) = &synced.new_rotators {
                m.reported_rotators = others.clone();
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
pub(crate) struct Synced {
    pub(crate) secret_name: String,
    pub(crate) fingerprint: String,
    /// Terrakio was asked and confirmed the key (false when nothing was due).
    pub(crate) confirmed: bool,
    pub(crate) generated: bool,
    pub(crate) write: Option<Write>,
    pub(crate) login_version: Option<String>,
    pub(crate) requeue_after: Duration,
    /// Set when the key was replaced: by this credential, or by another of the account.
    pub(crate) rotation: Option<Rotation>,
    /// No Terrakio call and no write were made (`spec.suspend`).
    pub(crate) suspended: bool,
    /// The status fields derived from the spec's rotation policy.
    pub(crate) next_rotation: Option<Timestamp>,
    pub(crate) last_rotation: Option<Timestamp>,
    /// Workloads restarted because the key changed.
    pub(crate) restarted: Vec<String>,
    /// The resourceVersion of the Secret this reconcile wrote, if it wrote it.
    pub(crate) secret_version: Option<String>,
    /// Other credentials of the account with a rotation policy, when that set is news.
    pub(crate) new_rotators: Option<Vec<ObjectRef<TerrakioCredential>>>,
}

/// A key replacement.
#[derive(Clone, Debug)]
pub(crate) struct Rotation {
    pub(crate) at: Timestamp,
    /// This credential generated the key (false: it followed another credential's rotation).
    pub(crate) by_self: bool,
    /// The terrak.io/rotate value that asked for it.
    pub(crate) request: Option<String>,
}

/// What a failed reconcile must still record: a rotation it started.
#[derive(Default)]
pub(crate) struct Journal {
    pub(crate) pending: Option<PendingRotation>,
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
            ctx.succeeded(&key, &synced);
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
        Err(err) if err.is_conflict() || matches!(err, Error::NotLeading) => {
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
        secret_version: None,
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
        // Remembered as reported only once the reconcile succeeds and the Event is out.
        done.new_rotators = ctx.with_memory(&key, |m| {
            (m.reported_rotators != shared.other_rotators).then(|| shared.other_rotators.clone())
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
            // The rotation counts from when it started, however it is finished.
            let resumed = Rotation {
                at: pending.started_at.0,
                by_self: true,
                request: pending.request.clone(),
            };
            match (rotated, unchanged) {
                (Some(api_key), _) => {
                    tracing::info!(namespace = %namespace, name = %cr.name_any(), fingerprint = %api_key.fingerprint(), "a rotation interrupted earlier had generated its key; delivering it");
                    (api_key, Some(resumed))
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
                    (api_key, Some(resumed))
                }
            }
        }
        Plan::Rotate(trigger) => {
            let lock = ctx.accounts.rotation_lock(&account);
            let _held = lock.lock().await;
            let already = match &trigger {
                // The same rule as the plan's, now that no other rotation can be under way.
                Trigger::Scheduled { .. } => {
                    let base = Some(last_rotation.unwrap_or(anchor));
                    ctx.accounts
                        .rotated_at(&account)
                        .filter(|at| decision::rotated_by_another(Some(*at), base))
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
        ctx.still_leading().await?;
        done.secret_version = apply_secret(&secrets, cr, &spec, &api_key).await?;
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

async fn apply_secret(
    secrets: &Api<Secret>,
    cr: &TerrakioCredential,
    spec: &ValidSpec,
    key: &ApiKey,
) -> Result<Option<String>, Error> {
    let secret = target::desired(cr, spec, key);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    secrets
        .patch(&spec.target_name, &params, &Patch::Apply(&secret))
        .await
        .map(|written| written.metadata.resource_version)
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
