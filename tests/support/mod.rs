//! What the end-to-end tests stand on: one real control plane per test binary, a fake
//! Terrakio and an operator process per test, and polling helpers.
//!
//! The control plane is started by `tests/control-plane/up.sh` (which builds it on the first
//! run of a machine). It watches this process and stops when the test binary exits, however it
//! exits. When it cannot start, every test fails with the reason: nothing is skipped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fake_terrakio::FakeTerrakio;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use terrakio_operator::credential::TerrakioCredential;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
pub const OPERATOR: &str = env!("CARGO_BIN_EXE_terrakio-operator");

pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The shared control plane, started on first use with the CRD applied and established.
pub fn control_plane() -> &'static ControlPlane {
    let started = CONTROL_PLANE.get_or_init(start_control_plane);
    match started {
        Ok(cp) => cp,
        Err(reason) => panic!("the Kubernetes control plane could not start: {reason}"),
    }
}

fn start_control_plane() -> Result<ControlPlane, String> {
    let scripts = Path::new(REPO).join("tests/control-plane");

    // The first run on a machine builds Kubernetes, which takes minutes: no timeout here.
    let build = Command::new("bash")
        .arg(scripts.join("build.sh"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("cannot run build.sh: {err}"))?;
    if !build.status.success() {
        return Err(format!(
            "build.sh failed ({}); see its output above",
            build.status
        ));
    }

    let dir = std::env::temp_dir().join(format!("terrakio-e2e-{}", std::process::id()));
    let log = std::fs::File::create(
        std::env::temp_dir().join(format!("terrakio-e2e-{}-up.log", std::process::id())),
    )
    .map_err(|err| err.to_string())?;
    let mut up = Command::new("bash");
    up.arg(scripts.join("up.sh"))
        .arg(&dir)
        .arg("--watch-pid")
        .arg(std::process::id().to_string())
        .stdout(log.try_clone().map_err(|err| err.to_string())?)
        .stderr(log)
        .process_group(0);
    let mut child = up
        .spawn()
        .map_err(|err| format!("cannot run up.sh: {err}"))?;

    let deadline = Instant::now() + Duration::from_secs(300);
    while !dir.join("ready").exists() {
        if let Some(status) = child.try_wait().map_err(|err| err.to_string())? {
            return Err(format!("up.sh exited with {status}: {}", up_log_tail()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("not ready after 300s: {}", up_log_tail()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // up.sh stops by itself when this process exits; the handle is not needed any more.
    std::mem::forget(child);

    let kubeconfig = dir.join("kubeconfig");
    let apply = kubectl(&kubeconfig, &["apply", "-f", &format!("{REPO}/crds/")])?;
    eprintln!("{apply}");
    kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/terrakiocredentials.terrak.io",
        ],
    )?;
    Ok(ControlPlane { dir, kubeconfig })
}

fn up_log_tail() -> String {
    let path = std::env::temp_dir().join(format!("terrakio-e2e-{}-up.log", std::process::id()));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .map_err(|err| format!("cannot run kubectl: {err}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub async fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cp = control_plane();
    let kubeconfig = Kubeconfig::read_from(&cp.kubeconfig).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    Client::try_from(config).expect("client")
}

/// An operator process, killed on drop. Its output goes to a file the test can search.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
}

impl Operator {
    /// Starts the operator as the ServiceAccount that `deploy/` installs, so that every test
    /// also proves the granted permissions suffice.
    pub fn start(namespaces: &[&str], log_name: &str) -> Operator {
        Operator::start_as(deployed_service_account(), namespaces, log_name)
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the operator with the identity of `kubeconfig`.
    pub fn start_as(kubeconfig: &Path, namespaces: &[&str], log_name: &str) -> Operator {
        Operator::start_with(kubeconfig, namespaces, log_name, &[])
    }

    /// Starts the operator with the identity of `kubeconfig` and `extra` arguments.
    pub fn start_with(
        kubeconfig: &Path,
        namespaces: &[&str],
        log_name: &str,
        extra: &[&str],
    ) -> Operator {
        let log = Path::new(REPO)
            .join("target/e2e-logs")
            .join(format!("{log_name}.log"));
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(OPERATOR);
        command
            .args([
                "run",
                "--allow-insecure-endpoints",
                "--terrakio-retry-pause",
                "100ms",
                "--http-address",
                "127.0.0.1:0",
            ])
            .arg("--watch-namespaces")
            .arg(namespaces.join(","))
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "trace")
            .env("POD_NAME", log_name)
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        // The operator must not outlive a test binary that dies.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("operator starts");
        Operator { child, log }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the operator serves /healthz, /readyz and /metrics, read from its log.
    pub async fn http_address(&self) -> String {
        let mut found = None;
        wait_for(
            Duration::from_secs(20),
            "the operator's HTTP address",
            || {
                let output = self.output();
                found = output
                    .lines()
                    .find(|l| l.contains("serving /healthz"))
                    .and_then(|l| l.split("addr=").nth(1))
                    .map(|rest| {
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string()
                    });
                std::future::ready(found.is_some())
            },
        )
        .await;
        found.unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One test's world: its namespace(s), its fake Terrakio and its operator.
pub struct World {
    pub client: Client,
    pub namespace: String,
    /// Every namespace the operator watches, the main one first.
    pub namespaces: Vec<String>,
    name: String,
    starts: u32,
    pub fake: FakeTerrakio,
    pub operator: Operator,
    /// Every password the test used, for the leak check.
    passwords: Vec<String>,
    /// Output of operator processes this world already replaced.
    earlier_output: String,
}

impl World {
    pub async fn new(name: &str) -> World {
        World::with_namespaces(name, &[]).await
    }

    /// A world whose operator also watches `extra` namespaces (created here, named
    /// `e2e-{name}-{extra}`).
    pub async fn with_namespaces(name: &str, extra: &[&str]) -> World {
        World::build(name, extra, None).await
    }

    /// A world whose operator runs with the identity of `kubeconfig` instead of the admin's.
    pub async fn as_identity(name: &str, kubeconfig: &Path) -> World {
        World::build(name, &[], Some(kubeconfig)).await
    }

    async fn build(name: &str, extra: &[&str], kubeconfig: Option<&Path>) -> World {
        let client = client().await;
        let namespace = format!("e2e-{name}");
        let mut all = vec![namespace.clone()];
        all.extend(extra.iter().map(|e| format!("e2e-{name}-{e}")));
        for ns in &all {
            create_namespace(&client, ns).await;
        }
        let fake = FakeTerrakio::start().await.expect("fake Terrakio starts");
        let names: Vec<&str> = all.iter().map(String::as_str).collect();
        let operator = match kubeconfig {
            Some(path) => Operator::start_as(path, &names, name),
            None => Operator::start(&names, name),
        };
        World {
            client,
            namespace,
            namespaces: all,
            name: name.to_string(),
            starts: 1,
            fake,
            operator,
            passwords: Vec::new(),
            earlier_output: String::new(),
        }
    }

    /// Kills the operator with SIGKILL, as a crash would.
    pub fn kill_operator(&mut self) {
        self.operator.kill();
    }

    /// Starts a new operator process (after [`World::kill_operator`]); its output goes to a
    /// new log file, checked by [`World::assert_no_secrets_in_output`] like the first.
    pub fn start_operator(&mut self) {
        self.starts += 1;
        let names: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
        let log_name = format!("{}-{}", self.name, self.starts);
        let old = std::mem::replace(&mut self.operator, Operator::start(&names, &log_name));
        self.earlier_output.push_str(&old.output());
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn secrets_in(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub fn credentials(&self) -> Api<TerrakioCredential> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn credentials_in(&self, namespace: &str) -> Api<TerrakioCredential> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Creates or replaces a login Secret.
    pub async fn login_secret(&mut self, namespace: &str, name: &str, email: &str, password: &str) {
        self.passwords.push(password.to_string());
        let api = self.secrets_in(namespace);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([
                ("email".to_string(), ByteString(email.as_bytes().to_vec())),
                (
                    "password".to_string(),
                    ByteString(password.as_bytes().to_vec()),
                ),
            ])),
            ..Secret::default()
        };
        match api.get_opt(name).await.unwrap() {
            Some(mut existing) => {
                existing.data = secret.data;
                api.replace(name, &PostParams::default(), &existing)
                    .await
                    .unwrap();
            }
            None => {
                api.create(&PostParams::default(), &secret).await.unwrap();
            }
        }
    }

    /// Creates a credential from a JSON spec.
    pub async fn credential(&self, namespace: &str, name: &str, spec: serde_json::Value) {
        let object: TerrakioCredential = serde_json::from_value(json!({
            "apiVersion": "terrak.io/v1alpha1",
            "kind": "TerrakioCredential",
            "metadata": { "name": name },
            "spec": spec,
        }))
        .expect("credential JSON");
        self.credentials_in(namespace)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }

    /// The default spec used by most tests: the fake, login Secret `login`, a short refresh.
    pub fn spec(&self, refresh: &str) -> serde_json::Value {
        json!({
            "endpoint": self.fake.url(),
            "loginSecretRef": { "name": "login" },
            "refreshInterval": refresh,
        })
    }

    /// Fails the test if the operator's output holds any password, token or key of this test,
    /// as text or base64.
    pub fn assert_no_secrets_in_output(&self) {
        let output = format!("{}{}", self.earlier_output, self.operator.output());
        assert!(!output.is_empty(), "the operator wrote no output at all");
        let mut secrets: Vec<String> = self.passwords.clone();
        secrets.extend(self.fake.issued_tokens());
        secrets.extend(self.fake.issued_keys());
        for secret in secrets {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
            for form in [&secret, &encoded] {
                assert!(
                    !output.contains(form.as_str()),
                    "operator output {} contains a secret",
                    self.operator.log.display()
                );
            }
        }
    }
}

/// Installs `deploy/` for real and writes a kubeconfig for its ServiceAccount, with a token
/// from the TokenRequest API. Done once per test binary.
pub fn deployed_service_account() -> &'static Path {
    static KUBECONFIG: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = KUBECONFIG.get_or_init(|| {
        let cp = control_plane();
        kubectl(&cp.kubeconfig, &["apply", "-k", &format!("{REPO}/deploy/")])?;
        service_account_kubeconfig("terrakio-system", "terrakio-operator")
    });
    match made {
        Ok(path) => path,
        Err(reason) => panic!("installing deploy/ failed: {reason}"),
    }
}

/// A kubeconfig for ServiceAccount `namespace/name`, with a token from the TokenRequest API.
pub fn service_account_kubeconfig(namespace: &str, name: &str) -> Result<PathBuf, String> {
    let cp = control_plane();
    let token = kubectl(
        &cp.kubeconfig,
        &["create", "token", name, "-n", namespace, "--duration=2h"],
    )?;
    let admin = std::fs::read_to_string(&cp.kubeconfig).map_err(|e| e.to_string())?;
    let mut config: serde_json::Value =
        serde_yaml_ng::from_str(&admin).map_err(|e| e.to_string())?;
    config["users"] = json!([{ "name": "admin", "user": { "token": token.trim() } }]);
    let path = cp.dir.join(format!("{namespace}-{name}.kubeconfig"));
    let text = serde_yaml_ng::to_string(&config).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

async fn create_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    // A namespace left by an earlier run of this test binary is impossible (each run starts
    // its own control plane), but a retried test in the same run may find its own.
    if api.get_opt(name).await.unwrap().is_some() {
        let _ = api.delete(name, &DeleteParams::default()).await;
        wait_for(Duration::from_secs(60), "old namespace gone", || async {
            api.get_opt(name).await.unwrap().is_none()
        })
        .await;
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns).await.unwrap();
}

/// Polls `check` every 200 ms until it is true; fails the test naming `what` after `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Ready condition of a credential as (status, reason, message).
pub async fn ready(api: &Api<TerrakioCredential>, name: &str) -> Option<(String, String, String)> {
    let cr = api.get_opt(name).await.ok().flatten()?;
    let status = cr.status?;
    let c = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
    Some((c.status, c.reason, c.message))
}

pub async fn wait_ready(
    api: &Api<TerrakioCredential>,
    name: &str,
    reason: &str,
    timeout: Duration,
) {
    let want_status = if reason == "KeySynced" {
        "True"
    } else {
        "False"
    };
    wait_for(
        timeout,
        &format!("{name} Ready={want_status} {reason}"),
        || async {
            matches!(ready(api, name).await, Some((s, r, _)) if s == want_status && r == reason)
        },
    )
    .await;
}

/// The API key in a Secret, if any.
pub async fn key_in(api: &Api<Secret>, name: &str, key: &str) -> Option<String> {
    let secret = api.get_opt(name).await.ok().flatten()?;
    let value = secret.data?.get(key)?.0.clone();
    String::from_utf8(value).ok()
}

/// Asks the fake's data endpoint over HTTP, with the key as header and as URL parameter.
pub async fn data_endpoint_accepts(fake: &FakeTerrakio, key: &str) -> (bool, bool) {
    let http = reqwest::Client::new();
    let by_header = http
        .get(format!("{}/wcs", fake.url()))
        .header("x-api-key", key)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    let by_param = http
        .get(format!("{}/wcs", fake.url()))
        .query(&[("api-key", key)])
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    (by_header, by_param)
}
