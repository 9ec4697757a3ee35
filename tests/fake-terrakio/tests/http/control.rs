//! The `/_fake/` control API, as the demo's script drives it.

use std::time::Duration;

use fake_terrakio::{Endpoint, FakeTerrakio};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn calls_lists_every_endpoint_and_control_calls_do_not_count() {
    let (fake, client) = fake_with_alice().await;
    let token = client.token(EMAIL, PASSWORD).await;
    client.new_key(&token).await;
    client.data_by_query("wms", "tk_wrong").await;

    let calls = client.get_json("/_fake/calls").await;
    assert_eq!(
        calls,
        json!({"signup": 0, "login": 1, "generate_key": 1, "view_key": 0, "data": 1})
    );
    client.get_json("/_fake/calls").await;
    client.get_json("/_fake/accounts").await;
    assert_eq!(client.get_json("/_fake/calls").await, calls);

    let reset = client
        .http
        .delete(format!("{}/_fake/calls", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(fake.calls(Endpoint::Login), 0);
}

#[tokio::test]
async fn faults_can_be_injected_and_cleared() {
    let (fake, client) = fake_with_alice().await;

    let fault = json!({"endpoint": "login", "status": 503, "retry_after": "1", "times": 2});
    let queued = client.post_json("/_fake/faults", fault).await;
    assert_eq!(queued.status(), StatusCode::OK);
    let body: Value = queued.json().await.unwrap();
    assert_eq!(body["pending"], 1);

    let faulty = client.login(EMAIL, PASSWORD).await;
    assert_eq!(faulty.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(faulty.headers()["retry-after"], "1");

    let url = format!("{}/_fake/faults", fake.url());
    let cleared = client.http.delete(url).send().await.unwrap();
    assert_eq!(cleared.status(), StatusCode::OK);
    client.token(EMAIL, PASSWORD).await;
}

#[tokio::test]
async fn malformed_faults_are_refused() {
    let (_fake, client) = fake_with_alice().await;

    for bad in [
        json!({"endpoint": "logout", "status": 503}),
        json!({"status": 503, "latency": 10}),
        json!({"status": 20}),
        json!({"status": 503, "content_type": "text/plain\n"}),
    ] {
        let refused = client.post_json("/_fake/faults", bad.clone()).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(detail_of(refused).await.is_string());
    }

    client.token(EMAIL, PASSWORD).await;
}

#[tokio::test]
async fn accounts_can_be_created_and_listed() {
    let fake = FakeTerrakio::start().await.unwrap();
    let client = Client::new(fake.url());
    let carol = json!({"email": "carol@example.com", "password": "pw"});

    let created = client.post_json("/_fake/accounts", carol).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let token = client.token("carol@example.com", "pw").await;

    let changed = json!({"email": "carol@example.com", "password": "pw2"});
    assert_eq!(
        client.post_json("/_fake/accounts", changed).await.status(),
        StatusCode::OK
    );
    client.token("carol@example.com", "pw2").await;

    let key = client.new_key(&token).await;
    let listed = client.get_json("/_fake/accounts").await;
    let id = fake.account_id("carol@example.com").unwrap();
    assert_eq!(
        listed,
        json!([{"email": "carol@example.com", "id": id, "api_key": key}])
    );

    assert_eq!(fake.calls(Endpoint::Signup), 0);
}

#[tokio::test]
async fn token_lifetime_applies_to_later_logins() {
    let (_fake, client) = fake_with_alice().await;

    let set = client
        .post_json("/_fake/token-lifetime", json!({"seconds": 2}))
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    let claims = claims(&client.token(EMAIL, PASSWORD).await);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!((2..=3).contains(&lifetime), "{lifetime}");

    let negative = client
        .post_json("/_fake/token-lifetime", json!({"seconds": -1}))
        .await;
    assert_eq!(negative.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let token = client.token(EMAIL, PASSWORD).await;
    let exp = Duration::from_secs(super::claims(&token)["exp"].as_u64().unwrap());
    tokio::time::sleep(exp.saturating_sub(now()) + Duration::from_millis(20)).await;
    assert_eq!(
        client.view(Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
