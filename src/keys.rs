//! Getting the account's key from Terrakio: adopting the current one, generating one only
//! when the account has none, and rotating with a journal entry written first, so that a
//! crash after generate is resumed by reading the key back instead of generating again.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::credential::{PendingRotation, TerrakioCredential, TerrakioCredentialStatus};
use crate::error::Error;
use crate::reconcile::{Context, Journal};
use crate::sensitive::ApiKey;
use crate::session::Login;
use crate::status::write_status_if;
use crate::terrakio::TerrakioClient;
use kube::ResourceExt;

/// Rotation times are kept to the second, as status records them: a time compared with its own
/// record read back must compare equal.
pub(crate) fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Generates the new key of a rotation, with the rotation recorded in status first so that a
/// crash after the generate is resumed by reading the key back instead of generating again.
pub(crate) async fn rotate(
    ctx: &Context,
    client: &TerrakioClient,
    cr: &TerrakioCredential,
    status: &TerrakioCredentialStatus,
    login: &Login,
    journal: &mut Journal,
    request: Option<String>,
) -> Result<ApiKey, Error> {
    let pending = PendingRotation {
        from_fingerprint: status.key_fingerprint.clone(),
        started_at: Time(whole_seconds(Timestamp::now())),
        request,
    };
    if journal.pending.is_none() {
        journal.pending = Some(pending.clone());
        let mut marked = status.clone();
        marked.pending_rotation = Some(pending.clone());
        write_status_if(ctx, cr, &marked, cr.resource_version()).await?;
    }

    tracing::debug!("rotating: generating a new key");
    generate(ctx, client, login, pending.from_fingerprint.as_deref()).await
}

/// Generates a key, replacing `replaced` (the fingerprint of the current key, if any). A
/// generate whose answer was lost may still have happened: the key is then read back, and
/// taken if it is not the one being replaced, rather than generated again, which could
/// rotate a key that was just handed out.
async fn generate(
    ctx: &Context,
    client: &TerrakioClient,
    login: &Login,
    replaced: Option<&str>,
) -> Result<ApiKey, Error> {
    let endpoint = &login.endpoint;
    ctx.still_leading().await?;
    let generated = ctx
        .sessions
        .with_token(client, login, |token| async move {
            client.generate_key(endpoint, &token).await
        })
        .await;
    let failed = |source| Error::Terrakio {
        step: "generating an API key",
        host: endpoint.host_str().unwrap_or_default().to_string(),
        source,
    };
    match generated {
        Ok(key) => Ok(key),
        Err(err) if err.outcome_unknown() => {
            tracing::debug!(error = %err, "generate outcome unknown; reading the key back");
            let current = view_key(ctx, client, login).await?;
            match current.filter(|k| Some(k.fingerprint().as_str()) != replaced) {
                Some(key) => Ok(key),
                None => Err(failed(err)),
            }
        }
        Err(err) => Err(failed(err)),
    }
}

pub(crate) async fn view_key(
    ctx: &Context,
    client: &TerrakioClient,
    login: &Login,
) -> Result<Option<ApiKey>, Error> {
    let endpoint = &login.endpoint;
    ctx.sessions
        .with_token(client, login, |token| async move {
            client.view_key(endpoint, &token).await
        })
        .await
        .map_err(|source| Error::Terrakio {
            step: "reading the API key",
            host: endpoint.host_str().unwrap_or_default().to_string(),
            source,
        })
}

/// Adopts the account's current key; generates one only when the account has none, because a
/// key that exists may already be in use elsewhere and generating would break those users.
pub(crate) async fn current_or_new_key(
    ctx: &Context,
    client: &TerrakioClient,
    login: &Login,
) -> Result<(ApiKey, bool), Error> {
    if let Some(key) = view_key(ctx, client, login).await? {
        return Ok((key, false));
    }
    tracing::debug!("the account has no API key yet; generating one");
    generate(ctx, client, login, None)
        .await
        .map(|key| (key, true))
}
