//! What a service that runs for weeks needs: a token kept fresh while idle, nothing left
//! behind when the layer goes, a startup check, a status for health checks, and passwords
//! that rotate. On tokio's paused clock, over the in-process mock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use ocient_mock::{Fault, MockOcient};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tower_token_refresh::{Error, OcientAuth, TokenPhase, TokenRefreshLayer};

use crate::common;
use crate::common::{assert_nothing_left, auth, layered, query, secs, send, token_error, BASE};

/// 60 s tokens, and token requests that take a second, so a request that waits for one
/// shows on the clock.
fn slow_minute_tokens() -> MockOcient {
    MockOcient::new().token_lifetime(secs(60)).latency(secs(1))
}

#[tokio::test(start_paused = true)]
async fn an_idle_service_keeps_its_token_fresh_and_never_waits() {
    let mock = slow_minute_tokens();
    let layer = TokenRefreshLayer::new(auth()).refresh_when_idle(true);
    let (service, _recorder) = layered(mock.clone(), layer);
    send(&service, query()).await.unwrap();

    sleep(secs(10 * 3600)).await;
    let counters = mock.counters();
    assert_eq!(counters.logins, 1);
    assert!(
        counters.refreshes >= 600,
        "at least one refresh per lifetime: {}",
        counters.refreshes
    );

    let (before, started) = (counters.token_requests(), Instant::now());
    send(&service, query()).await.unwrap();
    assert_eq!(Instant::now(), started, "the request did not wait");
    assert_eq!(
        mock.counters().token_requests(),
        before,
        "nor ask for a token"
    );
    assert_eq!(mock.counters().queries_bad_token, 0);
}

