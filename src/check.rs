//! `terrakio-operator check`: the operator's login and key lookup, run once from a terminal,
//! to troubleshoot a login before it goes into a Secret.

use std::time::Duration;

use crate::cli::CheckArgs;
use crate::credential::validate_endpoint;
use crate::sensitive::Password;
use crate::session::{Login, Sessions};
use crate::terrakio::{RetryPolicy, TerrakioClient};

/// Runs the check; `Ok` is what to print on success, `Err` the reason for failing.
pub async fn run(args: CheckArgs) -> Result<String, String> {
    let endpoint = validate_endpoint(&args.endpoint, args.allow_insecure_endpoints)
        .map_err(|err| err.replace("spec.endpoint", "--endpoint"))?;
    let password = std::fs::read_to_string(&args.password_file)
        .map_err(|err| format!("--password-file {}: {err}", args.password_file.display()))?;
    // A file written with `echo` ends in a newline that is not part of the password.
    let password = Password::new(password.strip_suffix('\n').unwrap_or(&password).to_string());
    if password.is_empty() {
        return Err(format!(
            "--password-file {} is empty",
            args.password_file.display()
        ));
    }

    let mut client = TerrakioClient::new(Duration::from_secs(30), RetryPolicy::default())
        .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
    if let Some(path) = &args.ca_file {
        let bundle =
            std::fs::read(path).map_err(|err| format!("--ca-file {}: {err}", path.display()))?;
        client = client
            .trusting(&bundle)
            .map_err(|err| format!("--ca-file: {err}"))?;
    }
    let login = Login {
        endpoint: endpoint.clone(),
        email: args.email.clone(),
        password,
    };
    let sessions = Sessions::default();
    let key = sessions
        .with_token(&client, &login, |token| {
            let client = &client;
            let endpoint = &endpoint;
            async move { client.view_key(endpoint, &token).await }
        })
        .await
        .map_err(|err| err.to_string())?;

    Ok(match key {
        None => format!(
            "login OK for {} at {endpoint}; the account has no API key yet",
            args.email
        ),
        Some(key) if args.show_key => format!(
            "login OK for {} at {endpoint}; key {} {}",
            args.email,
            key.fingerprint(),
            key.expose()
        ),
        Some(key) => format!(
            "login OK for {} at {endpoint}; key {} (add --show-key to print it)",
            args.email,
            key.fingerprint()
        ),
    })
}
