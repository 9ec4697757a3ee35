//! The account API over HTTP, with injected faults applied on the way.
//!
//! Each handler pulls the request parts its endpoint needs and hands a synchronous action to
//! [`respond`], which decides from the pending fault whether the action runs, when, and
//! whose answer the client gets.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::Endpoint;
use crate::faults::Fault;
use crate::service::{Answer, Shared, Terrakio};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/users/signup", post(signup))
        .route("/users/login", post(login))
        .route("/users/generate_key", post(generate_key))
        .route("/users/key", get(view_key))
        .route("/wcs", get(wcs))
        .route("/wms", get(wms))
}

async fn signup(State(shared): State<Shared>, body: Bytes) -> Response {
    respond(&shared, Endpoint::Signup, move |fake| fake.signup(&body)).await
}

async fn login(State(shared): State<Shared>, body: Bytes) -> Response {
    respond(&shared, Endpoint::Login, move |fake| {
        fake.login(&body, SystemTime::now())
    })
    .await
}

async fn generate_key(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let token = header(&headers, AUTHORIZATION.as_str());
    respond(&shared, Endpoint::GenerateKey, move |fake| {
        fake.generate_key(token.as_deref(), SystemTime::now())
    })
    .await
}

async fn view_key(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let token = header(&headers, AUTHORIZATION.as_str());
    respond(&shared, Endpoint::ViewKey, move |fake| {
        fake.view_key(token.as_deref(), SystemTime::now())
    })
    .await
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

async fn wcs(State(shared): State<Shared>, headers: HeaderMap, params: Params) -> Response {
    data(&shared, "wcs", &headers, params).await
}

async fn wms(State(shared): State<Shared>, headers: HeaderMap, params: Params) -> Response {
    data(&shared, "wms", &headers, params).await
}

async fn data(shared: &Shared, service: &str, headers: &HeaderMap, params: Params) -> Response {
    let from_header = header(headers, "x-api-key");
    // A query string that does not parse carries no key; the call is still a call.
    let from_url = params
        .ok()
        .and_then(|Query(mut params)| params.remove("api-key"));
    respond(shared, Endpoint::Data, move |fake| {
        fake.data(service, [from_header.as_deref(), from_url.as_deref()])
    })
    .await
}

/// A header's value as text, exactly as sent; a value that is not text is no value.
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// Counts the call, then answers it as the oldest matching fault says, or normally.
async fn respond<F>(shared: &Shared, endpoint: Endpoint, action: F) -> Response
where
    F: FnOnce(&mut Terrakio) -> Answer,
{
    let fault = shared.lock().arrive(endpoint);
    let Some(fault) = fault else {
        return act(shared, action);
    };

    let mut response = if fault.after_effect {
        let real = act(shared, action);
        pause(&fault).await;
        fault.answer().unwrap_or(real)
    } else {
        pause(&fault).await;
        fault.answer().unwrap_or_else(|| act(shared, action))
    };

    fault.decorate(&mut response);
    response
}

/// Runs the endpoint's action under the lock, released again before anything awaits.
fn act<F>(shared: &Shared, action: F) -> Response
where
    F: FnOnce(&mut Terrakio) -> Answer,
{
    let answer = action(&mut shared.lock());
    answer.into_response()
}

async fn pause(fault: &Fault) {
    if let Some(latency) = fault.latency() {
        tokio::time::sleep(latency).await;
    }
}
