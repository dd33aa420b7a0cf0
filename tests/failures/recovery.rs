//! Recovering as fast as the server does: after an outage that outlived the token, with
//! traffic or with none, a server's `Retry-After`, and a new token asked for now. On tokio's
//! paused clock, over the in-process mock behind a switch that closes its port.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::StatusCode;
use ocient_mock::{Fault, MockOcient};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tower_token_refresh::{Error, OcientAuth, TokenRefresh, TokenRefreshLayer};

use crate::common::outage::Switch;
use crate::common::{
    assert_nothing_left, auth, layered, millis, query, secs, send, switched, token_error, Recorder,
    BASE,
};

type Service = TokenRefresh<Switch<Recorder>>;

/// How long the server is away in the outage tests: three token lifetimes.
const OUTAGE: Duration = Duration::from_secs(180);

fn minute_tokens() -> MockOcient {
    MockOcient::new().token_lifetime(secs(60))
}

/// A caller every 100 ms for `total`, each on its own task; what each got, by when it got
/// it (from `start`).
async fn traffic(service: Service, start: Instant, total: Duration) -> Vec<(Duration, bool)> {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut callers = JoinSet::new();
    while start.elapsed() < total {
        let (service, outcomes) = (service.clone(), Arc::clone(&outcomes));
        callers.spawn(async move {
            let ok = send(&service, query()).await.is_ok();
            outcomes.lock().unwrap().push((start.elapsed(), ok));
        });
        sleep(millis(100)).await;
    }
    callers.join_all().await;
    let outcomes = outcomes.lock().unwrap().clone();
    outcomes
}

