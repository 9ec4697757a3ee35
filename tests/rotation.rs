//! Rotation end to end, on the real control plane with the operator as its own process:
//! schedules, on-demand requests, crashes, shared accounts, target policies and restarts.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use fake_terrakio::{Endpoint, Fault};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use terrakio_operator::sensitive::fingerprint_of;

use support::{World, key_in, ready, wait_for, wait_ready};

const SYNC: Duration = Duration::from_secs(10);
const EMAIL: &str = "rotate@example.com";
const PASSWORD: &str = "rotation password";
const KEY: &str = "TERRAKIO_API_KEY";

fn with_rotation(world: &World, rotation: serde_json::Value) -> serde_json::Value {
    let mut spec = world.spec("1h");
    spec["rotation"] = rotation;
    spec
}

async fn annotate(world: &World, namespace: &str, name: &str, value: &str) {
    let patch = json!({ "metadata": { "annotations": { "terrak.io/rotate": value } } });
    world
        .credentials_in(namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn status(
    world: &World,
    name: &str,
) -> terrakio_operator::credential::TerrakioCredentialStatus {
    world
        .credentials()
        .get(name)
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

#[tokio::test]
async fn an_interval_rotates_again_and_again_and_each_old_key_dies() {
    let mut world = World::new("interval").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world
        .credential(
            &ns,
            "geo",
            with_rotation(&world, json!({ "interval": "10s" })),
        )
        .await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;

    let mut keys = vec![key_in(&world.secrets(), "geo", KEY).await.unwrap()];
    let mut rotation_times = Vec::new();
    for round in 1..=3 {
        let previous = keys.last().unwrap().clone();
        wait_for(
            Duration::from_secs(25),
            &format!("rotation {round}"),
            || async {
                key_in(&world.secrets(), "geo", KEY)
                    .await
                    .is_some_and(|k| k != previous)
            },
        )
        .await;
        let key = key_in(&world.secrets(), "geo", KEY).await.unwrap();
        assert!(
            world.fake.data_accepts(&key),
            "round {round}: the new key works"
        );
        assert!(
            !world.fake.data_accepts(&previous),
            "round {round}: the old key is refused"
        );
        wait_for(SYNC, "status records the rotation", || async {
            status(&world, "geo").await.key_fingerprint == Some(fingerprint_of(key.as_bytes()))
        })
        .await;
        let st = status(&world, "geo").await;
        let last = st.last_rotation_time.expect("lastRotationTime").0;
        let next = st.next_rotation_time.expect("nextRotationTime").0;
        assert_eq!(
            next.duration_since(last).as_secs(),
            10,
            "next = last + interval"
        );
        rotation_times.push(last);
        keys.push(key);
    }
    // Each rotation has its own Event naming its own key (not one folded series).
    let notes = support::kubectl(
        &support::control_plane().kubeconfig,
        &[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "reason=Rotated",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    )
    .unwrap();
    for key in &keys[1..] {
        let fingerprint = fingerprint_of(key.as_bytes());
        assert!(
            notes.contains(&fingerprint),
            "no Rotated Event for {fingerprint}: {notes}"
        );
    }
    assert!(
        rotation_times.windows(2).all(|w| w[0] < w[1]),
        "times advance: {rotation_times:?}"
    );
    let gaps: Vec<i64> = rotation_times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs())
        .collect();
    assert!(
        gaps.iter().all(|g| (9..=13).contains(g)),
        "about 10 s apart: {gaps:?}"
    );
    // One generate at first sync (the account had no key) plus one per rotation so far.
    let generates = world.fake.calls(Endpoint::GenerateKey);
    assert!(
        (4..=5).contains(&generates),
        "{generates} generate calls for 3 rotations"
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_cron_schedule_with_a_time_zone_rotates_at_the_tick() {
    let mut world = World::new("cron").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    let rotation = json!({ "schedule": "* * * * *", "timeZone": "Asia/Kolkata" });
    world
        .credential(&ns, "geo", with_rotation(&world, rotation))
        .await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;

    // Every minute, in a zone half an hour off UTC: the tick is still on a whole minute.
    let next = status(&world, "geo")
        .await
        .next_rotation_time
        .expect("nextRotationTime")
        .0;
    let created = world
        .credentials()
        .get("geo")
        .await
        .unwrap()
        .metadata
        .creation_timestamp
        .unwrap()
        .0;
    assert_eq!(next.as_second() % 60, 0, "a whole minute: {next}");
    assert!(
        next > created && next.duration_since(created).as_secs() <= 60,
        "{created} -> {next}"
    );
    assert_eq!(world.fake.calls(Endpoint::GenerateKey), 0);

    let wait = Duration::try_from(next.duration_since(jiff::Timestamp::now())).unwrap_or_default();
    wait_for(wait + SYNC, "the rotation at the tick", || async {
        world.fake.calls(Endpoint::GenerateKey) == 1
    })
    .await;
    let rotated = status(&world, "geo").await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    let last = rotated.last_rotation_time.unwrap().0;
    assert!(
        last >= next && last.duration_since(next).as_secs() < 10,
        "rotated at {last}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        world.fake.calls(Endpoint::GenerateKey),
        1,
        "one rotation for one tick"
    );
    let key = key_in(&world.secrets(), "geo", KEY).await.unwrap();
    assert!(world.fake.data_accepts(&key));
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn missed_ticks_while_stopped_cause_one_catch_up_rotation() {
    let mut world = World::new("catch-up").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world
        .credential(
            &ns,
            "geo",
            with_rotation(&world, json!({ "interval": "10s" })),
        )
        .await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;

    world.kill_operator();
    let before = world.fake.calls(Endpoint::GenerateKey);
    // Three ticks pass with no operator.
    tokio::time::sleep(Duration::from_secs(32)).await;
    assert_eq!(world.fake.calls(Endpoint::GenerateKey), before);

    world.start_operator();
    wait_for(SYNC, "the catch-up rotation", || async {
        world.fake.calls(Endpoint::GenerateKey) == before + 1
    })
    .await;
    // The next one is due 10 s after the catch-up, not at once for each missed tick.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        world.fake.calls(Endpoint::GenerateKey),
        before + 1,
        "one catch-up rotation"
    );
    let key = key_in(&world.secrets(), "geo", KEY).await.unwrap();
    assert!(world.fake.data_accepts(&key));
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn each_new_rotate_request_rotates_once() {
    let mut world = World::new("on-demand").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    assert_eq!(world.fake.calls(Endpoint::GenerateKey), 0);

    let mut seen = BTreeSet::new();
    seen.insert(key_in(&world.secrets(), "geo", KEY).await.unwrap());
    for (value, generates) in [("first", 1), ("second", 2), ("second", 2)] {
        annotate(&world, &ns, "geo", value).await;
        wait_for(SYNC, &format!("request {value:?} handled"), || async {
            status(&world, "geo").await.last_rotate_request.as_deref() == Some(value)
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            world.fake.calls(Endpoint::GenerateKey),
            generates,
            "after {value:?}"
        );
        let key = key_in(&world.secrets(), "geo", KEY).await.unwrap();
        assert!(world.fake.data_accepts(&key));
        seen.insert(key);
    }
    assert_eq!(seen.len(), 3, "two distinct requests, two new keys");

    // The subcommand sets a fresh value, as kubectl cert-manager renew does.
    let out = std::process::Command::new(support::OPERATOR)
        .args(["rotate", "geo", "-n", &ns])
        .env("KUBECONFIG", &support::control_plane().kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(SYNC, "rotate subcommand handled", || async {
        world.fake.calls(Endpoint::GenerateKey) == 3
    })
    .await;
    wait_for(SYNC, "new key delivered", || async {
        key_in(&world.secrets(), "geo", KEY)
            .await
            .is_some_and(|k| !seen.contains(&k))
    })
    .await;
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_crash_between_generate_and_write_delivers_the_key_without_generating_again() {
    let mut world = World::new("crash").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    let old = key_in(&world.secrets(), "geo", KEY).await.unwrap();

    // The fake rotates at once but holds the answer: the operator is killed while waiting.
    world.fake.inject(Fault {
        latency_ms: Some(60_000),
        after_effect: true,
        ..Fault::on(Endpoint::GenerateKey)
    });
    annotate(&world, &ns, "geo", "crash-test").await;
    wait_for(SYNC, "generate reached the fake", || async {
        world.fake.calls(Endpoint::GenerateKey) == 1
    })
    .await;
    let new = world.fake.current_key(EMAIL).unwrap();
    assert_ne!(new, old);
    world.kill_operator();
    assert_eq!(
        key_in(&world.secrets(), "geo", KEY).await.as_deref(),
        Some(old.as_str())
    );
    assert!(
        status(&world, "geo").await.pending_rotation.is_some(),
        "the rotation was journalled"
    );

    world.start_operator();
    wait_for(SYNC, "the generated key delivered", || async {
        key_in(&world.secrets(), "geo", KEY).await.as_deref() == Some(new.as_str())
    })
    .await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    let st = status(&world, "geo").await;
    assert!(st.pending_rotation.is_none());
    assert_eq!(st.last_rotate_request.as_deref(), Some("crash-test"));
    assert_eq!(
        world.fake.calls(Endpoint::GenerateKey),
        1,
        "exactly one generate"
    );
    assert!(world.fake.data_accepts(&new));
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn five_credentials_of_one_account_follow_every_rotation() {
    let mut world = World::with_namespaces("shared-account", &["other"]).await;
    let ns = world.namespace.clone();
    let other = format!("{ns}-other");
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    let members = [
        (&ns, "a"),
        (&ns, "b"),
        (&ns, "c"),
        (&other, "d"),
        (&other, "e"),
    ];
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.login_secret(&other, "login", EMAIL, PASSWORD).await;
    for (namespace, name) in members {
        let spec = if name == "a" {
            with_rotation(&world, json!({ "interval": "15s" }))
        } else {
            world.spec("1h")
        };
        world.credential(namespace, name, spec).await;
    }
    for (namespace, name) in members {
        wait_ready(&world.credentials_in(namespace), name, "KeySynced", SYNC).await;
    }

    for round in 1..=2u64 {
        wait_for(
            Duration::from_secs(30),
            &format!("rotation {round}"),
            || async { world.fake.calls(Endpoint::GenerateKey) == round },
        )
        .await;
        let current = world.fake.current_key(EMAIL).unwrap();
        let took = wait_for(SYNC, "all five Secrets hold the new key", || async {
            for (namespace, name) in members {
                if key_in(&world.secrets_in(namespace), name, KEY)
                    .await
                    .as_deref()
                    != Some(current.as_str())
                {
                    return false;
                }
            }
            true
        })
        .await;
        eprintln!("rotation {round}: all five Secrets updated within {took:?}");
    }
    assert_eq!(
        world.fake.calls(Endpoint::GenerateKey),
        2,
        "generates equal rotations"
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_key_changed_outside_the_operator_is_followed_within_a_refresh() {
    let mut world = World::with_namespaces("outside-change", &["other"]).await;
    let ns = world.namespace.clone();
    let other = format!("{ns}-other");
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.login_secret(&other, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "a", world.spec("10s")).await;
    world.credential(&other, "b", world.spec("1h")).await;
    wait_ready(&world.credentials(), "a", "KeySynced", SYNC).await;
    wait_ready(&world.credentials_in(&other), "b", "KeySynced", SYNC).await;

    // Someone generates a key by hand, outside the operator.
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/users/login", world.fake.url()))
        .json(&json!({ "email": EMAIL, "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let answer: serde_json::Value = http
        .post(format!("{}/users/generate_key", world.fake.url()))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outside = answer["apiKey"].as_str().unwrap().to_string();

    // a refreshes every 10 s; b (hourly) follows as soon as a has seen the new key.
    for (namespace, name) in [(&ns, "a"), (&other, "b")] {
        wait_for(
            Duration::from_secs(15),
            &format!("{name} follows"),
            || async {
                key_in(&world.secrets_in(namespace), name, KEY)
                    .await
                    .as_deref()
                    == Some(outside.as_str())
            },
        )
        .await;
    }
    assert_eq!(
        world.fake.calls(Endpoint::GenerateKey),
        1,
        "only the outside generate"
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn overwrite_adopts_a_foreign_secret_and_retain_keeps_it() {
    let mut world = World::new("target-policies").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    let foreign: Secret = serde_json::from_value(json!({
        "metadata": { "name": "geo", "labels": { "team": "geo" } },
        "stringData": { KEY: "hand-copied", "OTHER": "kept" },
    }))
    .unwrap();
    world
        .secrets()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();

    let mut spec = world.spec("1h");
    spec["target"] = json!({ "overwrite": true });
    spec["deletionPolicy"] = json!("Retain");
    world.credential(&ns, "geo", spec).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    let key = key_in(&world.secrets(), "geo", KEY).await.unwrap();
    assert_eq!(Some(key.clone()), world.fake.current_key(EMAIL));
    assert_eq!(
        key_in(&world.secrets(), "geo", "OTHER").await.as_deref(),
        Some("kept")
    );
    let cr = world.credentials().get("geo").await.unwrap();
    assert!(
        cr.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"terrak.io/retain-secret".to_string())
    );

    // Terrakio unreachable must not block the deletion.
    world.fake.inject(Fault {
        status: Some(503),
        times: 10_000,
        ..Default::default()
    });
    world
        .credentials()
        .delete("geo", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(SYNC, "credential deleted", || async {
        world.credentials().get_opt("geo").await.unwrap().is_none()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(45)).await; // longer than the garbage collector needs
    let secret = world.secrets().get("geo").await.expect("retained Secret");
    assert!(
        secret
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(key_in(&world.secrets(), "geo", KEY).await, Some(key));
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn restart_targets_restart_once_per_rotation_and_never_on_a_refresh() {
    let mut world = World::new("restarts").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "tiles" },
        "spec": {
            "selector": { "matchLabels": { "app": "tiles" } },
            "template": {
                "metadata": { "labels": { "app": "tiles" } },
                "spec": { "containers": [{ "name": "tiles", "image": "busybox",
                    "envFrom": [{ "secretRef": { "name": "geo" } }] }] }
            }
        }
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(world.client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let generation = || async {
        deployments
            .get("tiles")
            .await
            .unwrap()
            .metadata
            .generation
            .unwrap()
    };
    let initial = generation().await;

    let mut spec = world.spec("5s");
    spec["restartTargets"] = json!([{ "kind": "Deployment", "name": "tiles" }]);
    world.credential(&ns, "geo", spec).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;

    // 20 refreshes (5 s each would take 100 s; editing the login Secret forces one each time).
    for i in 0..20 {
        world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
        let patch = json!({ "metadata": { "labels": { "refresh": i.to_string() } } });
        world
            .secrets()
            .patch("login", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        generation().await,
        initial,
        "no restart without a key change"
    );
    let views = world.fake.calls(Endpoint::ViewKey);
    assert!(
        views >= 10,
        "the refreshes really asked Terrakio ({views} view calls)"
    );

    for (round, value) in ["one", "two"].into_iter().enumerate() {
        annotate(&world, &ns, "geo", value).await;
        wait_for(SYNC, "restarted after the rotation", || async {
            generation().await == initial + 1 + round as i64
        })
        .await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(
            generation().await,
            initial + 1 + round as i64,
            "one restart per rotation"
        );
    }
    let template = deployments
        .get("tiles")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template;
    let marked =
        template.metadata.unwrap().annotations.unwrap()["terrak.io/key-fingerprint"].clone();
    let key = key_in(&world.secrets(), "geo", KEY).await.unwrap();
    assert_eq!(marked, fingerprint_of(key.as_bytes()));
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn suspend_stops_every_call_and_write() {
    let mut world = World::new("suspend").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    let mut spec = world.spec("5s");
    spec["suspend"] = json!(true);
    world.credential(&ns, "geo", spec).await;
    wait_ready(&world.credentials(), "geo", "Suspended", SYNC).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(world.fake.calls(Endpoint::Login), 0);
    assert!(world.secrets().get_opt("geo").await.unwrap().is_none());

    let resume = json!({ "spec": { "suspend": false } });
    world
        .credentials()
        .patch("geo", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .unwrap();
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    assert!(key_in(&world.secrets(), "geo", KEY).await.is_some());
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn invalid_rotation_specs_are_refused_with_a_message_to_act_on() {
    let mut world = World::new("invalid-rotation").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;

    // Refused at admission by the schema and its CEL rules.
    let gvk = GroupVersionKind::gvk("terrak.io", "v1alpha1", "TerrakioCredential");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "terrakiocredentials");
    let api: Api<DynamicObject> = Api::namespaced_with(world.client.clone(), &ns, &resource);
    let refused = [
        (
            "both",
            json!({ "schedule": "* * * * *", "interval": "1h" }),
            "exactly one",
        ),
        ("neither", json!({}), "exactly one"),
        (
            "time zone without schedule",
            json!({ "interval": "1h", "timeZone": "UTC" }),
            "timeZone",
        ),
        (
            "interval not a duration",
            json!({ "interval": "monthly" }),
            "interval",
        ),
        (
            "schedule with 3 fields",
            json!({ "schedule": "0 3 *" }),
            "schedule",
        ),
    ];
    for (i, (name, rotation, want)) in refused.into_iter().enumerate() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "terrak.io/v1alpha1",
            "kind": "TerrakioCredential",
            "metadata": { "name": format!("refused-{i}") },
            "spec": { "loginSecretRef": { "name": "login" }, "rotation": rotation },
        }))
        .unwrap();
        match api.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{name}");
                assert!(status.message.contains(want), "{name}: {}", status.message);
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }

    // Accepted by the schema; only the operator can tell.
    let reported = [
        (
            "never fires",
            json!({ "schedule": "0 0 30 2 *" }),
            "spec.rotation.schedule",
        ),
        (
            "unknown zone",
            json!({ "schedule": "0 3 * * *", "timeZone": "Mars/Olympus" }),
            "spec.rotation.timeZone",
        ),
        (
            "too often",
            json!({ "interval": "1s" }),
            "spec.rotation.interval",
        ),
    ];
    for (i, (name, rotation, field)) in reported.into_iter().enumerate() {
        let cr = format!("reported-{i}");
        world
            .credential(&ns, &cr, with_rotation(&world, rotation))
            .await;
        wait_ready(&world.credentials(), &cr, "InvalidSpec", SYNC).await;
        let (_, _, message) = ready(&world.credentials(), &cr).await.unwrap();
        assert!(message.contains(field), "{name}: {message}");
    }
    assert_eq!(
        world.fake.calls(Endpoint::Login),
        0,
        "an invalid spec calls nobody"
    );
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn two_rotation_policies_on_one_account_say_so_and_never_double_rotate() {
    let mut world = World::new("two-policies").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    for name in ["a", "b"] {
        world
            .credential(
                &ns,
                name,
                with_rotation(&world, json!({ "interval": "15s" })),
            )
            .await;
    }
    for name in ["a", "b"] {
        wait_ready(&world.credentials(), name, "KeySynced", SYNC).await;
    }

    // Each names the other.
    wait_for(SYNC, "SharedRotationPolicy Events", || async {
        let events = support::kubectl(
            &support::control_plane().kubeconfig,
            &[
                "get",
                "events",
                "-n",
                &ns,
                "--field-selector",
                "reason=SharedRotationPolicy",
                "-o",
                "jsonpath={range .items[*]}{.involvedObject.name}:{.message}{\"\\n\"}{end}",
            ],
        )
        .unwrap_or_default();
        let a = events
            .lines()
            .any(|l| l.starts_with("a:") && l.contains(&format!("{ns}/b")));
        let b = events
            .lines()
            .any(|l| l.starts_with("b:") && l.contains(&format!("{ns}/a")));
        a && b
    })
    .await;

    // Over two periods, the account's key is replaced once per period, not once per policy.
    tokio::time::sleep(Duration::from_secs(33)).await;
    let generates = world.fake.calls(Endpoint::GenerateKey);
    assert!(
        (2..=3).contains(&generates),
        "{generates} rotations in 33 s with two 15 s policies"
    );
    let current = world.fake.current_key(EMAIL).unwrap();
    for name in ["a", "b"] {
        wait_for(SYNC, "both hold the current key", || async {
            key_in(&world.secrets(), name, KEY).await.as_deref() == Some(current.as_str())
        })
        .await;
    }
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn overwrite_never_takes_the_secret_of_another_credential() {
    let mut world = World::new("overwrite-contest").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    let mut first = world.spec("1h");
    first["target"] = json!({ "name": "shared" });
    world.credential(&ns, "first", first).await;
    wait_ready(&world.credentials(), "first", "KeySynced", SYNC).await;

    let mut second = world.spec("1h");
    second["target"] = json!({ "name": "shared", "overwrite": true });
    world.credential(&ns, "second", second).await;
    wait_ready(&world.credentials(), "second", "TargetConflict", SYNC).await;
    let owner = world
        .secrets()
        .get("shared")
        .await
        .unwrap()
        .metadata
        .owner_references
        .unwrap();
    assert_eq!(owner[0].name, "first");
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_deleted_credential_is_forgotten_by_its_account() {
    let mut world = World::new("forget-deleted").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    for name in ["a", "b"] {
        world
            .credential(
                &ns,
                name,
                with_rotation(&world, json!({ "interval": "720h" })),
            )
            .await;
        wait_ready(&world.credentials(), name, "KeySynced", SYNC).await;
    }
    world
        .credentials()
        .delete("b", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(SYNC, "b gone", || async {
        world.credentials().get_opt("b").await.unwrap().is_none()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    world
        .credential(
            &ns,
            "c",
            with_rotation(&world, json!({ "interval": "720h" })),
        )
        .await;
    wait_ready(&world.credentials(), "c", "KeySynced", SYNC).await;

    let notes = support::kubectl(
        &support::control_plane().kubeconfig,
        &[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "reason=SharedRotationPolicy,involvedObject.name=c",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    )
    .unwrap();
    assert!(notes.contains(&format!("{ns}/a")), "c names a: {notes}");
    assert!(
        !notes.contains(&format!("{ns}/b")),
        "c names the deleted b: {notes}"
    );
    world.assert_no_secrets_in_output();
}
