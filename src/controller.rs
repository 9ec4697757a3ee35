//! Wiring: which watches trigger a reconcile, for which namespaces.
//!
//! - Credentials trigger on a change of generation or annotations, not on the operator's own
//!   status writes, which would otherwise wake a failing credential at once.
//! - The Secrets the operator manages (found by label) trigger their owner.
//! - Every other Secret is watched by metadata only, never its data, so that a change to a
//!   login Secret wakes the credentials that reference it within seconds.
//! - A credential that sees a new key wakes the other credentials of the same account.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::Predicate;
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, ResourceExt};

use crate::credential::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, TerrakioCredential};
use crate::reconcile::{self, Context};
use crate::server::Health;

/// Where the operator looks: the whole cluster, or a fixed set of namespaces.
#[derive(Clone, Debug)]
pub enum Scope {
    Cluster,
    Namespaces(Vec<String>),
}

impl Scope {
    fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            Scope::Cluster => vec![Api::all(client.clone())],
            Scope::Namespaces(names) => names
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect(),
        }
    }
}

/// Fails early, with a message that says what to do, when the CRD is not installed or the
/// operator may not list credentials.
pub async fn preflight(client: &Client, scope: &Scope) -> Result<(), String> {
    for api in scope.apis::<TerrakioCredential>(client) {
        if let Err(err) = api.list(&ListParams::default().limit(1)).await {
            return Err(match &err {
                kube::Error::Api(status) if status.code == 404 => {
                    "the TerrakioCredential CRD is not installed; run `kubectl apply -f crds/`"
                        .to_string()
                }
                _ => format!("cannot list TerrakioCredentials: {err}"),
            });
        }
    }
    Ok(())
}

/// Runs one controller per namespace in scope (one for the whole cluster by default) until a
/// shutdown signal arrives.
pub async fn run(ctx: Arc<Context>, scope: Scope, concurrency: u16, health: Health) {
    let client = ctx.client.clone();
    let credentials = scope.apis::<TerrakioCredential>(&client);
    let secrets = scope.apis::<Secret>(&client);
    let namespaces: Vec<Option<String>> = match &scope {
        Scope::Cluster => vec![None],
        Scope::Namespaces(names) => names.iter().cloned().map(Some).collect(),
    };
    let apis = credentials.into_iter().zip(secrets).zip(namespaces);
    // Ready once every controller's cache of credentials is filled.
    let unsynced = Arc::new(std::sync::atomic::AtomicUsize::new(namespaces_len(&scope)));
    let controllers = apis.map(|((credentials, secrets), namespace)| {
        let wakeups = ctx.wakeups(namespace);
        let (unsynced, health) = (unsynced.clone(), health.clone());
        let synced = move || {
            if unsynced.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                tracing::info!("caches synced; ready");
                health.set_ready(true);
            }
        };
        controller(
            credentials,
            secrets,
            wakeups,
            synced,
            ctx.clone(),
            concurrency,
        )
    });
    futures::future::join_all(controllers).await;
}

async fn controller(
    credentials: Api<TerrakioCredential>,
    secrets: Api<Secret>,
    wakeups: futures::channel::mpsc::UnboundedReceiver<ObjectRef<TerrakioCredential>>,
    synced: impl FnOnce() + Send + 'static,
    ctx: Arc<Context>,
    concurrency: u16,
) {
    let (reader, writer) = reflector::store();
    let mut synced = Some(synced);
    let deleted = ctx.clone();
    let triggers = watcher(credentials, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| match event {
            // The first complete list fills the cache.
            watcher::Event::InitDone => {
                if let Some(synced) = synced.take() {
                    synced();
                }
            }
            // A credential gone for good leaves nothing to remember.
            watcher::Event::Delete(cr) => deleted.forget_deleted(cr),
            _ => {}
        })
        .touched_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::finalizers)
                .combine(deleting),
            Default::default(),
        );

    let managed =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    // Metadata only: the data of Secrets the operator does not manage never reaches it.
    // (`watcher` on an `Api<PartialObjectMeta<_>>` still lists full objects in this version of
    // kube; `metadata_watcher` asks the API server for metadata only.)
    #[allow(deprecated)]
    let login_secrets =
        kube::runtime::metadata_watcher(secrets.clone(), watcher::Config::default())
            .default_backoff()
            .touched_objects();
    let store = reader.clone();

    Controller::for_stream(triggers, reader)
        .owns(secrets, managed)
        .watches_stream(login_secrets, move |secret| referencing(&store, &secret))
        // Credentials of the same account, when one of them saw a new key.
        .reconcile_on(wakeups)
        .with_config(controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                match err {
                    controller::Error::ReconcilerFailed(..) => {} // logged by the reconciler
                    other => tracing::debug!(error = %other, "controller event"),
                }
            }
        })
        .await;
}

fn namespaces_len(scope: &Scope) -> usize {
    match scope {
        Scope::Cluster => 1,
        Scope::Namespaces(names) => names.len(),
    }
}

/// Lets a deletion through the predicate filter, so a finalizer is handled at once.
fn deleting(cr: &TerrakioCredential) -> Option<u64> {
    cr.metadata.deletion_timestamp.as_ref().map(|_| 1)
}

/// The credentials whose login Secret or CA bundle Secret is `secret`.
fn referencing(
    store: &Store<TerrakioCredential>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<TerrakioCredential>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .iter()
        .filter(|cr| {
            let ca = cr
                .spec
                .ca_bundle_secret_ref
                .as_ref()
                .map(|r| r.name.as_str());
            cr.namespace() == namespace
                && (cr.spec.login_secret_ref.name == name || ca == Some(name.as_str()))
        })
        .map(|cr| ObjectRef::from_obj(&**cr))
        .collect()
}
