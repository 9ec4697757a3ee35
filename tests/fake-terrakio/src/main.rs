//! `fake-terrakio`: the fake account API as a process, for the demo and manual tries.
//!
//! It prints one line once it listens, so a script can wait for that line instead of polling
//! the port, and it serves until SIGTERM or ctrl-c.

use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use fake_terrakio::{FakeTerrakio, TestCa};

#[derive(Parser, Debug)]
#[command(version, about = "A fake Terrakio account API")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// An account to open at start, as EMAIL:PASSWORD (the password may contain colons).
    /// Repeatable.
    #[arg(long = "account", value_name = "EMAIL:PASSWORD", value_parser = parse_account)]
    accounts: Vec<(String, String)>,

    /// Lifetime of login tokens: whole seconds, optionally with a unit (`90`, `90s`, `5m`,
    /// `1h`).
    #[arg(long, value_name = "DURATION", default_value = "3600s", value_parser = parse_lifetime)]
    token_lifetime: Duration,

    /// Answer login like newer servers, with a `refresh_token` beside the token.
    #[arg(long)]
    refresh_tokens: bool,

    /// Serve HTTPS with this certificate chain, PEM, leaf first. Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Make a throwaway CA and a certificate it signed for 127.0.0.1 and localhost, write them
    /// into DIR (made if missing) as ca.crt, tls.crt and tls.key, and serve HTTPS with them.
    /// Clients must trust ca.crt.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["tls_cert", "tls_key"])]
    write_test_ca: Option<PathBuf>,
}

/// A certificate chain and its key, PEM.
struct Tls {
    cert_pem: String,
    key_pem: String,
}

impl Args {
    /// The certificate to serve with, if any, read or made as the flags say.
    fn tls(&self) -> io::Result<Option<Tls>> {
        if let Some(dir) = &self.write_test_ca {
            return write_test_ca(dir).map(Some);
        }

        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(Tls {
                cert_pem: read(cert)?,
                key_pem: read(key)?,
            })),
            // Clap insists on both or neither.
            _ => Ok(None),
        }
    }
}

/// Writes a fresh [`TestCa`] into `dir` and returns its server certificate.
fn write_test_ca(dir: &Path) -> io::Result<Tls> {
    let ca = TestCa::new();
    fs::create_dir_all(dir).map_err(|error| in_file(dir, error))?;
    write(&dir.join("ca.crt"), &ca.ca_pem(), false)?;
    write(&dir.join("tls.crt"), &ca.server_cert_pem(), false)?;
    write(&dir.join("tls.key"), &ca.server_key_pem(), true)?;
    Ok(Tls {
        cert_pem: ca.server_cert_pem(),
        key_pem: ca.server_key_pem(),
    })
}

fn read(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map_err(|error| in_file(path, error))
}

/// Writes `text` to `path`; a private file is made readable by its owner only, as tools that
/// read keys expect, though this one protects nothing of worth.
fn write(path: &Path, text: &str, private: bool) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;

    let mut file = options.open(path).map_err(|error| in_file(path, error))?;
    file.write_all(text.as_bytes())
        .map_err(|error| in_file(path, error))
}

/// The error with the file it happened to, which io errors leave out.
fn in_file(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

fn parse_account(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((email, password)) if !email.is_empty() => Ok((email.to_owned(), password.to_owned())),
        _ => Err("expected EMAIL:PASSWORD".to_owned()),
    }
}

fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    number
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let args = Args::parse();

    let fake = match args.tls()? {
        Some(tls) => FakeTerrakio::start_tls_on(args.listen, &tls.cert_pem, &tls.key_pem).await?,
        None => FakeTerrakio::start_on(args.listen).await?,
    };
    fake.set_token_lifetime(args.token_lifetime);
    fake.set_refresh_tokens(args.refresh_tokens);
    for (email, password) in &args.accounts {
        fake.add_account(email, password);
    }

    let mut stdout = io::stdout();
    writeln!(stdout, "fake-terrakio listening on {}", fake.url())?;
    stdout.flush()?;

    stopped().await;
    drop(fake);
    Ok(())
}

/// Returns once the process is asked to stop.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
            Err(error) => eprintln!("fake-terrakio: cannot watch SIGTERM: {error}"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_with_and_without_units() {
        assert_eq!(parse_lifetime("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_lifetime("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_lifetime("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_lifetime("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_lifetime("").is_err());
        assert!(parse_lifetime("s").is_err());
        assert!(parse_lifetime("5d").is_err());
        assert!(parse_lifetime("-5").is_err());
    }

    #[test]
    fn accounts_split_at_the_first_colon() {
        assert_eq!(
            parse_account("a@b.c:p:w"),
            Ok(("a@b.c".to_owned(), "p:w".to_owned()))
        );
        assert!(parse_account("a@b.c").is_err());
        assert!(parse_account(":pw").is_err());
    }

    #[test]
    fn command_line_parses() {
        let args = Args::try_parse_from([
            "fake-terrakio",
            "--listen",
            "127.0.0.1:0",
            "--account",
            "a@b.c:pw",
            "--account",
            "d@e.f:pw2",
            "--token-lifetime",
            "5",
        ])
        .unwrap();
        assert_eq!(args.accounts.len(), 2);
        assert_eq!(args.token_lifetime, Duration::from_secs(5));
        assert!(!args.refresh_tokens);
        assert!(args.tls_cert.is_none() && args.tls_key.is_none() && args.write_test_ca.is_none());
    }

    #[test]
    fn tls_files_come_both_or_not_at_all() {
        let both = ["fake-terrakio", "--tls-cert", "c.pem", "--tls-key", "k.pem"];
        let args = Args::try_parse_from(both).unwrap();
        assert_eq!(args.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(args.tls_key, Some(PathBuf::from("k.pem")));

        assert!(Args::try_parse_from(["fake-terrakio", "--tls-cert", "c.pem"]).is_err());
        assert!(Args::try_parse_from(["fake-terrakio", "--tls-key", "k.pem"]).is_err());
    }

    #[test]
    fn a_test_ca_is_not_mixed_with_given_files() {
        let args = Args::try_parse_from(["fake-terrakio", "--write-test-ca", "dir"]).unwrap();
        assert_eq!(args.write_test_ca, Some(PathBuf::from("dir")));

        let mixed = [
            "fake-terrakio",
            "--write-test-ca",
            "dir",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ];
        assert!(Args::try_parse_from(mixed).is_err());
    }
}