/// Takes the node down 10 s after `start` for [`OUTAGE`]; returns the token requests that
/// met the closed port, and when (from `start`) the node came back.
async fn outage(switch: &Switch<Recorder>, start: Instant) -> (u64, Duration) {
    sleep(secs(10)).await;
    switch.set_down(true);
    sleep(OUTAGE).await;
    switch.set_down(false);
    (switch.refused_token_requests(), start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn after_a_three_minute_outage_under_traffic_the_first_success_comes_within_five_seconds() {
    let mock = minute_tokens();
    let (service, switch) = switched(mock.clone(), TokenRefreshLayer::new(auth()));
    service.warm_up().await.unwrap();
    let start = Instant::now();
    let callers = tokio::spawn(traffic(service.clone(), start, secs(220)));
    let (while_down, back) = outage(&switch, start).await;
    assert!(
        !service.status().is_usable(),
        "the outage outlived the token"
    );
    let outcomes = callers.await.unwrap();

    let first_success = outcomes
        .iter()
        .filter(|(at, ok)| *ok && *at >= back)
        .map(|(at, _)| *at)
        .min()
        .expect("recovered");
    let lag = first_success - back;
    println!("under traffic: first success {lag:?} after the return; {while_down} token requests while down");
    assert!(lag <= secs(5), "{lag:?} after the server's return");
    // One at a time, spaced: at most ~1 every 1.5 s, not one per caller (1,800).
    assert!(
        while_down <= 120,
        "{while_down} token requests in 3 minutes"
    );
    assert!(outcomes
        .iter()
        .filter(|(at, _)| *at >= first_success)
        .all(|(_, ok)| *ok));
    assert_eq!(
        mock.counters().queries_bad_token,
        0,
        "no query with a dead token"
    );
}

/// Polls `service`'s status every 100 ms for up to `limit`; how long until it was usable.
async fn usable_within(service: &Service, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() <= limit {
        if service.status().is_usable() {
            return Some(start.elapsed());
        }
        sleep(millis(100)).await;
    }
    None
}

#[tokio::test(start_paused = true)]
async fn with_idle_refresh_and_no_traffic_the_token_is_usable_within_ten_seconds_of_the_return() {
    let mock = minute_tokens();
    let layer = TokenRefreshLayer::new(auth()).refresh_when_idle(true);
    let (service, switch) = switched(mock.clone(), layer);
    service.warm_up().await.unwrap();
    let (while_down, _) = outage(&switch, Instant::now()).await;
    // The outage outlived the token; nobody sent a request.
    assert_eq!(mock.counters().queries_ok, 0);

    let lag = usable_within(&service, secs(10))
        .await
        .expect("usable again");
    println!("idle: usable {lag:?} after the return; {while_down} token requests while down");
    assert!(
        while_down <= 120,
        "{while_down} token requests in 3 minutes"
    );
    let counters = mock.counters();
    assert_eq!(
        counters.queries_ok + counters.queries_bad_token + counters.queries_no_token,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn without_idle_refresh_an_idle_layer_waits_for_a_request_and_sends_nothing_meanwhile() {
    let mock = minute_tokens();
    let (service, switch) = switched(mock.clone(), TokenRefreshLayer::new(auth()));
    service.warm_up().await.unwrap();
    let (while_down, _) = outage(&switch, Instant::now()).await;
    assert_eq!(while_down, 0, "nobody asked");
    assert_eq!(usable_within(&service, secs(120)).await, None);
    send(&service, query()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_the_layer_mid_outage_leaves_nothing_behind() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let mock = minute_tokens();
    let layer = TokenRefreshLayer::new(auth()).refresh_when_idle(true);
    let (service, switch) = switched(mock.clone(), layer.clone());
    service.warm_up().await.unwrap();
    switch.set_down(true);
    sleep(secs(120)).await;
    assert!(!service.status().is_usable(), "the token died");
    let tried = switch.refused_token_requests();
    assert!(tried > 10, "and the layer kept trying: {tried}");

    drop((service, layer));
    let seen = &switch.inner().seen;
    assert_nothing_left(baseline, seen, || switch.refused_token_requests()).await;
}

/// Callers every 100 ms for `total` after a first token request answered with `fault`; when
/// (from the first) each token request reached the mock.
async fn token_requests_after(fault: Fault, total: Duration) -> Vec<Duration> {
    let mock = MockOcient::new();
    mock.fail_token_requests(fault, 1);
    let (service, _recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    let start = Instant::now();
    let mut times = Vec::new();
    while start.elapsed() < total {
        let before = mock.counters().token_requests();
        let _ = send(&service, query()).await;
        if mock.counters().token_requests() > before {
            times.push(start.elapsed());
        }
        sleep(millis(100)).await;
    }
    times
}

fn retry_after(status: StatusCode, value: &str) -> Fault {
    Fault::RetryAfter {
        status,
        retry_after: value.to_owned(),
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_on_a_503_or_a_429_holds_the_next_attempt() {
    for status in [
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let times = token_requests_after(retry_after(status, "3"), secs(10)).await;
        assert_eq!(times.len(), 2, "{status}: {times:?}");
        assert!(
            (secs(3)..=millis(3100)).contains(&times[1]),
            "{status}: {times:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn without_retry_after_the_next_attempt_comes_after_the_first_backoff() {
    let fault = Fault::Status(StatusCode::SERVICE_UNAVAILABLE);
    let times = token_requests_after(fault, secs(10)).await;
    assert!(times[1] <= millis(1350), "{times:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_an_http_date_holds_the_next_attempt_until_then() {
    let at = httpdate::fmt_http_date(SystemTime::now() + secs(5));
    let fault = retry_after(StatusCode::SERVICE_UNAVAILABLE, &at);
    let times = token_requests_after(fault, secs(10)).await;
    // An HTTP date has whole seconds: 4 to 5 s from now.
    assert!((secs(4)..=millis(5100)).contains(&times[1]), "{times:?}");
}

#[tokio::test(start_paused = true)]
async fn an_absurd_retry_after_is_capped_at_the_largest_backoff() {
    let fault = retry_after(StatusCode::SERVICE_UNAVAILABLE, "31536000");
    let times = token_requests_after(fault, secs(40)).await;
    // The default largest backoff is 30 s.
    assert!((secs(30)..=millis(30_100)).contains(&times[1]), "{times:?}");
}

fn slow_minute_tokens() -> MockOcient {
    minute_tokens().latency(secs(1))
}

#[tokio::test(start_paused = true)]
async fn refresh_now_while_fresh_gets_one_new_token_and_nobody_waits() {
    let mock = slow_minute_tokens();
    let (service, _recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    service.warm_up().await.unwrap();
    let refresh = tokio::spawn(service.refresh_now());
    tokio::task::yield_now().await;
    let started = Instant::now();
    for _ in 0..10 {
        send(&service, query()).await.unwrap();
    }
    assert_eq!(
        Instant::now(),
        started,
        "the queries did not wait for the refresh"
    );
    refresh.await.unwrap().unwrap();
    let counters = mock.counters();
    assert_eq!((counters.logins, counters.refreshes), (1, 1));
    assert_eq!(service.status().generation, 2);
}

#[tokio::test(start_paused = true)]
async fn refresh_now_joins_the_refresh_in_flight() {
    let mock = slow_minute_tokens();
    let (service, _recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    service.warm_up().await.unwrap();
    let (first, second) = tokio::join!(service.refresh_now(), service.refresh_now());
    first.unwrap();
    second.unwrap();
    assert_eq!(mock.counters().refreshes, 1, "one request for both");
}

#[tokio::test(start_paused = true)]
async fn refresh_now_is_not_held_by_the_backoff() {
    let mock = minute_tokens();
    mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 1);
    let layer = TokenRefreshLayer::new(auth()).retry_backoff(secs(60), secs(60));
    let (service, _recorder) = layered(mock.clone(), layer);
    let error = send(&service, query()).await.unwrap_err();
    assert!(
        matches!(token_error(&error), Error::Rejected { .. }),
        "{error}"
    );
    assert!(
        send(&service, query()).await.is_err(),
        "callers wait out the backoff"
    );
    service.refresh_now().await.unwrap();
    send(&service, query()).await.unwrap();
    assert_eq!(mock.counters().logins, 2);
}

#[tokio::test(start_paused = true)]
async fn refresh_now_with_a_wrong_password_is_rejected() {
    let mock = minute_tokens();
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "wrong");
    let (service, _recorder) = layered(mock, TokenRefreshLayer::new(auth));
    match service.refresh_now().await {
        Err(error @ Error::Rejected { .. }) => assert_eq!(error.vendor_code(), Some(-304)),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_wrong_password_is_no_outage_and_keeps_the_full_backoff() {
    let mock = minute_tokens();
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "wrong");
    let (service, _recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    let start = Instant::now();
    while start.elapsed() < secs(60) {
        assert!(send(&service, query()).await.is_err());
        sleep(millis(100)).await;
    }
    // 1, 2, 4, 8, 16 s, each give or take a quarter: six logins at most, not thirty.
    let logins = mock.counters().logins;
    assert!((4..=7).contains(&logins), "{logins} logins in a minute");
}

#[tokio::test(start_paused = true)]
async fn idle_refresh_does_not_repeat_a_wrong_password_unasked() {
    let mock = minute_tokens();
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "wrong");
    let layer = TokenRefreshLayer::new(auth).refresh_when_idle(true);
    let (service, _recorder) = layered(mock.clone(), layer);
    assert!(service.warm_up().await.is_err());
    sleep(secs(3600)).await;
    assert_eq!(
        mock.counters().logins,
        1,
        "an account lockout waits for a request"
    );
}
