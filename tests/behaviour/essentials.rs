//! What the layer does with the token on every request: puts it on, logs in once for
//! concurrent callers, refreshes it in the background, never sends a dead one, logs in again
//! when a refresh is rejected as revoked, and reports a wrong password. On tokio's paused clock over an
//! in-process mock.

use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::StatusCode;
use ocient_mock::{Fault, MockOcient};
use tokio::time::{sleep, Instant};
use tower_token_refresh::{Error, OcientAuth, TokenRefreshLayer};

use crate::common;
use crate::common::{all_ok_at_once, auth, layered, query, secs, send, token_error, BASE};

const MINUTE: Duration = Duration::from_secs(60);

fn bearer_of(seen: &common::Seen) -> String {
    seen.headers[AUTHORIZATION].to_str().unwrap().to_owned()
}

// Every request to the API's origin carries `Authorization: Bearer <token>`, sensitive.
#[tokio::test(start_paused = true)]
async fn requests_carry_a_sensitive_bearer_token() {
    let (service, recorder) = layered(MockOcient::new(), TokenRefreshLayer::new(auth()));
    for _ in 0..3 {
        let response = send(&service, query()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let queries = recorder.seen_at("/v1/execute/retail_analytics");
    assert_eq!(queries.len(), 3);
    for seen in &queries {
        let header = &seen.headers[AUTHORIZATION];
        assert!(
            header.is_sensitive(),
            "the token header must be marked sensitive"
        );
        assert!(bearer_of(seen).starts_with("Bearer mock."), "{header:?}");
    }
    assert_eq!(recorder.mock.counters().queries_ok, 3);
}

// No token yet: one login, sent through the inner service, shared by concurrent callers.
#[tokio::test(start_paused = true)]
async fn concurrent_first_requests_share_one_login() {
    let mock = MockOcient::new().latency(Duration::from_millis(200));
    let (service, recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    all_ok_at_once(&service, 100).await;
    let counters = mock.counters();
    assert_eq!((counters.logins, counters.refreshes), (1, 0));
    assert_eq!(counters.queries_ok, 100);

    let login = &recorder.seen_at("/v1/login")[0];
    assert_eq!(login.headers[CONTENT_TYPE], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&login.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"username": "jdoe", "password": "secret", "database": "retail_analytics"})
    );
}

// Once half the lifetime is left, the next request starts one background refresh and goes
// out at once with the current token.
#[tokio::test(start_paused = true)]
async fn refresh_runs_in_the_background_once_half_the_lifetime_is_left() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let (service, recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    let first = bearer_of(&recorder.seen_at("/v1/execute/retail_analytics")[0]);

    sleep(secs(45)).await;
    send(&service, query()).await.unwrap();
    assert_eq!(
        mock.counters().refreshes,
        0,
        "55% of the lifetime is left: too early"
    );

    // Past the latest refresh point (50% left, plus up to 10% spread).
    sleep(secs(16)).await;
    mock.set_latency(secs(5));
    let before = Instant::now();
    for _ in 0..10 {
        send(&service, query()).await.unwrap();
    }
    assert_eq!(
        Instant::now(),
        before,
        "callers must not wait for a refresh"
    );
    let sent = recorder.seen_at("/v1/execute/retail_analytics");
    assert!(
        sent.iter().all(|s| bearer_of(s) == first),
        "the valid token keeps going out"
    );

    sleep(secs(6)).await;
    assert_eq!(
        mock.counters().refreshes,
        1,
        "one refresh for all those callers"
    );
    let refresh = &recorder.seen_at("/v1/token_refresh")[0];
    assert_eq!(bearer_of(refresh), first);
    assert_eq!(refresh.headers[CONTENT_TYPE], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&refresh.body).unwrap();
    assert_eq!(body, serde_json::json!({"database": "retail_analytics"}));

    send(&service, query()).await.unwrap();
    let last = recorder
        .seen_at("/v1/execute/retail_analytics")
        .pop()
        .unwrap();
    assert_ne!(
        bearer_of(&last),
        first,
        "the refreshed token replaces the old one"
    );
}

// `refresh_at` moves the refresh point.
#[tokio::test(start_paused = true)]
async fn refresh_at_moves_the_refresh_point() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let layer = TokenRefreshLayer::new(auth()).refresh_at(0.8);
    let (service, _) = layered(mock.clone(), layer);
    send(&service, query()).await.unwrap();
    sleep(secs(15)).await;
    send(&service, query()).await.unwrap();
    assert_eq!(mock.counters().refreshes, 0, "85% left: not yet");
    sleep(secs(16)).await;
    send(&service, query()).await.unwrap();
    sleep(secs(1)).await;
    assert_eq!(
        mock.counters().refreshes,
        1,
        "69% left: past 80% plus the spread"
    );
}

// A dead token: callers wait, all on one token request; tokio's clock drives the expiry.
#[tokio::test(start_paused = true)]
async fn a_thousand_callers_at_an_expired_token_cause_one_token_request() {
    let mock = MockOcient::new().token_lifetime(MINUTE);
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    sleep(secs(70)).await;
    mock.set_latency(Duration::from_millis(20));

    all_ok_at_once(&service, 1000).await;
    let counters = mock.counters();
    assert_eq!(
        counters.token_requests(),
        2,
        "the first login, then exactly one more"
    );
    assert_eq!(
        counters.queries_bad_token, 0,
        "no request may carry a dead token"
    );
    assert_eq!(counters.queries_ok, 1001);
}

