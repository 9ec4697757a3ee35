//! The control API under `/_fake/`: how a process other than the test (the demo's shell
//! script) steers the fake. It mirrors the library handle, and none of its calls count.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Fault;
use crate::service::{Answer, Shared};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/_fake/calls", get(calls).delete(reset_calls))
        .route("/_fake/faults", post(inject).delete(clear_faults))
        .route("/_fake/accounts", get(accounts).post(add_account))
        .route("/_fake/token-lifetime", post(token_lifetime))
}

/// The body as JSON of the expected shape, or a 422 saying what is wrong with it.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(body)
        .map_err(|e| Answer::detail(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()))
}

fn message(text: &str) -> Response {
    Json(json!({ "message": text })).into_response()
}

/// `GET /_fake/calls`: every endpoint's count, zeros included.
async fn calls(State(shared): State<Shared>) -> Response {
    let counts = shared.lock().calls.to_json();
    Json(counts).into_response()
}

/// `DELETE /_fake/calls`
async fn reset_calls(State(shared): State<Shared>) -> Response {
    shared.lock().calls.reset();
    message("call counts reset")
}

/// `POST /_fake/faults` with a [`Fault`] as JSON.
async fn inject(State(shared): State<Shared>, body: Bytes) -> Response {
    let fault: Fault = match parse(&body) {
        Ok(fault) => fault,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(problem) = fault.check() {
        return Answer::detail(StatusCode::UNPROCESSABLE_ENTITY, &problem).into_response();
    }

    let mut fake = shared.lock();
    fake.faults.push(fault);
    Json(json!({"message": "fault queued", "pending": fake.faults.len()})).into_response()
}

/// `DELETE /_fake/faults`: forget every fault not yet used up.
async fn clear_faults(State(shared): State<Shared>) -> Response {
    shared.lock().faults.clear();
    message("faults cleared")
}

#[derive(Deserialize)]
struct NewAccount {
    email: String,
    password: String,
}

/// `POST /_fake/accounts` `{"email", "password"}`: opens the account, or replaces the
/// password of an existing one.
async fn add_account(State(shared): State<Shared>, body: Bytes) -> Response {
    let account: NewAccount = match parse(&body) {
        Ok(account) => account,
        Err(refusal) => return refusal.into_response(),
    };

    if shared.lock().add_account(&account.email, &account.password) {
        (StatusCode::CREATED, message("account created")).into_response()
    } else {
        message("password replaced")
    }
}

/// `GET /_fake/accounts`: every account with its id and current key, so a script can check
/// what the operator delivered without calling (and counting) the account API.
async fn accounts(State(shared): State<Shared>) -> Response {
    let fake = shared.lock();
    let list: Vec<_> = fake
        .accounts
        .list()
        .into_iter()
        .map(|(email, id, key)| json!({"email": email, "id": id, "api_key": key}))
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize)]
struct TokenLifetime {
    seconds: f64,
}

/// `POST /_fake/token-lifetime` `{"seconds": N}`: lifetime of the tokens issued from now on.
async fn token_lifetime(State(shared): State<Shared>, body: Bytes) -> Response {
    let lifetime: TokenLifetime = match parse(&body) {
        Ok(lifetime) => lifetime,
        Err(refusal) => return refusal.into_response(),
    };
    let Ok(lifetime) = Duration::try_from_secs_f64(lifetime.seconds) else {
        let detail = "seconds must be a non-negative number";
        return Answer::detail(StatusCode::UNPROCESSABLE_ENTITY, detail).into_response();
    };

    shared.lock().tokens.set_lifetime(lifetime);
    message("token lifetime set")
}
