//! The `fake-terrakio` program, as the demo runs it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fake_terrakio::TestCa;

use super::*;

/// The running program, killed if a test fails before stopping it.
struct Program(Child);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the program on a free port of 127.0.0.1 with Alice's account and `args`, and waits
/// for the line that tells its URL.
async fn start(args: &[&str]) -> (Program, String) {
    let mut program = Program(
        Command::new(env!("CARGO_BIN_EXE_fake-terrakio"))
            .args(["--listen", "127.0.0.1:0"])
            .args(["--account", "alice@example.com:correct horse"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    let stdout = program.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(30), line)
        .await
        .unwrap()
        .unwrap();
    let line = line.unwrap();
    let url = line
        .trim()
        .strip_prefix("fake-terrakio listening on ")
        .expect(&line)
        .to_owned();
    (program, url)
}

/// A directory of its own under the system's temporary one, removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        // The process id keeps apart concurrent runs, the counter the tests of one run.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("fake-terrakio-test-{}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn arg(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn program_announces_its_url_serves_and_stops_on_sigterm() {
    let (mut program, url) = start(&[
        "--token-lifetime",
        "5s",
        "--account",
        "bob@example.com:pw:with:colons",
    ])
    .await;
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with('/'),
        "{url}"
    );

    let client = Client::new(url);
    let claims = claims(&client.token(EMAIL, PASSWORD).await);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!((5..=6).contains(&lifetime), "{lifetime}");
    client.token("bob@example.com", "pw:with:colons").await;
    let calls = client.get_json("/_fake/calls").await;
    assert_eq!(calls["login"], 2);

    let pid = program.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = program.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");

    assert!(
        client.try_login(EMAIL, PASSWORD).await.is_err(),
        "answered after stopping"
    );
}

#[tokio::test]
async fn program_writes_a_test_ca_and_serves_https_with_it() {
    let dir = TempDir::new();
    let certs = dir.path().join("certs");
    let (_program, url) = start(&["--write-test-ca", certs.to_str().unwrap()]).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let read = |name: &str| std::fs::read_to_string(certs.join(name)).unwrap();
    let (ca, cert, key) = (read("ca.crt"), read("tls.crt"), read("tls.key"));
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_ne!(ca, cert);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "tls.key is readable by others: {mode:o}");
    }

    Client::trusting(url.clone(), &ca)
        .token(EMAIL, PASSWORD)
        .await;
    assert!(Client::new(url).try_login(EMAIL, PASSWORD).await.is_err());
}

#[tokio::test]
async fn program_serves_https_with_given_files() {
    let ca = TestCa::new();
    let dir = TempDir::new();
    std::fs::write(dir.path().join("tls.crt"), ca.server_cert_pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), ca.server_key_pem()).unwrap();

    let files = [
        "--tls-cert",
        &dir.arg("tls.crt"),
        "--tls-key",
        &dir.arg("tls.key"),
    ];
    let (_program, url) = start(&files).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    Client::trusting(url, &ca.ca_pem())
        .token(EMAIL, PASSWORD)
        .await;
}

#[test]
fn program_refuses_bad_tls_flags_before_listening() {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("tls.crt"), TestCa::new().server_cert_pem()).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fake-terrakio"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };

    let cert_alone = run(&["--tls-cert", &dir.arg("tls.crt")]);
    assert!(!cert_alone.status.success());

    let missing_key = run(&[
        "--tls-cert",
        &dir.arg("tls.crt"),
        "--tls-key",
        &dir.arg("nope"),
    ]);
    assert!(!missing_key.status.success());
    let stderr = String::from_utf8_lossy(&missing_key.stderr);
    assert!(
        stderr.contains("nope"),
        "the error names the file: {stderr}"
    );
}