// Inside the safety margin before expiry the token is dead to us, though not yet to the
// server: callers wait for a refresh of it, never send it.
#[tokio::test(start_paused = true)]
async fn a_token_about_to_expire_is_refreshed_not_sent() {
    let mock = MockOcient::new().token_lifetime(MINUTE);
    let (service, recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()).refresh_at(0.0));
    send(&service, query()).await.unwrap();
    sleep(secs(57)).await;
    send(&service, query()).await.unwrap();
    let counters = mock.counters();
    assert_eq!((counters.logins, counters.refreshes), (1, 1));
    let sent = recorder.seen_at("/v1/execute/retail_analytics");
    assert_ne!(bearer_of(&sent[0]), bearer_of(&sent[1]));
    assert_eq!(counters.queries_bad_token, 0);
}

// A refresh rejected because the token is revoked: log in again.
#[tokio::test(start_paused = true)]
async fn rejected_refresh_falls_back_to_login() {
    for (status, vendor_code) in [
        (StatusCode::UNAUTHORIZED, -1208),
        (StatusCode::FORBIDDEN, -1),
        (StatusCode::OK, -733),
        (StatusCode::OK, -1205),
        (StatusCode::BAD_REQUEST, -1206),
    ] {
        let mock = MockOcient::new().token_lifetime(MINUTE);
        let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
        send(&service, query()).await.unwrap();
        mock.fail_token_requests(
            Fault::VendorCode {
                http: status,
                vendor_code,
                sql_state: "08004",
            },
            1,
        );
        sleep(secs(40)).await;
        send(&service, query()).await.unwrap();
        sleep(secs(1)).await;
        let counters = mock.counters();
        assert_eq!(
            (counters.logins, counters.refreshes),
            (2, 1),
            "{status} / {vendor_code}: the rejected refresh must lead to one new login"
        );
        send(&service, query()).await.unwrap();
        assert_eq!(mock.counters().queries_bad_token, 0);
    }
}

// Without credentials a dead token is an error, promptly, and never sent.
#[tokio::test(start_paused = true)]
async fn without_credentials_a_dead_token_fails_promptly() {
    let mock = MockOcient::new();
    let auth = OcientAuth::new(BASE.parse().unwrap())
        .initial_token("handed-over-by-sso", MINUTE)
        .database("retail_analytics");
    let (service, recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    // The mock never issued this token, so it can be neither used nor refreshed; the
    // layer still sends it while it believes it alive.
    send(&service, query()).await.unwrap();
    assert_eq!(mock.counters().queries_bad_token, 1);

    sleep(secs(61)).await;
    let before = Instant::now();
    let error = send(&service, query()).await.unwrap_err();
    assert_eq!(Instant::now(), before, "the error must come at once");
    match token_error(&error) {
        error @ Error::Rejected { .. } => assert_eq!(error.vendor_code(), Some(-1205)),
        other => panic!("expected Rejected, got {other:?}"),
    }
    let counters = mock.counters();
    assert_eq!(counters.logins, 0, "no credentials: no login");
    assert_eq!(counters.queries_bad_token, 1, "the dead token was not sent");
    assert_eq!(recorder.seen_at("/v1/execute/retail_analytics").len(), 1);
}

// An initial token is refreshed, without credentials, for as long as the server allows.
#[tokio::test(start_paused = true)]
async fn an_initial_token_is_refreshed_without_credentials() {
    let mock = MockOcient::new().token_lifetime(MINUTE);
    // A token obtained elsewhere: someone else logged in and handed it over.
    let issued = common::login_token(&mock).await;
    let auth = OcientAuth::new(BASE.parse().unwrap()).initial_token(issued, MINUTE);
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    for _ in 0..5 {
        send(&service, query()).await.unwrap();
        sleep(secs(40)).await;
    }
    let counters = mock.counters();
    assert_eq!(
        counters.logins, 1,
        "only whoever handed the token over logged in"
    );
    assert!(
        counters.refreshes >= 3,
        "refreshed {} times",
        counters.refreshes
    );
    assert_eq!(counters.queries_bad_token, 0);
}

// A wrong password is `Rejected` with vendor code -304, however the server says it.
#[tokio::test(start_paused = true)]
async fn wrong_password_is_rejected_with_vendor_code_304() {
    for in_band in [false, true] {
        let mock = MockOcient::new().errors_in_band(in_band);
        let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "hunter2");
        let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
        let error = send(&service, query()).await.unwrap_err();
        let expected_status = if in_band {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        match token_error(&error) {
            error @ Error::Rejected { status, .. } => {
                assert_eq!(error.vendor_code(), Some(-304));
                assert_eq!(*status, expected_status);
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("-304"), "{shown}");
        assert!(!shown.contains("hunter2"), "the password leaked: {shown}");
        assert_eq!(
            mock.counters().queries_no_token + mock.counters().queries_ok,
            0
        );
    }
}

// The contract's auto traits: clones share one token across threads, and the response
// future can be spawned.
#[test]
fn services_and_futures_are_send_sync_and_static() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn future_send_static<S, R>()
    where
        S: tower::Service<R>,
        S::Future: Send + 'static,
    {
    }
    type Client = hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >;
    send_sync::<tower_token_refresh::TokenRefresh<Client>>();
    send_sync::<TokenRefreshLayer>();
    send_sync::<OcientAuth>();
    send_sync::<Error>();
    send_sync::<MockOcient>();

    future_send_static::<tower_token_refresh::TokenRefresh<Client>, common::QueryRequest>();
}
