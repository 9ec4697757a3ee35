//! `fake-terrakio`: the fake account API as a process, for the demo and manual tries.
//!
//! It prints one line once it listens, so a script can wait for that line instead of polling
//! the port, and it serves until SIGTERM or ctrl-c.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use fake_terrakio::FakeTerrakio;

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
async fn main() -> std::io::Result<()> {
    let args = Args::parse();

    let fake = FakeTerrakio::start_on(args.listen).await?;
    fake.set_token_lifetime(args.token_lifetime);
    fake.set_refresh_tokens(args.refresh_tokens);
    for (email, password) in &args.accounts {
        fake.add_account(email, password);
    }

    let mut stdout = std::io::stdout();
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
    }
}
