//! The Terrakio client and its login sessions, against the in-process fake Terrakio.
//!
//! Every test starts its own fake, so call counts belong to that test alone. The counts prove
//! what the client did *not* do: no retried login after a refusal, no second generate, no
//! login while a cached token is fresh.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_terrakio::{Endpoint, FakeTerrakio, Fault};
use terrakio_operator::sensitive::{ApiKey, Password, Token};
use terrakio_operator::session::{Login, Sessions, read_claims};
use terrakio_operator::terrakio::{Call, RetryPolicy, TerrakioClient, TerrakioError};
use url::Url;

const EMAIL: &str = "geo@example.com";
const PASSWORD: &str = "s3cret-Pa55word-for-tests";
const WRONG_PASSWORD: &str = "wr0ng-Pa55word-for-tests";
const NOT_AUTHENTICATED: &str = r#"{"detail": "Not authenticated"}"#;

/// `MAX_DETAIL_CHARS` in the client plus the "..." that marks a cut.
const MAX_SHOWN_DETAIL: usize = 203;

/// A fake with one account, and a client with short pauses so retries cost milliseconds.
async fn start() -> (FakeTerrakio, TerrakioClient, Url) {
    // The operator's reqwest is built without a TLS provider; the process must choose one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeTerrakio::start().await.expect("the fake starts");
    fake.add_account(EMAIL, PASSWORD);
    let url = Url::parse(&fake.url()).expect("the fake's URL parses");
    (fake, client(), url)
}

fn client() -> TerrakioClient {
    let policy = RetryPolicy {
        first_pause: Duration::from_millis(50),
        max_pause: Duration::from_millis(200),
        retries: 3,
    };
    TerrakioClient::new(Duration::from_secs(2), policy).expect("the client builds")
}

async fn login(client: &TerrakioClient, url: &Url) -> Token {
    client
        .login(url, EMAIL, &Password::new(PASSWORD))
        .await
        .expect("the account logs in")
}

fn account(url: &Url, password: &str) -> Login {
    Login {
        endpoint: url.clone(),
        email: EMAIL.into(),
        password: Password::new(password),
    }
}

/// View key through the session cache, as the reconciler does.
async fn view_key_in(
    sessions: &Sessions,
    client: &TerrakioClient,
    login: &Login,
) -> Result<Option<ApiKey>, TerrakioError> {
    sessions
        .with_token(client, login, |token| async move {
            client.view_key(&login.endpoint, &token).await
        })
        .await
}