#[tokio::test(start_paused = true)]
async fn without_idle_refresh_a_long_pause_costs_one_token_request_when_traffic_resumes() {
    let mock = slow_minute_tokens();
    let (service, _recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();

    sleep(secs(10 * 3600)).await;
    assert_eq!(mock.counters().token_requests(), 1, "nothing while idle");
    let started = Instant::now();
    send(&service, query()).await.unwrap();
    assert_eq!(mock.counters().token_requests(), 2);
    assert!(
        Instant::now() > started,
        "that request waited for its token"
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_outlives_the_layer_and_its_services() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let mock = slow_minute_tokens();
    let layer = TokenRefreshLayer::new(auth()).refresh_when_idle(true);
    let (service, recorder) = layered(mock.clone(), layer.clone());
    send(&service, query()).await.unwrap();
    sleep(secs(600)).await;
    assert!(
        metrics.num_alive_tasks() > baseline,
        "a timer watches the token"
    );
    assert!(
        Arc::strong_count(&recorder.seen) > 2,
        "a clone of the inner service is kept"
    );

    drop((service, layer));
    assert_nothing_left(baseline, &recorder.seen, || {
        mock.counters().token_requests()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_refresh_backing_off_ends_with_the_layer() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let mock = MockOcient::new().token_lifetime(secs(3600));
    let (service, recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    // Past the latest refresh point, at 60% of the lifetime.
    sleep(secs(2200)).await;
    // The refresh fails, and keeps failing: the flight backs off until the dead point.
    mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), usize::MAX);
    send(&service, query()).await.unwrap();
    sleep(secs(5)).await;
    assert!(mock.counters().failed_token_requests >= 1);

    drop(service);
    assert_nothing_left(baseline, &recorder.seen, || {
        mock.counters().token_requests()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn idle_refresh_without_credentials_stops_once_the_token_is_past_saving() {
    let mock = MockOcient::new()
        .token_lifetime(secs(60))
        .refresh_lifetime(secs(150));
    let token = common::login_token(&mock).await;
    let failures = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&failures);
    let sso = OcientAuth::new(BASE.parse().unwrap()).initial_token(token, secs(60));
    let layer = TokenRefreshLayer::new(sso)
        .refresh_when_idle(true)
        .on_token(move |event| {
            if let tower_token_refresh::TokenEvent::Failed { .. } = event {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
    let (service, _recorder) = layered(mock.clone(), layer);
    send(&service, query()).await.unwrap();

    sleep(secs(3600)).await;
    assert!(
        failures.load(Ordering::SeqCst) >= 1,
        "the failure was reported"
    );
    let requests = mock.counters().token_requests();
    sleep(secs(3600)).await;
    assert_eq!(
        mock.counters().token_requests(),
        requests,
        "then it stopped trying"
    );
    let error = send(&service, query()).await.unwrap_err();
    assert!(
        matches!(token_error(&error), Error::Rejected { .. }),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn warm_up_with_a_wrong_password_is_rejected_and_sends_no_query() {
    let mock = MockOcient::new();
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "wrong");
    let (service, _recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    match service.warm_up().await {
        Err(error @ Error::Rejected { .. }) => assert_eq!(error.vendor_code(), Some(-304)),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let counters = mock.counters();
    assert_eq!(counters.logins, 1);
    let queries = counters.queries_ok + counters.queries_bad_token + counters.queries_no_token;
    assert_eq!(queries, 0);
}

#[tokio::test(start_paused = true)]
async fn after_warm_up_a_hundred_queries_need_no_token_request() {
    let mock = MockOcient::new();
    let (service, _recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    service.warm_up().await.unwrap();
    assert_eq!(mock.counters().logins, 1);
    let mut queries = JoinSet::new();
    for _ in 0..100 {
        let service = service.clone();
        queries.spawn(async move { send(&service, query()).await.map(|r| r.status()) });
    }
    while let Some(status) = queries.join_next().await {
        assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
    }
    assert_eq!(mock.counters().token_requests(), 1);
    service.warm_up().await.unwrap();
    assert_eq!(
        mock.counters().token_requests(),
        1,
        "a usable token: nothing sent"
    );
}

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_warm_ups_share_one_login() {
    let mock = slow_minute_tokens();
    let (service, _recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    let mut warm_ups = JoinSet::new();
    for _ in 0..50 {
        let service = service.clone();
        warm_ups.spawn(async move { service.warm_up().await });
    }
    while let Some(outcome) = warm_ups.join_next().await {
        outcome.unwrap().unwrap();
    }
    assert_eq!(mock.counters().logins, 1);
}

#[tokio::test(start_paused = true)]
async fn status_follows_the_token_through_its_phases() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let layer = TokenRefreshLayer::new(auth());
    let (service, _recorder) = layered(mock.clone(), layer.clone());
    let status = service.status();
    assert_eq!((status.phase, status.generation), (TokenPhase::Absent, 0));
    assert!(!status.is_usable() && status.expires_in.is_none());

    send(&service, query()).await.unwrap();
    let status = service.status();
    assert_eq!((status.phase, status.generation), (TokenPhase::Fresh, 1));
    assert_eq!(status.expires_in, Some(secs(100)));
    assert!(status.is_usable() && !status.refreshing);
    assert_eq!(
        layer.status().generation,
        1,
        "the layer sees the same token"
    );

    sleep(secs(61)).await;
    assert_eq!(service.status().phase, TokenPhase::Due);
    assert!(service.status().is_usable());
    sleep(secs(35)).await;
    let status = service.status();
    assert_eq!(status.phase, TokenPhase::Dead);
    assert!(!status.is_usable());
    assert_eq!(status.expires_in, Some(secs(4)));

    send(&service, query()).await.unwrap();
    assert_eq!(service.status().generation, 2);
    mock.revoke_all();
    let answer = send(&service, query()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(service.status().phase, TokenPhase::Revoked);
}

#[tokio::test(start_paused = true)]
async fn status_reports_a_failed_refresh_while_the_token_stays_usable() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let (service, recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    sleep(secs(61)).await;
    mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 1);
    send(&service, query()).await.unwrap();
    sleep(Duration::from_millis(1)).await;

    let status = service.status();
    assert!(status.is_usable(), "{status:?}");
    assert_eq!(status.consecutive_failures, 1);
    assert!(status.refreshing, "backing off before the next try");
    let error = status.last_error.clone().expect("the failure is kept");
    assert!(error.to_string().contains("503"), "{error}");

    let token = recorder.seen_at("/v1/execute/retail_analytics")[0].headers["authorization"]
        .to_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned();
    let shown = format!("{status:?}");
    assert!(!shown.contains(&token), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn a_rotated_password_is_picked_up_at_the_next_login() {
    let mock = MockOcient::new();
    let password = Arc::new(Mutex::new("secret".to_owned()));
    let asked = Arc::new(AtomicUsize::new(0));
    let (current, count) = (Arc::clone(&password), Arc::clone(&asked));
    let auth = OcientAuth::new(BASE.parse().unwrap())
        .database("retail_analytics")
        .credentials_from(move || {
            count.fetch_add(1, Ordering::SeqCst);
            let password = current.lock().unwrap().clone();
            async move { Ok(("jdoe".to_owned(), password)) }
        });
    let (service, recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    send(&service, query()).await.unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1, "asked at the login only");

    mock.set_password("jdoe", "rotated");
    *password.lock().unwrap() = "rotated".to_owned();
    mock.revoke_all();
    let refused = send(&service, query()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    send(&service, query()).await.unwrap();

    assert_eq!(asked.load(Ordering::SeqCst), 2);
    let logins = recorder.seen_at("/v1/login");
    assert!(String::from_utf8_lossy(&logins[1].body).contains("rotated"));
    assert_eq!(mock.counters().failed_token_requests, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failing_provider_backs_off_like_a_failed_login() {
    let mock = MockOcient::new();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&asked);
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials_from(move || {
        let first = count.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                Err("the vault is sealed: s3cr3t".into())
            } else {
                Ok(("jdoe".to_owned(), "secret".to_owned()))
            }
        }
    });
    let layer = TokenRefreshLayer::new(auth).retry_backoff(secs(10), secs(60));
    let (service, _recorder) = layered(mock.clone(), layer);

    let error = send(&service, query()).await.unwrap_err();
    let Error::Provider { source } = token_error(&error) else {
        panic!("expected a provider error, got {error}");
    };
    assert!(source.to_string().contains("sealed"));
    assert!(!format!("{error} {:?}", token_error(&error).to_string()).contains("s3cr3t"));
    let again = send(&service, query()).await.unwrap_err();
    assert!(matches!(token_error(&again), Error::Provider { .. }));
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "not asked again during the backoff"
    );

    sleep(secs(13)).await;
    send(&service, query()).await.unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert_eq!(mock.counters().logins, 1);
}
