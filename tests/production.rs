//! Running it in production, proven on the real control plane with RBAC on: `deploy/` applied
//! for real, least privilege, leader election, metrics and probes, politeness towards
//! Terrakio, private CAs, and the `check` command.

mod support;

use std::time::Duration;

use fake_terrakio::{Endpoint, FakeTerrakio, Fault, TestCa};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use support::{Operator, World, control_plane, key_in, kubectl, ready, wait_for, wait_ready};

const SYNC: Duration = Duration::from_secs(10);
const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "production password";
const KEY: &str = "TERRAKIO_API_KEY";

fn can_i(user: &str, args: &[&str]) -> bool {
    let cp = control_plane();
    let mut all = vec!["auth", "can-i", "--as", user];
    all.extend_from_slice(args);
    // `can-i` exits 1 for "no"; only its answer matters here.
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(&all)
        .output()
        .expect("kubectl runs");
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

async fn http_get(address: &str, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{address}{path}"))
        .send()
        .await
        .expect("the operator answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The value of one metric line, e.g. `terrakio_operator_rotations_total{trigger="request"}`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn deploy_is_installed_for_real_and_grants_no_more_than_needed() {
    support::deployed_service_account();
    let cp = control_plane();
    let client = support::client().await;
    let deployment: Api<Deployment> = Api::namespaced(client.clone(), "terrakio-system");
    let spec = deployment
        .get("terrakio-operator")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    let container = &pod.containers[0];
    assert!(
        container
            .args
            .as_ref()
            .unwrap()
            .contains(&"--leader-election".to_string())
    );
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    assert!(container.liveness_probe.is_some() && container.readiness_probe.is_some());
    kubectl(
        &cp.kubeconfig,
        &[
            "get",
            "service",
            "-n",
            "terrakio-system",
            "terrakio-operator-metrics",
        ],
    )
    .unwrap();

    let operator = "system:serviceaccount:terrakio-system:terrakio-operator";
    let allowed: &[&[&str]] = &[
        &["get", "secrets", "-n", "default"],
        &[
            "patch",
            "terrakiocredentials.terrak.io/status",
            "-n",
            "default",
        ],
        &["create", "events.events.k8s.io", "-n", "default"],
        &[
            "update",
            "leases.coordination.k8s.io",
            "-n",
            "terrakio-system",
        ],
    ];
    let refused: &[&[&str]] = &[
        &["delete", "customresourcedefinitions.apiextensions.k8s.io"],
        &["delete", "namespaces"],
        &["create", "deployments.apps", "-n", "default"],
        &["delete", "deployments.apps", "-n", "default"],
        &["get", "configmaps", "-n", "default"],
        &["create", "pods", "-n", "default"],
        &["update", "leases.coordination.k8s.io", "-n", "kube-system"],
        &["escalate", "clusterroles.rbac.authorization.k8s.io"],
    ];
    for args in allowed {
        assert!(
            can_i(operator, args),
            "the operator should be allowed to {args:?}"
        );
    }
    for args in refused {
        assert!(
            !can_i(operator, args),
            "the operator must not be allowed to {args:?}"
        );
    }
}

#[tokio::test]
async fn the_namespaced_variant_works_in_its_namespaces_and_nowhere_else() {
    let cp = control_plane();
    let client = support::client().await;
    for ns in ["terrakio-team-a", "terrakio-team-b"] {
        let _ = kubectl(&cp.kubeconfig, &["create", "namespace", ns]);
    }
    kubectl(
        &cp.kubeconfig,
        &[
            "apply",
            "-k",
            &format!("{}/deploy/namespaced/", support::REPO),
        ],
    )
    .unwrap();
    let operator = "system:serviceaccount:terrakio-namespaced:terrakio-operator";
    assert!(can_i(
        operator,
        &["get", "secrets", "-n", "terrakio-team-a"]
    ));
    assert!(can_i(
        operator,
        &["patch", "secrets", "-n", "terrakio-team-b"]
    ));
    for refused in [
        &["get", "secrets", "-n", "default"][..],
        &["list", "secrets", "--all-namespaces"],
        &["get", "secrets", "-n", "terrakio-system"],
        &["list", "terrakiocredentials.terrak.io", "--all-namespaces"],
    ] {
        assert!(
            !can_i(operator, refused),
            "namespaced variant must not {refused:?}"
        );
    }

    // It really runs with only those Roles.
    let kubeconfig =
        support::service_account_kubeconfig("terrakio-namespaced", "terrakio-operator").unwrap();
    let fake = FakeTerrakio::start().await.unwrap();
    fake.add_account(EMAIL, PASSWORD);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "terrakio-team-a");
    let login: Secret = serde_json::from_value(json!({
        "metadata": { "name": "login" },
        "stringData": { "email": EMAIL, "password": PASSWORD },
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &login)
        .await
        .unwrap();
    let operator = Operator::start_with(
        &kubeconfig,
        &["terrakio-team-a", "terrakio-team-b"],
        "namespaced-variant",
        &[],
    );
    let credentials: Api<terrakio_operator::credential::TerrakioCredential> =
        Api::namespaced(client.clone(), "terrakio-team-a");
    let cr = serde_json::from_value(json!({
        "apiVersion": "terrak.io/v1alpha1",
        "kind": "TerrakioCredential",
        "metadata": { "name": "geo" },
        "spec": { "endpoint": fake.url(), "loginSecretRef": { "name": "login" } },
    }))
    .unwrap();
    credentials
        .create(&PostParams::default(), &cr)
        .await
        .unwrap();
    wait_ready(&credentials, "geo", "KeySynced", SYNC).await;
    assert!(key_in(&secrets, "geo", KEY).await.is_some());
    let output = operator.output();
    assert!(
        !output.contains("forbidden"),
        "refused something: {}",
        operator.log.display()
    );
}

#[tokio::test]
async fn one_leader_reconciles_and_a_standby_takes_over_without_a_second_rotation() {
    let mut world = World::new("leader-election").await;
    let ns = world.namespace.clone();
    world.kill_operator(); // this test runs its own pair
    let lease = [
        "--leader-election",
        "--leader-election-namespace",
        "terrakio-system",
    ];
    let lease: Vec<&str> = lease
        .into_iter()
        .chain(["--leader-election-lease", "e2e-leader-test"])
        .collect();
    let sa = support::deployed_service_account();
    let first = Operator::start_with(sa, &[&ns], "leader-a", &lease);
    wait_for(SYNC, "first replica leads", || async {
        first
            .output()
            .contains("leading: terrakio-operator starting")
    })
    .await;
    let second = Operator::start_with(sa, &[&ns], "leader-b", &lease);
    let (first_http, second_http) = (first.http_address().await, second.http_address().await);
    wait_for(SYNC, "standby ready", || async {
        http_get(&second_http, "/readyz").await.0 == 200
    })
    .await;
    let (_, body) = http_get(&second_http, "/readyz").await;
    assert!(body.contains("not leading"), "{body}");

    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.credential(&ns, "geo", world.spec("1h")).await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    wait_for(SYNC, "leader ready", || async {
        http_get(&first_http, "/readyz").await.0 == 200
    })
    .await;
    assert!(
        !second.output().contains("reconciling object"),
        "the standby reconciled"
    );

    // A rotation whose answer is held while the leader is killed.
    world.fake.inject(Fault {
        latency_ms: Some(30_000),
        after_effect: true,
        ..Fault::on(Endpoint::GenerateKey)
    });
    let patch = json!({ "metadata": { "annotations": { "terrak.io/rotate": "handover" } } });
    world
        .credentials()
        .patch("geo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for(SYNC, "generate sent", || async {
        world.fake.calls(Endpoint::GenerateKey) == 1
    })
    .await;
    let new_key = world.fake.current_key(EMAIL).unwrap();
    let mut first = first;
    let killed = std::time::Instant::now();
    first.kill();

    wait_for(Duration::from_secs(20), "the standby leads", || async {
        second
            .output()
            .contains("leading: terrakio-operator starting")
    })
    .await;
    eprintln!("handover took {:?}", killed.elapsed());
    wait_for(SYNC, "the rotated key delivered", || async {
        key_in(&world.secrets(), "geo", KEY).await.as_deref() == Some(new_key.as_str())
    })
    .await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    assert_eq!(
        world.fake.calls(Endpoint::GenerateKey),
        1,
        "the handover rotated once"
    );
    assert!(killed.elapsed() < Duration::from_secs(30));
    assert_eq!(http_get(&second_http, "/readyz").await.0, 200);
    for operator in [&first, &second] {
        let output = operator.output();
        assert!(!output.contains(PASSWORD) && !output.contains(&new_key));
    }
}

#[tokio::test]
async fn metrics_count_syncs_rotations_requests_and_states() {
    let mut world = World::new("metrics").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    let address = world.operator.http_address().await;
    assert_eq!(http_get(&address, "/healthz").await.0, 200);
    wait_for(SYNC, "ready", || async {
        http_get(&address, "/readyz").await.0 == 200
    })
    .await;

    let mut spec = world.spec("1h");
    spec["rotation"] = json!({ "interval": "720h" });
    world.credential(&ns, "geo", spec).await;
    world
        .credential(
            &ns,
            "broken",
            json!({ "endpoint": world.fake.url(), "loginSecretRef": { "name": "missing" } }),
        )
        .await;
    wait_ready(&world.credentials(), "geo", "KeySynced", SYNC).await;
    wait_ready(&world.credentials(), "broken", "LoginSecretNotFound", SYNC).await;
    let patch = json!({ "metadata": { "annotations": { "terrak.io/rotate": "metrics" } } });
    world
        .credentials()
        .patch("geo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for(SYNC, "rotation done", || async {
        world
            .credentials()
            .get("geo")
            .await
            .unwrap()
            .status
            .unwrap()
            .last_rotate_request
            .as_deref()
            == Some("metrics")
    })
    .await;

    wait_for(SYNC, "metrics settle", || async {
        let text = http_get(&address, "/metrics").await.1;
        metric(
            &text,
            "terrakio_operator_rotations_total{trigger=\"request\"}",
        ) == Some(1.0)
    })
    .await;
    let text = http_get(&address, "/metrics").await.1;
    let value = |series: &str| metric(&text, series);
    assert_eq!(
        value(r#"terrakio_operator_credentials{ready="True",reason="KeySynced"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"terrakio_operator_credentials{ready="False",reason="LoginSecretNotFound"}"#),
        Some(1.0)
    );
    assert!(
        value(r#"terrakio_operator_reconciles_total{result="success",reason="KeySynced"}"#)
            >= Some(2.0)
    );
    assert!(
        value(r#"terrakio_operator_reconciles_total{result="error",reason="LoginSecretNotFound"}"#)
            >= Some(1.0)
    );
    for (call, endpoint) in [
        ("login", Endpoint::Login),
        ("view_key", Endpoint::ViewKey),
        ("generate_key", Endpoint::GenerateKey),
    ] {
        // Every outcome of the call (a view before the first key answers 404).
        let prefix = format!("terrakio_operator_terrakio_requests_total{{call=\"{call}\",");
        let counted: f64 = text
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let counted = Some(counted);
        let served = world.fake.calls(endpoint) as f64;
        assert_eq!(
            counted,
            Some(served),
            "{call}: metrics vs the fake's own count"
        );
    }
    let until = value(&format!(
        "terrakio_operator_next_rotation_in_seconds{{namespace=\"{ns}\",name=\"geo\"}}"
    ))
    .unwrap();
    assert!(
        (719.0 * 3600.0..=720.0 * 3600.0).contains(&until),
        "{until}"
    );
    assert!(text.contains("terrakio_operator_reconcile_duration_seconds_count"));
    assert!(text.contains("terrakio_operator_terrakio_request_duration_seconds_count"));
    let key = key_in(&world.secrets(), "geo", KEY).await.unwrap();
    assert!(!text.contains(&key) && !text.contains(PASSWORD));
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_rate_limited_terrakio_is_left_alone_until_retry_after() {
    let mut world = World::new("rate-limited").await;
    let ns = world.namespace.clone();
    world.fake.add_account(EMAIL, PASSWORD);
    world.fake.generate_key_for(EMAIL);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    world.fake.inject(Fault {
        status: Some(429),
        retry_after: Some("5".into()),
        times: 100_000,
        ..Default::default()
    });
    let total = || {
        Endpoint::ALL
            .iter()
            .map(|e| world.fake.calls(*e))
            .sum::<u64>()
    };
    for i in 0..5 {
        world
            .credential(&ns, &format!("geo-{i}"), world.spec("1h"))
            .await;
    }
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during = total();
    eprintln!(
        "{during} requests to a Terrakio answering 429 (Retry-After: 5) for {:?}",
        started.elapsed()
    );
    // Five credentials; at most about one request per Retry-After, not five per backoff step.
    assert!(during <= 8, "{during} requests in 20 s");
    for i in 0..5 {
        let (status, reason, _) = ready(&world.credentials(), &format!("geo-{i}"))
            .await
            .unwrap();
        assert_eq!((status.as_str(), reason.as_str()), ("False", "RateLimited"));
    }
    world.fake.clear_faults();
    for i in 0..5 {
        wait_ready(
            &world.credentials(),
            &format!("geo-{i}"),
            "KeySynced",
            Duration::from_secs(30),
        )
        .await;
    }
    world.assert_no_secrets_in_output();
}

#[tokio::test]
async fn a_private_ca_is_trusted_only_where_given() {
    let mut world = World::new("private-ca").await;
    let ns = world.namespace.clone();
    let ca = TestCa::new();
    let tls = FakeTerrakio::start_tls(&ca.server_cert_pem(), &ca.server_key_pem())
        .await
        .unwrap();
    assert!(tls.url().starts_with("https://"));
    tls.add_account(EMAIL, PASSWORD);
    world.login_secret(&ns, "login", EMAIL, PASSWORD).await;
    let bundle: Secret = serde_json::from_value(json!({
        "metadata": { "name": "terrakio-ca" },
        "stringData": { "ca.crt": ca.ca_pem() },
    }))
    .unwrap();
    world
        .secrets()
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();

    let with_ca = json!({
        "endpoint": tls.url(),
        "loginSecretRef": { "name": "login" },
        "caBundleSecretRef": { "name": "terrakio-ca" },
    });
    let without = json!({ "endpoint": tls.url(), "loginSecretRef": { "name": "login" } });
    world.credential(&ns, "trusted", with_ca).await;
    world.credential(&ns, "untrusted", without).await;
    wait_ready(&world.credentials(), "trusted", "KeySynced", SYNC).await;
    wait_ready(&world.credentials(), "untrusted", "TLSError", SYNC).await;
    let (_, _, message) = ready(&world.credentials(), "untrusted").await.unwrap();
    assert!(message.contains("certificate"), "{message}");
    assert!(key_in(&world.secrets(), "trusted", KEY).await.is_some());
    assert!(
        world
            .secrets()
            .get_opt("untrusted")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        tls.calls(Endpoint::Login),
        1,
        "the untrusted credential never reached the API"
    );
}

// Multi-threaded: the fake must answer while this thread waits for the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_the_fingerprint_for_a_good_login_and_the_reason_for_a_bad_one() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeTerrakio::start().await.unwrap();
    fake.add_account(EMAIL, PASSWORD);
    let key = fake.generate_key_for(EMAIL);
    let dir = std::env::temp_dir().join(format!("terrakio-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good");
    let bad = dir.join("bad");
    std::fs::write(&good, format!("{PASSWORD}\n")).unwrap();
    std::fs::write(&bad, "not it").unwrap();

    let check = |file: &std::path::Path, extra: &[&str]| {
        std::process::Command::new(support::OPERATOR)
            .args([
                "check",
                "--endpoint",
                &fake.url(),
                "--email",
                EMAIL,
                "--allow-insecure-endpoints",
            ])
            .arg("--password-file")
            .arg(file)
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = check(&good, &[]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains(&terrakio_operator::sensitive::fingerprint_of(
            key.as_bytes()
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&key),
        "the key is shown only with --show-key"
    );
    let shown = check(&good, &["--show-key"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&key));

    let refused = check(&bad, &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused the login"), "{stderr}");
    assert!(!stderr.contains("not it"));
    let https = std::process::Command::new(support::OPERATOR)
        .args([
            "check",
            "--endpoint",
            &fake.url(),
            "--email",
            EMAIL,
            "--password-file",
        ])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        !https.status.success(),
        "http:// needs --allow-insecure-endpoints"
    );
    assert!(String::from_utf8_lossy(&https.stderr).contains("--endpoint"));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = std::process::Command::new(support::OPERATOR)
        .args([
            "run",
            "--log-format",
            "json",
            "--http-address",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(!out.status.success(), "no cluster: the operator must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {line}");
        });
        assert!(
            parsed.get("level").is_some() && parsed.get("timestamp").is_some(),
            "{line}"
        );
    }
    assert!(
        stderr.contains("cannot reach the Kubernetes API"),
        "{stderr}"
    );
}