fn fault(endpoint: Endpoint, status: u16, times: u32) -> Fault {
    Fault {
        status: Some(status),
        times,
        ..Fault::on(endpoint)
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// The text an error quotes from Terrakio, without the `HTTP nnn: ` that `Unavailable` adds.
fn quoted_detail(err: &TerrakioError) -> &str {
    match err {
        TerrakioError::LoginRefused { detail, .. }
        | TerrakioError::NotAuthenticated { detail, .. }
        | TerrakioError::Rejected { detail, .. } => detail,
        TerrakioError::Unavailable { reason, .. } => reason
            .split_once(": ")
            .map_or(reason.as_str(), |(_, detail)| detail),
        TerrakioError::InvalidResponse { reason, .. } | TerrakioError::Tls { reason, .. } => reason,
        TerrakioError::CaBundle(reason) => reason,
        TerrakioError::RateLimited { .. } => "",
    }
}

/// Fails if `shown` contains a password or anything the fake handed out.
fn assert_no_secret(fake: &FakeTerrakio, shown: &str) {
    for password in [PASSWORD, WRONG_PASSWORD] {
        assert!(!shown.contains(password), "password shown: {shown}");
    }
    for token in fake.issued_tokens() {
        assert!(!shown.contains(&token), "token shown: {shown}");
    }
    for key in fake.issued_keys() {
        assert!(!shown.contains(&key), "key shown: {shown}");
    }
}

#[tokio::test]
async fn login_gives_a_token_that_expires_in_the_future() {
    let (fake, client, url) = start().await;

    let token = login(&client, &url).await;

    let claims = read_claims(&token).expect("the token is a readable JWT");
    assert!(claims.exp as f64 > unix_now(), "exp {} is past", claims.exp);
    assert_eq!(fake.issued_tokens(), [token.expose()]);
    assert_eq!(fake.calls(Endpoint::Login), 1);
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_the_servers_detail() {
    let (fake, client, url) = start().await;

    let refused = client
        .login(&url, EMAIL, &Password::new(WRONG_PASSWORD))
        .await
        .expect_err("a wrong password is refused");

    match &refused {
        TerrakioError::LoginRefused { status, detail } => {
            assert_eq!(*status, 401);
            assert_eq!(detail, "Invalid email or password");
        }
        other => panic!("expected LoginRefused, got {other:?}"),
    }
    assert!(refused.to_string().contains("Invalid email or password"));
    assert!(!refused.outcome_unknown());
    assert_eq!(fake.calls(Endpoint::Login), 1, "a refusal is not retried");
}

#[tokio::test]
async fn login_is_retried_only_when_the_request_never_reached_the_application() {
    // (status, faults injected, calls expected, whether the login ends up succeeding)
    let cases = [
        // The application answered: repeating the same credentials cannot help.
        (401, 1, 1, false),
        (500, 1, 1, false),
        // A POST is not retried on 429, unlike a GET: the official client does the same.
        (429, 1, 1, false),
        // A proxy or the front answered: the login never happened, so repeat it.
        (502, 2, 3, true),
        (503, 2, 3, true),
        (504, 2, 3, true),
        (408, 2, 3, true),
    ];
    for (status, times, calls, succeeds) in cases {
        let (fake, client, url) = start().await;
        fake.inject(fault(Endpoint::Login, status, times));

        let answer = client.login(&url, EMAIL, &Password::new(PASSWORD)).await;

        assert_eq!(answer.is_ok(), succeeds, "{status}: {answer:?}");
        assert_eq!(fake.calls(Endpoint::Login), calls, "{status}");
        match (status, answer) {
            (401, Err(err)) => assert!(
                matches!(err, TerrakioError::LoginRefused { status: 401, .. }),
                "{err:?}"
            ),
            (500, Err(err)) => assert!(
                matches!(
                    err,
                    TerrakioError::Unavailable {
                        call: Call::Login,
                        ..
                    }
                ),
                "{err:?}"
            ),
            (429, Err(err)) => assert!(
                matches!(
                    err,
                    TerrakioError::RateLimited {
                        call: Call::Login,
                        ..
                    }
                ),
                "{err:?}"
            ),
            (_, Ok(token)) => assert!(read_claims(&token).is_some()),
            (_, Err(err)) => panic!("{status}: unexpected {err:?}"),
        }
    }
}

#[tokio::test]
async fn view_key_is_none_before_any_key_and_the_key_after_one() {
    let (fake, client, url) = start().await;
    let token = login(&client, &url).await;

    // The fake answers 404 for an account that never generated a key.
    assert_eq!(client.view_key(&url, &token).await.unwrap(), None);

    let key = fake.generate_key_for(EMAIL);
    let viewed = client.view_key(&url, &token).await.unwrap();
    assert_eq!(viewed.as_ref().map(ApiKey::expose), Some(key.as_str()));

    // Both calls succeeded at the first attempt with the token as it came: the header is the
    // bare token, since the fake refuses it with a `Bearer ` prefix, as shown here.
    assert_eq!(fake.calls(Endpoint::ViewKey), 2);
    let bearer = Token::new(format!("Bearer {}", token.expose()));
    let refused = client.view_key(&url, &bearer).await.unwrap_err();
    assert!(
        matches!(refused, TerrakioError::NotAuthenticated { status: 401, .. }),
        "{refused:?}"
    );
    assert_eq!(
        fake.calls(Endpoint::ViewKey),
        3,
        "a refused token is not retried"
    );
}

#[tokio::test]
async fn a_null_or_empty_key_means_no_key_yet() {
    // What the real service answers before the first generate is unknown; all mean "none".
    let bodies = [r#"{"apiKey": null}"#, r#"{"apiKey": ""}"#, "{}"];
    for body in bodies {
        let (fake, client, url) = start().await;
        fake.generate_key_for(EMAIL);
        let token = login(&client, &url).await;
        fake.inject(Fault {
            body: Some(body.into()),
            ..fault(Endpoint::ViewKey, 200, 1)
        });

        let viewed = client.view_key(&url, &token).await;

        assert!(matches!(viewed, Ok(None)), "{body}: {viewed:?}");
        assert_eq!(fake.calls(Endpoint::ViewKey), 1, "{body}");
    }
}

#[tokio::test]
async fn view_key_is_retried_on_every_transient_status() {
    for status in [408, 429, 500, 502, 503, 504] {
        let (fake, client, url) = start().await;
        let key = fake.generate_key_for(EMAIL);
        let token = login(&client, &url).await;
        fake.inject(fault(Endpoint::ViewKey, status, 2));

        let viewed = client.view_key(&url, &token).await;

        let viewed = viewed.unwrap_or_else(|err| panic!("{status}: {err:?}"));
        assert_eq!(viewed.as_ref().map(ApiKey::expose), Some(key.as_str()));
        assert_eq!(fake.calls(Endpoint::ViewKey), 3, "{status}");
    }
}

#[tokio::test]
async fn view_key_gives_up_after_three_retries() {
    let (fake, client, url) = start().await;
    let token = login(&client, &url).await;
    fake.inject(fault(Endpoint::ViewKey, 503, 4));

    let failed = client.view_key(&url, &token).await.unwrap_err();

    assert!(
        matches!(
            failed,
            TerrakioError::Unavailable {
                call: Call::ViewKey,
                ..
            }
        ),
        "{failed:?}"
    );
    assert!(failed.to_string().contains("503"), "{failed}");
    assert_eq!(
        fake.calls(Endpoint::ViewKey),
        4,
        "one call and three retries"
    );

    // The faults are used up, so the next call gets through.
    assert!(client.view_key(&url, &token).await.is_ok());
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out() {
    let (fake, client, url) = start().await;
    let token = login(&client, &url).await;
    fake.inject(Fault {
        retry_after: Some("1".into()),
        ..fault(Endpoint::ViewKey, 429, 1)
    });

    let started = Instant::now();
    let viewed = client.view_key(&url, &token).await;
    let elapsed = started.elapsed();

    assert!(viewed.is_ok(), "{viewed:?}");
    assert_eq!(fake.calls(Endpoint::ViewKey), 2);
    // The retry pause is 50 ms; only the header can make it a second.
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
}

#[tokio::test]
async fn a_long_retry_after_is_left_to_the_caller() {
    let in_an_hour = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    // (Retry-After, the least pause the error must carry)
    let cases = [
        ("30", Duration::from_secs(30)),
        (in_an_hour.as_str(), Duration::from_secs(3500)),
    ];
    for (retry_after, at_least) in cases {
        let (fake, client, url) = start().await;
        let token = login(&client, &url).await;
        fake.inject(Fault {
            retry_after: Some(retry_after.into()),
            ..fault(Endpoint::ViewKey, 429, 1)
        });

        let started = Instant::now();
        let limited = client.view_key(&url, &token).await.unwrap_err();

        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{retry_after}: waited inline"
        );
        match &limited {
            TerrakioError::RateLimited {
                call: Call::ViewKey,
                retry_after: Some(after),
            } => {
                assert!(*after >= at_least, "{retry_after}: {after:?}")
            }
            other => panic!("{retry_after}: expected RateLimited, got {other:?}"),
        }
        assert!(limited.to_string().contains("retry after"), "{limited}");
        assert_eq!(fake.calls(Endpoint::ViewKey), 1, "{retry_after}");
    }
}

#[tokio::test]
async fn generate_key_replaces_the_current_key() {
    let (fake, client, url) = start().await;
    let old = fake.generate_key_for(EMAIL);
    let token = login(&client, &url).await;

    let new = client.generate_key(&url, &token).await.unwrap();

    assert_ne!(new.expose(), old);
    assert!(
        fake.data_accepts(new.expose()),
        "the new key opens the data services"
    );
    assert!(!fake.data_accepts(&old), "the replaced key stops working");
    assert_eq!(fake.current_key(EMAIL).as_deref(), Some(new.expose()));
    assert_eq!(fake.calls(Endpoint::GenerateKey), 1);
}

#[tokio::test]
async fn generate_key_is_never_retried() {
    // Even a status that shows the request never arrived is not repeated: a repeat of a
    // generate whose answer was lost would rotate twice.
    for status in [408, 429, 500, 502, 503, 504] {
        let (fake, client, url) = start().await;
        let key = fake.generate_key_for(EMAIL);
        let token = login(&client, &url).await;
        fake.inject(fault(Endpoint::GenerateKey, status, 1));

        let failed = client.generate_key(&url, &token).await;

        assert!(failed.is_err(), "{status}: {failed:?}");
        assert_eq!(fake.calls(Endpoint::GenerateKey), 1, "{status}");
        assert_eq!(
            fake.current_key(EMAIL),
            Some(key),
            "{status}: the fault replaced the call"
        );
    }
}

#[tokio::test]
async fn a_generate_whose_answer_is_lost_is_flagged_and_read_back() {
    let (fake, client, url) = start().await;
    let old = fake.generate_key_for(EMAIL);
    let token = login(&client, &url).await;
    // The key rotates, then the answer comes after the client's 2 s timeout.
    fake.inject(Fault {
        latency_ms: Some(2500),
        after_effect: true,
        ..Fault::on(Endpoint::GenerateKey)
    });

    let lost = client.generate_key(&url, &token).await.unwrap_err();

    assert!(lost.outcome_unknown(), "{lost:?}");
    assert!(
        matches!(
            lost,
            TerrakioError::Unavailable {
                call: Call::GenerateKey,
                ..
            }
        ),
        "{lost:?}"
    );
    assert_eq!(fake.calls(Endpoint::GenerateKey), 1);
    let current = fake.current_key(EMAIL).expect("the account has a key");
    assert_ne!(
        current, old,
        "the fake rotated although the answer was lost"
    );

    let read_back = client.view_key(&url, &token).await.unwrap();
    assert_eq!(
        read_back.as_ref().map(ApiKey::expose),
        Some(current.as_str())
    );
    assert_eq!(
        fake.calls(Endpoint::GenerateKey),
        1,
        "reading back generates nothing"
    );
}

#[tokio::test]
async fn a_connection_that_never_opened_cannot_have_rotated() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();

    let failed = client()
        .generate_key(&url, &Token::new("any"))
        .await
        .unwrap_err();

    assert!(
        matches!(
            failed,
            TerrakioError::Unavailable {
                request_sent: false,
                ..
            }
        ),
        "{failed:?}"
    );
    assert!(!failed.outcome_unknown());
}

#[tokio::test]
async fn error_bodies_of_every_shape_are_shown_short() {
    let long_json = format!(r#"{{"detail": "{}"}}"#, "x ".repeat(2500));
    let long_text = "y ".repeat(2500);
    // Multi-byte characters: a cut by bytes would fall inside one and panic.
    let long_wide = "ü".repeat(5000);
    let html = "<html><head><title>403 Forbidden</title></head>\n<body><h1>Forbidden</h1></body>\
                </html>\n";
    // (body, content type, what the error must show)
    let cases = [
        (
            r#"{"detail": {"message": "Quota exhausted"}}"#,
            "application/json",
            "Quota exhausted",
        ),
        (
            r#"{"detail": "Forbidden here"}"#,
            "application/json",
            "Forbidden here",
        ),
        (
            r#"{"detail": [{"loc": ["body", "email"], "msg": "field required"}]}"#,
            "application/json",
            "field required",
        ),
        (
            "Forbidden by the proxy\n",
            "text/plain",
            "Forbidden by the proxy",
        ),
        (html, "text/html", "<title>403 Forbidden</title>"),
        (r#"{"detail": "#, "application/json", r#"{"detail":"#),
        ("", "text/plain", "(empty body)"),
        (
            long_json.as_str(),
            "application/json",
            "x x x x x x x x x x x",
        ),
        (long_text.as_str(), "text/plain", "y y y y y y y y y y y"),
        (long_wide.as_str(), "text/plain", "üüüüüüüüüü..."),
    ];
    for (body, content_type, shown) in cases {
        let (fake, client, url) = start().await;
        let token = login(&client, &url).await;
        fake.inject(Fault {
            body: Some(body.into()),
            content_type: Some(content_type.into()),
            ..fault(Endpoint::ViewKey, 403, 1)
        });

        let err = client.view_key(&url, &token).await.unwrap_err();

        let label: String = body.chars().take(40).collect();
        assert!(
            matches!(err, TerrakioError::Rejected { status: 403, .. }),
            "{label}: {err:?}"
        );
        let display = err.to_string();
        assert!(display.contains(shown), "{label}: {display}");
        let detail = quoted_detail(&err).chars().count();
        assert!(detail <= MAX_SHOWN_DETAIL, "{label}: {detail} chars");
    }
}

/// Which call a table row makes.
#[derive(Clone, Copy, Debug)]
enum Which {
    Login,
    ViewKey,
    GenerateKey,
}

impl Which {
    fn endpoint(self) -> Endpoint {
        match self {
            Which::Login => Endpoint::Login,
            Which::ViewKey => Endpoint::ViewKey,
            Which::GenerateKey => Endpoint::GenerateKey,
        }
    }
}

/// Makes the call with the account's good password, keeping only whether it failed and how.
async fn run(
    which: Which,
    client: &TerrakioClient,
    url: &Url,
    token: &Token,
) -> Result<(), TerrakioError> {
    match which {
        Which::Login => client
            .login(url, EMAIL, &Password::new(PASSWORD))
            .await
            .map(drop),
        Which::ViewKey => client.view_key(url, token).await.map(drop),
        Which::GenerateKey => client.generate_key(url, token).await.map(drop),
    }
}

#[tokio::test]
async fn every_kind_of_error_cuts_a_long_body() {
    let long = "z ".repeat(2500);
    // (call, status, faults needed to make the call fail: one more than its retries)
    let cases = [
        (Which::Login, 401, 1),
        (Which::Login, 500, 1),
        (Which::Login, 503, 4),
        (Which::ViewKey, 401, 1),
        (Which::ViewKey, 500, 4),
        (Which::ViewKey, 409, 1),
        (Which::GenerateKey, 400, 1),
        (Which::GenerateKey, 502, 1),
    ];
    for (which, status, times) in cases {
        let (fake, client, url) = start().await;
        let token = login(&client, &url).await;
        fake.inject(Fault {
            body: Some(long.clone()),
            content_type: Some("text/plain".into()),
            ..fault(which.endpoint(), status, times)
        });

        let err = run(which, &client, &url, &token).await.unwrap_err();

        let detail = quoted_detail(&err);
        assert!(detail.starts_with("z z z"), "{which:?} {status}: {err}");
        assert!(
            detail.chars().count() <= MAX_SHOWN_DETAIL,
            "{which:?} {status}: {} chars",
            detail.chars().count()
        );
        assert!(err.to_string().len() < 300, "{which:?} {status}: {err}");
    }
}

#[tokio::test]
async fn one_login_serves_every_call_of_a_session() {
    let (fake, client, url) = start().await;
    fake.generate_key_for(EMAIL);
    let sessions = Sessions::default();
    let account = account(&url, PASSWORD);

    // Two at once: the second waits for the first one's login instead of making its own.
    let (one, two) = tokio::join!(
        view_key_in(&sessions, &client, &account),
        view_key_in(&sessions, &client, &account),
    );
    let three = view_key_in(&sessions, &client, &account).await;

    for answer in [one, two, three] {
        assert!(matches!(answer, Ok(Some(_))), "{answer:?}");
    }
    assert_eq!(fake.calls(Endpoint::Login), 1);
    assert_eq!(fake.calls(Endpoint::ViewKey), 3);
    assert_eq!(sessions.len(), 1);
}

#[tokio::test]
async fn sessions_are_per_endpoint() {
    let (first, client, first_url) = start().await;
    let (second, _, second_url) = start().await;
    let sessions = Sessions::default();

    for url in [&first_url, &second_url] {
        let answer = view_key_in(&sessions, &client, &account(url, PASSWORD)).await;
        assert!(matches!(answer, Ok(None)), "{answer:?}");
    }

    // The same email and password at another deployment is another account.
    assert_eq!(first.calls(Endpoint::Login), 1);
    assert_eq!(second.calls(Endpoint::Login), 1);
    assert_eq!(sessions.len(), 2);
}

#[tokio::test]
async fn an_expired_token_is_renewed_before_use() {
    let (fake, client, url) = start().await;
    fake.set_token_lifetime(Duration::from_secs(1));
    let sessions = Sessions::default();
    let account = account(&url, PASSWORD);

    assert!(view_key_in(&sessions, &client, &account).await.is_ok());
    let first = Token::new(fake.issued_tokens()[0].clone());
    let exp = read_claims(&first)
        .expect("the fake's token has claims")
        .exp;
    let until_expired = (exp as f64 - unix_now()).max(0.0) + 0.2;
    tokio::time::sleep(Duration::from_secs_f64(until_expired)).await;

    assert!(view_key_in(&sessions, &client, &account).await.is_ok());

    assert_eq!(fake.calls(Endpoint::Login), 2);
    // Two view calls for two uses: the expired token was never sent to be refused.
    assert_eq!(fake.calls(Endpoint::ViewKey), 2);
}

#[tokio::test]
async fn a_refused_token_is_replaced_once_and_the_call_repeated() {
    let (fake, client, url) = start().await;
    let key = fake.generate_key_for(EMAIL);
    let sessions = Sessions::default();
    let account = account(&url, PASSWORD);
    assert!(view_key_in(&sessions, &client, &account).await.is_ok());
    fake.inject(Fault {
        body: Some(NOT_AUTHENTICATED.into()),
        ..fault(Endpoint::ViewKey, 401, 1)
    });

    let viewed = view_key_in(&sessions, &client, &account).await.unwrap();

    assert_eq!(viewed.as_ref().map(ApiKey::expose), Some(key.as_str()));
    assert_eq!(
        fake.calls(Endpoint::Login),
        2,
        "one new login after the refusal"
    );
    assert_eq!(fake.calls(Endpoint::ViewKey), 3);

    // The new token is cached in place of the refused one.
    assert!(view_key_in(&sessions, &client, &account).await.is_ok());
    assert_eq!(fake.calls(Endpoint::Login), 2);
}

#[tokio::test]
async fn a_second_refusal_in_a_row_gives_up() {
    let (fake, client, url) = start().await;
    let sessions = Sessions::default();
    let account = account(&url, PASSWORD);
    fake.inject(Fault {
        body: Some(NOT_AUTHENTICATED.into()),
        ..fault(Endpoint::ViewKey, 401, 2)
    });

    let refused = view_key_in(&sessions, &client, &account).await.unwrap_err();

    match &refused {
        TerrakioError::NotAuthenticated {
            call: Call::ViewKey,
            status: 401,
            detail,
        } => {
            assert_eq!(detail, "Not authenticated")
        }
        other => panic!("expected NotAuthenticated, got {other:?}"),
    }
    assert_eq!(fake.calls(Endpoint::Login), 2);
    assert_eq!(
        fake.calls(Endpoint::ViewKey),
        2,
        "one call and one repeat, no loop"
    );
}

#[tokio::test]
async fn a_different_password_does_not_ride_on_a_session() {
    let (fake, client, url) = start().await;
    let sessions = Sessions::default();
    let good = account(&url, PASSWORD);
    assert!(view_key_in(&sessions, &client, &good).await.is_ok());

    let wrong = account(&url, WRONG_PASSWORD);
    let refused = view_key_in(&sessions, &client, &wrong).await.unwrap_err();

    assert!(
        matches!(refused, TerrakioError::LoginRefused { status: 401, .. }),
        "{refused:?}"
    );
    assert_eq!(
        fake.calls(Endpoint::Login),
        2,
        "the wrong password logged in itself"
    );
    assert_eq!(
        fake.calls(Endpoint::ViewKey),
        1,
        "no call ran for the wrong password"
    );

    // The good session is still there and still used.
    assert!(view_key_in(&sessions, &client, &good).await.is_ok());
    assert_eq!(fake.calls(Endpoint::Login), 2);
}

/// One error of each kind, each from a real exchange with the fake.
async fn errors_from_real_exchanges(
    fake: &FakeTerrakio,
    client: &TerrakioClient,
    url: &Url,
) -> Vec<TerrakioError> {
    let token = login(client, url).await;
    let bearer = Token::new(format!("Bearer {}", token.expose()));
    let mut errors = vec![
        client
            .login(url, EMAIL, &Password::new(WRONG_PASSWORD))
            .await
            .unwrap_err(),
        client.view_key(url, &bearer).await.unwrap_err(),
    ];

    let injected = [
        (Which::ViewKey, fault(Endpoint::ViewKey, 503, 4)),
        (
            Which::ViewKey,
            Fault {
                retry_after: Some("60".into()),
                ..fault(Endpoint::ViewKey, 429, 1)
            },
        ),
        (Which::GenerateKey, fault(Endpoint::GenerateKey, 403, 1)),
        (
            Which::GenerateKey,
            Fault {
                body: Some("not json".into()),
                ..fault(Endpoint::GenerateKey, 200, 1)
            },
        ),
        (
            Which::GenerateKey,
            Fault {
                latency_ms: Some(2500),
                after_effect: true,
                ..Fault::on(Endpoint::GenerateKey)
            },
        ),
    ];
    for (which, fault) in injected {
        fake.inject(fault);
        errors.push(run(which, client, url, &token).await.unwrap_err());
    }
    errors
}

#[tokio::test]
async fn nothing_shown_carries_a_password_token_or_key() {
    let (fake, client, url) = start().await;
    fake.generate_key_for(EMAIL);
    let sessions = Sessions::default();
    let account = account(&url, PASSWORD);
    let key = view_key_in(&sessions, &client, &account).await.unwrap();

    let errors = errors_from_real_exchanges(&fake, &client, &url).await;
    for err in &errors {
        assert_no_secret(&fake, &format!("{err}"));
        assert_no_secret(&fake, &format!("{err:?}"));
    }

    let token = Token::new(fake.issued_tokens()[0].clone());
    let values = [
        format!("{token:?}"),
        format!("{key:?}"),
        format!("{account:?}"),
        format!("{:?}", Password::new(PASSWORD)),
    ];
    for shown in values {
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_no_secret(&fake, &shown);
    }
}

/// Servers built on FastAPI answer a request that fails validation with 422 and a `detail`
/// list whose entries echo the offending `input`. A refusal must not show what was sent.
#[tokio::test]
async fn a_refusal_that_echoes_a_secret_does_not_show_it() {
    let (fake, client, url) = start().await;
    let token = login(&client, &url).await;
    // The signature is what makes a token a credential; the 200-character cut may keep only
    // its beginning, which is as much a leak.
    let signature = token.expose().rsplit('.').next().unwrap_or_default();
    let echo = |field: &str, input: &str| {
        let entry = serde_json::json!({
            "type": "string_too_short",
            "loc": ["body", field],
            "msg": "String should have at least 512 characters",
            "input": input,
        });
        serde_json::json!({ "detail": [entry] }).to_string()
    };
    // (call, the body the server answers, a piece of the secret that must not be shown)
    let cases = [
        (Which::Login, echo("password", PASSWORD), PASSWORD),
        (
            Which::ViewKey,
            echo("authorization", token.expose()),
            &signature[..8],
        ),
    ];
    let mut shown_secrets = Vec::new();
    for (which, body, secret) in cases {
        fake.inject(Fault {
            body: Some(body),
            ..fault(which.endpoint(), 422, 1)
        });

        let err = run(which, &client, &url, &token).await.unwrap_err();

        if format!("{err}").contains(secret) || format!("{err:?}").contains(secret) {
            shown_secrets.push(format!("{which:?}: {err}"));
        }
    }
    assert!(shown_secrets.is_empty(), "{shown_secrets:#?}");
}
