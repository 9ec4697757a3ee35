//! The documented endpoints behave as the real service's.

use std::time::Duration;

use fake_terrakio::{Endpoint, FakeTerrakio};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn signup_opens_an_account_once() {
    let fake = FakeTerrakio::start().await.unwrap();
    let client = Client::new(fake.url());
    let bob = json!({"email": "bob@example.com", "password": "pw"});

    let answer = client.post_json("/users/signup", bob.clone()).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert!(body["message"].is_string());
    client.token("bob@example.com", "pw").await;

    let again = client.post_json("/users/signup", bob).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(detail_of(again).await, "Email already registered");

    let invalid = json!({"email": "bob.example.com", "password": "pw"});
    let invalid = client.post_json("/users/signup", invalid).await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail_of(invalid).await.is_string());

    assert_eq!(fake.calls(Endpoint::Signup), 3);
}

#[tokio::test]
async fn login_needs_the_right_password() {
    let (fake, client) = fake_with_alice().await;

    let good = client.login(EMAIL, PASSWORD).await;
    assert_eq!(good.status(), StatusCode::OK);
    let body: Value = good.json().await.unwrap();
    assert!(body["token"].is_string());
    assert!(
        body.get("refresh_token").is_none(),
        "legacy login has no refresh token"
    );

    for (email, password) in [(EMAIL, "wrong"), ("nobody@example.com", PASSWORD)] {
        let bad = client.login(email, password).await;
        assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(detail_of(bad).await, "Invalid email or password");
    }

    fake.set_password(EMAIL, "new password");
    assert_eq!(
        client.login(EMAIL, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    client.token(EMAIL, "new password").await;

    assert_eq!(fake.calls(Endpoint::Login), 5);
}

#[tokio::test]
async fn newer_login_adds_a_refresh_token() {
    let (fake, client) = fake_with_alice().await;
    fake.set_refresh_tokens(true);

    let body: Value = client.login(EMAIL, PASSWORD).await.json().await.unwrap();
    assert!(body["token"].is_string());
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn token_is_jwt_shaped_with_the_account_as_sub() {
    let (fake, client) = fake_with_alice().await;
    let token = client.token(EMAIL, PASSWORD).await;
    let again = client.token(EMAIL, PASSWORD).await;

    let claims = claims(&token);
    assert_eq!(claims["sub"], fake.account_id(EMAIL).unwrap().as_str());
    assert_eq!(super::claims(&again)["sub"], claims["sub"], "sub is stable");
    assert_ne!(token, again, "every login mints a new token");

    let iat = claims["iat"].as_u64().unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(iat.abs_diff(now().as_secs()) <= 2);
    assert!((3600..=3601).contains(&(exp - iat)));
    assert_eq!(fake.issued_tokens(), [token, again]);
}

#[tokio::test]
async fn view_key_is_404_before_the_first_generate() {
    let (_fake, client) = fake_with_alice().await;
    let token = client.token(EMAIL, PASSWORD).await;

    let answer = client.view(Some(&token)).await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert_eq!(detail_of(answer).await, "API key not found");
}

#[tokio::test]
async fn generate_replaces_the_key_and_retires_the_old_one() {
    let (fake, client) = fake_with_alice().await;
    let token = client.token(EMAIL, PASSWORD).await;

    let old = client.new_key(&token).await;
    assert!(old.starts_with("tk_") && old.len() == 43, "{old:?}");
    assert_eq!(client.data_by_header("wcs", &old).await, StatusCode::OK);

    let new = client.new_key(&token).await;
    assert_ne!(old, new);
    assert_eq!(key_of(client.view(Some(&token)).await).await, new);
    assert_eq!(
        key_of(client.view(Some(&token)).await).await,
        new,
        "view never rotates"
    );

    for service in ["wcs", "wms"] {
        assert_eq!(
            client.data_by_header(service, &old).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            client.data_by_query(service, &old).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(client.data_by_header(service, &new).await, StatusCode::OK);
        assert_eq!(client.data_by_query(service, &new).await, StatusCode::OK);
    }

    let refused = client
        .http
        .get(format!("{}/wcs", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(detail_of(refused).await, "Invalid API key");

    assert!(!fake.data_accepts(&old));
    assert!(fake.data_accepts(&new));
    assert_eq!(fake.current_key(EMAIL), Some(new.clone()));
    assert_eq!(fake.issued_keys(), [old, new]);
    assert_eq!(fake.calls(Endpoint::GenerateKey), 2);
    assert_eq!(fake.calls(Endpoint::ViewKey), 2);
    assert_eq!(fake.calls(Endpoint::Data), 10);
}

#[tokio::test]
async fn accounts_keep_their_own_keys() {
    let (fake, client) = fake_with_alice().await;
    fake.add_account("bob@example.com", "pw");

    let alice = client.new_key(&client.token(EMAIL, PASSWORD).await).await;
    let bob = client
        .new_key(&client.token("bob@example.com", "pw").await)
        .await;
    fake.generate_key_for("bob@example.com");

    assert!(fake.data_accepts(&alice));
    assert!(!fake.data_accepts(&bob));
    assert_ne!(fake.account_id(EMAIL), fake.account_id("bob@example.com"));
}

#[tokio::test]
async fn only_a_bare_live_token_is_authenticated() {
    let (_fake, client) = fake_with_alice().await;
    let token = client.token(EMAIL, PASSWORD).await;
    let bearer = format!("Bearer {token}");
    let unknown = format!("{token}x");

    for refused in [
        None,
        Some(bearer.as_str()),
        Some(unknown.as_str()),
        Some(""),
    ] {
        let generate = client.generate(refused).await.unwrap();
        assert_eq!(
            generate.status(),
            StatusCode::UNAUTHORIZED,
            "generate with {refused:?}"
        );
        assert_eq!(detail_of(generate).await, "Not authenticated");

        let view = client.view(refused).await;
        assert_eq!(
            view.status(),
            StatusCode::UNAUTHORIZED,
            "view with {refused:?}"
        );
        assert_eq!(detail_of(view).await, "Not authenticated");
    }

    client.new_key(&token).await;
}

#[tokio::test]
async fn token_dies_exactly_at_its_exp() {
    let (fake, client) = fake_with_alice().await;
    fake.set_token_lifetime(Duration::from_secs(1));
    let token = client.token(EMAIL, PASSWORD).await;
    let exp = Duration::from_secs(claims(&token)["exp"].as_u64().unwrap());
    assert!(
        exp >= now() + Duration::from_millis(900),
        "never less than the lifetime"
    );

    client.new_key(&token).await;

    // Shortly before exp the token still works...
    let before_exp = exp
        .saturating_sub(now())
        .saturating_sub(Duration::from_millis(250));
    tokio::time::sleep(before_exp).await;
    assert_eq!(client.view(Some(&token)).await.status(), StatusCode::OK);

    // ...and from exp on it does not, for either endpoint.
    tokio::time::sleep(exp.saturating_sub(now()) + Duration::from_millis(20)).await;
    let view = client.view(Some(&token)).await;
    assert_eq!(view.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(detail_of(view).await, "Not authenticated");
    let generate = client.generate(Some(&token)).await.unwrap();
    assert_eq!(generate.status(), StatusCode::UNAUTHORIZED);

    // A new login gets a working token again.
    let fresh = client.token(EMAIL, PASSWORD).await;
    assert_eq!(client.view(Some(&fresh)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn library_helpers_do_not_count_as_calls() {
    let (fake, client) = fake_with_alice().await;

    let old = fake.generate_key_for(EMAIL);
    let new = fake.generate_key_for(EMAIL);
    assert_eq!(
        client.data_by_header("wcs", &old).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(client.data_by_header("wcs", &new).await, StatusCode::OK);

    let token = client.token(EMAIL, PASSWORD).await;
    assert_eq!(key_of(client.view(Some(&token)).await).await, new);
    assert_eq!(fake.current_key("nobody@example.com"), None);

    assert_eq!(fake.calls(Endpoint::GenerateKey), 0);
    assert_eq!(fake.calls(Endpoint::Signup), 0);
    assert_eq!(fake.calls(Endpoint::Data), 2);

    fake.reset_calls();
    assert!(Endpoint::ALL.iter().all(|&e| fake.calls(e) == 0));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let (fake, client) = fake_with_alice().await;

    let missing = client
        .http
        .get(format!("{}/nope", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(detail_of(missing).await, "Not Found");

    let wrong = client
        .http
        .get(format!("{}/users/login", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(detail_of(wrong).await, "Method Not Allowed");
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let (fake, client) = fake_with_alice().await;
    let clone = fake.clone();

    // A pooled keep-alive connection must be cut too, not only the listener closed.
    client.token(EMAIL, PASSWORD).await;
    drop(fake);
    client.token(EMAIL, PASSWORD).await;

    drop(clone);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        client.try_login(EMAIL, PASSWORD).await.is_err(),
        "the fake still answers"
    );
}
