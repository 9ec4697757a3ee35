//! End to end, on a real kube-apiserver, kube-controller-manager and etcd, with the operator
//! running as its own process against a fake Terrakio.

mod support;

use std::time::Duration;

use fake_terrakio::{Endpoint, Fault};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use terrakio_operator::sensitive::fingerprint_of;

use support::{World, data_endpoint_accepts, key_in, ready, wait_for, wait_ready};

const SYNC: Duration = Duration::from_secs(10);
const EMAIL: &str = "geo@example.com";
const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn crd_is_established_and_invalid_specs_are_refused() {
    let client = support::client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get("terrakiocredentials.terrak.io").await.unwrap();
    let established = crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "CRD not Established");

    // Raw objects, so that specs the Rust types could not even express reach the API server.
    let gvk = GroupVersionKind::gvk("terrak.io", "v1alpha1", "TerrakioCredential");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "terrakiocredentials");
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
    let cases = [
        ("no login Secret reference", json!({})),
        (
            "ftp endpoint",
            json!({"endpoint": "ftp://x", "loginSecretRef": {"name": "l"}}),
        ),
        (
            "refresh interval not a duration",
            json!({"loginSecretRef": {"name": "l"}, "refreshInterval": "soon"}),
        ),
        (
            "target key with a space",
            json!({"loginSecretRef": {"name": "l"}, "target": {"key": "A KEY"}}),
        ),
        (
            "login Secret name not a DNS name",
            json!({"loginSecretRef": {"name": "Login_Secret"}}),
        ),
    ];
    for (i, (name, spec)) in cases.into_iter().enumerate() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "terrak.io/v1alpha1",
            "kind": "TerrakioCredential",
            "metadata": { "name": format!("invalid-{i}") },
            "spec": spec,
        }))
        .unwrap();
        match api.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 422, "{name}: {status:?}"),
            other => panic!("{name}: expected a 422 refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_credential_becomes_a_working_key_in_a_secret() {
    let mut world = World::new("first-sync").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;

    let took = wait_for(SYNC, "target Secret with a key", || async {
        key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
            .await
            .is_some()
    })
    .await;
    eprintln!("target Secret appeared after {took:?}");
    let key = key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
        .await
        .unwrap();
    assert_eq!(data_endpoint_accepts(&world.fake, &key).await, (true, true));
    assert_eq!(
        data_endpoint_accepts(&world.fake, "tk_not_a_key").await,
        (false, false)
    );

    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    let status = world
        .credentials()
        .get("geo")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        status.key_fingerprint.as_deref(),
        Some(fingerprint_of(key.as_bytes()).as_str())
    );
    assert_eq!(status.secret_name.as_deref(), Some("geo"));
    assert!(status.last_sync_time.is_some());
    assert_eq!(status.observed_generation, Some(1));

    let secret = world.secrets().get("geo").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let labels = secret.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("terrakio-operator")
    );
    let owner = &secret.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("TerrakioCredential", "geo", Some(true))
    );

    // The account had no key: exactly one was generated.
    assert_eq!(world.fake.calls(Endpoint::GenerateKey), 1);
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn an_existing_key_is_adopted_without_generating() {
    let mut world = World::new("adopt").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    let existing = world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;

    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    assert_eq!(
        key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
            .await
            .as_deref(),
        Some(existing.as_str())
    );
    assert_eq!(world.fake.calls(Endpoint::GenerateKey), 0);
    assert!(
        world.fake.data_accepts(&existing),
        "adopting must not rotate the key"
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_wrong_password_fails_politely_and_heals_when_fixed() {
    let mut world = World::new("wrong-password").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world
        .login_secret(&ns, "login", EMAIL, "not the password")
        .await;
    world.credential(&ns, "geo", world.spec("1h")).await;

    wait_ready(&world.credentials(), "geo", "LoginFailed", SYNC).await;
    let (_, _, message) = ready(&world.credentials(), "geo").await.unwrap();
    assert!(message.contains("refused the login"), "{message}");
    assert!(world.secrets().get_opt("geo").await.unwrap().is_none());

    // Backoff, not a hot loop: a handful of attempts in a minute.
    let before = world.fake.calls(Endpoint::Login);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let attempts = world.fake.calls(Endpoint::Login) - before;
    eprintln!("login attempts in 60 s with a wrong password: {attempts} (+{before} before)");
    assert!(
        attempts + before <= 6,
        "{attempts} login attempts in 60 s after {before}"
    );
    assert!(world.secrets().get_opt("geo").await.unwrap().is_none());

    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    let took = wait_for(SYNC, "healed after fixing the password", || async {
        matches!(ready(&world.credentials(), "geo").await, Some((s, _, _)) if s == "True")
    })
    .await;
    eprintln!("healed {took:?} after the login Secret was fixed");
    assert!(
        key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
            .await
            .is_some()
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_missing_login_secret_is_reported_and_heals_when_created() {
    let mut world = World::new("missing-login").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.credential(&ns, "geo", world.spec("1h")).await;

    wait_ready(&world.credentials(), "geo", "LoginSecretNotFound", SYNC).await;
    let (_, _, message) = ready(&world.credentials(), "geo").await.unwrap();
    assert!(
        message.contains("\"login\""),
        "message names the Secret: {message}"
    );

    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    assert!(
        key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
            .await
            .is_some()
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_login_secret_without_a_password_key_is_invalid() {
    let world = World::new("invalid-login").await;
    let ns = world.namespace.clone();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "login" },
        "stringData": { "email": EMAIL },
    }))
    .unwrap();
    world
        .secrets()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    world.credential(&ns, "geo", world.spec("1h")).await;

    wait_ready(&world.credentials(), "geo", "LoginSecretInvalid", SYNC).await;
    let (_, _, message) = ready(&world.credentials(), "geo").await.unwrap();
    assert!(
        message.contains("\"password\""),
        "message names the data key: {message}"
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_deleted_or_edited_secret_is_restored_without_generating() {
    let mut world = World::new("restore").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    let key = key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
        .await
        .unwrap();

    world
        .secrets()
        .delete("geo", &DeleteParams::default())
        .await
        .unwrap();
    let took = wait_for(SYNC, "deleted Secret restored", || async {
        key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
            .await
            .as_deref()
            == Some(key.as_str())
    })
    .await;
    eprintln!("deleted Secret restored after {took:?}");

    let edit = json!({ "data": { "TERRAKIO_API_KEY": "ZWRpdGVk" } });
    world
        .secrets()
        .patch("geo", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    wait_for(SYNC, "edited Secret restored", || async {
        key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
            .await
            .as_deref()
            == Some(key.as_str())
    })
    .await;

    assert_eq!(
        world.fake.calls(Endpoint::GenerateKey),
        1,
        "restoring must not generate"
    );
    assert!(world.fake.data_accepts(&key));
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn deleting_the_credential_deletes_its_secret() {
    let mut world = World::new("garbage-collection").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;

    world
        .credentials()
        .delete("geo", &DeleteParams::default())
        .await
        .unwrap();
    let took = wait_for(
        Duration::from_secs(120),
        "Secret garbage-collected",
        || async { world.secrets().get_opt("geo").await.unwrap().is_none() },
    )
    .await;
    eprintln!("Secret garbage-collected {took:?} after the credential was deleted");
    assert!(
        world.secrets().get_opt("login").await.unwrap().is_some(),
        "login Secret kept"
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn syncs_keep_working_across_token_expiry() {
    let mut world = World::new("token-expiry").await;
    let ns = world.namespace.clone();
    world.fake.set_token_lifetime(Duration::from_secs(5));
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("5s")).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;

    // Refresh every 5 s for 22 s with 5 s tokens: every refresh outlives the last token.
    let mut sync_times = std::collections::BTreeSet::new();
    for _ in 0..44 {
        let cr = world.credentials().get("geo").await.unwrap();
        let status = cr.status.unwrap();
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            ready.status, "True",
            "lost Ready: {} {}",
            ready.reason, ready.message
        );
        sync_times.insert(status.last_sync_time.unwrap().0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        sync_times.len() >= 4,
        "only {} refreshes in 22 s",
        sync_times.len()
    );
    assert!(
        world.fake.calls(Endpoint::Login) >= 3,
        "tokens were renewed"
    );
    assert_eq!(world.fake.calls(Endpoint::GenerateKey), 1);
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_credential_that_knows_only_the_email_never_gets_the_key() {
    let mut world = World::with_namespaces("sessions", &["intruder"]).await;
    let ns = world.namespace.clone();
    let intruder = format!("{ns}-intruder");
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;

    world
        .login_secret(&intruder, "login", EMAIL, "a guess")
        .await;
    world.credential(&intruder, "geo", world.spec("1h")).await;
    wait_ready(&world.credentials_in(&intruder), "geo", "LoginFailed", SYNC).await;
    assert!(
        world
            .secrets_in(&intruder)
            .get_opt("geo")
            .await
            .unwrap()
            .is_none()
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn the_operator_output_at_trace_level_holds_no_secret() {
    let mut world = World::new("no-leaks").await;
    let ns = world.namespace.clone();
    world.fake.set_token_lifetime(Duration::from_secs(3));
    world.fake.add_account(EMAIL, PASSWORD);
    // A failed login, a generate, a restore and several token renewals: every path that
    // handles a secret.
    world
        .login_secret(&ns, "login", EMAIL, "wrong password 1")
        .await;
    world.credential(&ns, "geo", world.spec("5s")).await;
    wait_ready(&world.credentials(), "geo", "LoginFailed", SYNC).await;
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    world
        .secrets()
        .delete("geo", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(SYNC, "restored", || async {
        key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
            .await
            .is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;

    let output = world.operator.output();
    assert!(
        output.contains("TRACE"),
        "the operator did not log at trace level"
    );
    assert!(world.fake.issued_tokens().len() >= 2);
    assert_eq!(world.fake.issued_keys().len(), 1);
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn the_deployed_service_account_has_every_permission_the_operator_needs() {
    let kubeconfig = support::deployed_service_account();
    let mut world = World::as_identity("least-privilege", kubeconfig).await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;

    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    world
        .secrets()
        .delete("geo", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(SYNC, "restored by the ServiceAccount", || async {
        key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
            .await
            .is_some()
    })
    .await;

    let events = support::kubectl(
        &support::control_plane().kubeconfig,
        &[
            "get",
            "events",
            "-n",
            &ns,
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    )
    .unwrap();
    for reason in ["Generated", "Synced", "Restored"] {
        assert!(events.contains(reason), "no {reason} Event in {events:?}");
    }
    let forbidden = world.operator.output().contains("forbidden");
    assert!(
        !forbidden,
        "the operator was refused something: see {}",
        world.operator.log.display()
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn renaming_the_target_moves_the_key_and_removes_the_old_secret() {
    let mut world = World::new("rename").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    let key = key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
        .await
        .unwrap();

    let rename = json!({ "spec": { "target": { "name": "geo-key", "key": "API_KEY" } } });
    world
        .credentials()
        .patch("geo", &PatchParams::default(), &Patch::Merge(&rename))
        .await
        .unwrap();
    wait_for(SYNC, "key under the new name", || async {
        key_in(&world.secrets(), "geo-key", "API_KEY")
            .await
            .as_deref()
            == Some(key.as_str())
    })
    .await;
    wait_for(SYNC, "old Secret removed", || async {
        world.secrets().get_opt("geo").await.unwrap().is_none()
    })
    .await;
    let status = world
        .credentials()
        .get("geo")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.secret_name.as_deref(), Some("geo-key"));
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(world.fake.calls(Endpoint::GenerateKey), 1);
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_foreign_secret_is_never_touched() {
    let mut world = World::new("conflict").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    let foreign: Secret = serde_json::from_value(json!({
        "metadata": { "name": "geo" },
        "stringData": { "TERRAKIO_API_KEY": "hand-copied" },
    }))
    .unwrap();
    world
        .secrets()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    world.credential(&ns, "geo", world.spec("1h")).await;

    wait_ready(&world.credentials(), "geo", "TargetConflict", SYNC).await;
    assert_eq!(
        key_in(&world.secrets(), "geo", "TERRAKIO_API_KEY")
            .await
            .as_deref(),
        Some("hand-copied")
    );
    assert_eq!(
        world.fake.calls(Endpoint::Login),
        0,
        "no Terrakio call for a conflict"
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn outages_and_rate_limits_are_reported_and_recover() {
    let mut world = World::new("outage").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;

    // Terrakio down: every view key answers 503 until the faults are cleared.
    world.fake.inject(Fault {
        status: Some(503),
        times: 10_000,
        ..Fault::on(Endpoint::ViewKey)
    });
    world.credential(&ns, "geo", world.spec("1h")).await;
    wait_ready(&world.credentials(), "geo", "TerrakioUnavailable", SYNC).await;
    let (_, _, message) = ready(&world.credentials(), "geo").await.unwrap();
    assert!(message.contains("HTTP 503"), "{message}");
    world.fake.clear_faults();
    wait_ready(
        &world.credentials(),
        "geo",
        "KeySynced",
        Duration::from_secs(30),
    )
    .await;

    // Rate limited at login with a Retry-After: reported, and no retry before it elapses.
    world.fake.inject(Fault {
        status: Some(429),
        retry_after: Some("20".into()),
        times: 10_000,
        ..Fault::on(Endpoint::Login)
    });
    world
        .login_secret(&ns, "login", EMAIL, "rotated password")
        .await;
    world.fake.set_password(EMAIL, "rotated password");
    wait_ready(&world.credentials(), "geo", "RateLimited", SYNC).await;
    let limited_logins = world.fake.calls(Endpoint::Login);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        world.fake.calls(Endpoint::Login),
        limited_logins,
        "retried before Retry-After"
    );
    world.fake.clear_faults();
    wait_ready(
        &world.credentials(),
        "geo",
        "KeySynced",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(world.fake.calls(Endpoint::GenerateKey), 1);
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn credentials_of_one_login_share_one_session() {
    let mut world = World::new("shared-session").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    for name in ["geo-a", "geo-b", "geo-c"] {
        world.credential(&ns, name, world.spec("1h")).await;
    }
    for name in ["geo-a", "geo-b", "geo-c"] {
        wait_ready(&world.credentials(), name, "KeySynced", SYNC).await;
    }
    assert_eq!(
        world.fake.calls(Endpoint::Login),
        1,
        "one login for three credentials"
    );
    assert_eq!(world.fake.calls(Endpoint::ViewKey), 3);
    world.assert_no_secrets_in_output();
}
