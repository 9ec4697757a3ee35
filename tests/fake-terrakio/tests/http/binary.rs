//! The `fake-terrakio` program, as the demo runs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// The running program, killed if a test fails before stopping it.
struct Program(Child);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn program_announces_its_url_serves_and_stops_on_sigterm() {
    let mut program = Program(
        Command::new(env!("CARGO_BIN_EXE_fake-terrakio"))
            .args(["--listen", "127.0.0.1:0", "--token-lifetime", "5s"])
            .args(["--account", "alice@example.com:correct horse"])
            .args(["--account", "bob@example.com:pw:with:colons"])
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
