//! Injected faults: what the client sees, and what happened behind it.

use std::time::{Duration, Instant};

use fake_terrakio::{Endpoint, FakeTerrakio, Fault};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use super::*;

#[tokio::test]
async fn status_fault_replaces_the_answer_once() {
    let (fake, client) = fake_with_alice().await;
    fake.inject(Fault {
        status: Some(500),
        ..Fault::on(Endpoint::Login)
    });

    let faulty = client.login(EMAIL, PASSWORD).await;
    assert_eq!(faulty.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(faulty.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(detail_of(faulty).await, "injected fault");

    client.token(EMAIL, PASSWORD).await;
    assert_eq!(
        fake.calls(Endpoint::Login),
        2,
        "the faulted call counts too"
    );
}

#[tokio::test]
async fn fault_can_answer_plain_text() {
    let (fake, client) = fake_with_alice().await;
    fake.inject(Fault {
        status: Some(502),
        body: Some("<html>Bad Gateway</html>".into()),
        content_type: Some("text/html".into()),
        ..Fault::on(Endpoint::Login)
    });

    let faulty = client.login(EMAIL, PASSWORD).await;
    assert_eq!(faulty.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(faulty.headers()[CONTENT_TYPE], "text/html");
    assert_eq!(faulty.text().await.unwrap(), "<html>Bad Gateway</html>");
}

#[tokio::test]
async fn fault_lasts_its_times_and_leaves_other_endpoints_alone() {
    let (fake, client) = fake_with_alice().await;
    let token = client.token(EMAIL, PASSWORD).await;
    fake.inject(Fault {
        status: Some(503),
        times: 2,
        ..Fault::on(Endpoint::ViewKey)
    });

    assert_eq!(
        client.generate(Some(&token)).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        client.view(Some(&token)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        client.view(Some(&token)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(client.view(Some(&token)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn faults_without_endpoint_hit_any_and_go_oldest_first() {
    let (fake, client) = fake_with_alice().await;
    fake.inject(Fault {
        status: Some(504),
        ..Fault::default()
    });
    fake.inject(Fault {
        status: Some(408),
        ..Fault::on(Endpoint::Login)
    });

    let key = fake.generate_key_for(EMAIL);
    assert_eq!(
        client.data_by_header("wcs", &key).await,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(
        client.login(EMAIL, PASSWORD).await.status(),
        StatusCode::REQUEST_TIMEOUT
    );
    assert_eq!(client.login(EMAIL, PASSWORD).await.status(), StatusCode::OK);

    fake.inject(Fault {
        status: Some(500),
        times: 5,
        ..Fault::default()
    });
    fake.clear_faults();
    assert_eq!(client.data_by_header("wcs", &key).await, StatusCode::OK);
}

#[tokio::test]
async fn retry_after_is_sent() {
    let (fake, client) = fake_with_alice().await;
    fake.inject(Fault {
        status: Some(429),
        retry_after: Some("2".into()),
        ..Fault::on(Endpoint::ViewKey)
    });
    let token = client.token(EMAIL, PASSWORD).await;

    let limited = client.view(Some(&token)).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()[RETRY_AFTER], "2");
}

#[tokio::test]
async fn latency_alone_delays_the_real_answer() {
    let (fake, client) = fake_with_alice().await;
    fake.inject(Fault {
        latency_ms: Some(300),
        ..Fault::on(Endpoint::Login)
    });

    let started = Instant::now();
    client.token(EMAIL, PASSWORD).await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    let started = Instant::now();
    client.token(EMAIL, PASSWORD).await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "used up after one call"
    );
}

#[tokio::test]
async fn latency_with_status_delays_the_faulty_answer() {
    let (fake, client) = fake_with_alice().await;
    fake.inject(Fault {
        status: Some(503),
        latency_ms: Some(200),
        ..Fault::on(Endpoint::Login)
    });

    let started = Instant::now();
    let faulty = client.login(EMAIL, PASSWORD).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(faulty.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn after_effect_does_the_work_then_loses_the_answer() {
    let (fake, client) = fake_with_alice().await;
    let token = client.token(EMAIL, PASSWORD).await;
    let before = client.new_key(&token).await;
    fake.inject(Fault {
        status: Some(502),
        after_effect: true,
        ..Fault::on(Endpoint::GenerateKey)
    });

    let lost = client.generate(Some(&token)).await.unwrap();
    assert_eq!(lost.status(), StatusCode::BAD_GATEWAY);

    let rotated = fake.current_key(EMAIL).unwrap();
    assert_ne!(
        rotated, before,
        "the key was rotated although the answer failed"
    );
    assert_eq!(key_of(client.view(Some(&token)).await).await, rotated);
    assert!(!fake.data_accepts(&before));
    assert_eq!(fake.issued_keys().len(), 2);
}

#[tokio::test]
async fn without_after_effect_a_status_fault_changes_nothing() {
    let (fake, client) = fake_with_alice().await;
    let token = client.token(EMAIL, PASSWORD).await;
    let before = client.new_key(&token).await;
    fake.inject(Fault {
        status: Some(503),
        ..Fault::on(Endpoint::GenerateKey)
    });

    let refused = client.generate(Some(&token)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fake.current_key(EMAIL), Some(before));
    assert_eq!(fake.issued_keys().len(), 1);
}

#[tokio::test]
async fn a_caller_that_times_out_sees_the_difference() {
    let (fake, patient) = fake_with_alice().await;
    let token = patient.token(EMAIL, PASSWORD).await;
    let hasty = Client::with_timeout(fake.url(), Duration::from_millis(100));

    // Never reached the application: the caller gives up and nothing happens.
    fake.inject(Fault {
        latency_ms: Some(400),
        ..Fault::on(Endpoint::GenerateKey)
    });
    assert!(hasty.generate(Some(&token)).await.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.current_key(EMAIL), None);

    // Reached the application, answer lost: the caller gives up but the key did rotate.
    fake.inject(Fault {
        latency_ms: Some(400),
        after_effect: true,
        ..Fault::on(Endpoint::GenerateKey)
    });
    assert!(hasty.generate(Some(&token)).await.is_err());
    assert!(fake.current_key(EMAIL).is_some());

    assert_eq!(fake.calls(Endpoint::GenerateKey), 2);
}

#[tokio::test]
#[should_panic(expected = "bad fault")]
async fn an_unsendable_fault_is_refused_at_once() {
    let fake = FakeTerrakio::start().await.unwrap();
    fake.inject(Fault {
        status: Some(42),
        ..Fault::default()
    });
}
