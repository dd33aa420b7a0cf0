//! A token endpoint that fails, hangs or is left behind by its caller, and a hook that
//! panics: each test names the behaviour it pins down.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use ocient_mock::{Fault, MockOcient};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_token_refresh::{Error, TokenRefreshLayer};

use crate::common::{auth, layered, millis, query, secs, send, token_error};

const UNAVAILABLE: Fault = Fault::Status(StatusCode::SERVICE_UNAVAILABLE);

// A refresh that fails while the token is valid: keep serving it, retry after a backoff,
// one attempt per backoff step however many requests arrive.
#[tokio::test(start_paused = true)]
async fn failed_background_refresh_keeps_the_valid_token_and_backs_off() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    mock.fail_token_requests(UNAVAILABLE, 2);
    sleep(secs(61)).await;

    // 700 ms of steady traffic: the first request starts an attempt that fails, and the
    // first backoff step (1 s, ±25%) has not run out, so no request starts another.
    for _ in 0..70 {
        let response = send(&service, query()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        sleep(millis(10)).await;
    }
    assert_eq!(
        mock.counters().refreshes,
        1,
        "one attempt, not one per request"
    );

    // The second step (2 s ±25%) ends by 1.25 + 2.5 s; the third attempt succeeds.
    sleep(secs(4)).await;
    send(&service, query()).await.unwrap();
    let counters = mock.counters();
    assert_eq!(counters.refreshes, 3);
    assert_eq!(counters.failed_token_requests, 2);
    assert_eq!((counters.logins, counters.queries_bad_token), (1, 0));
}

// The background retry is never scheduled past the dead point: whoever arrives there
// finds the attempt already made.
#[tokio::test(start_paused = true)]
async fn background_retry_is_never_later_than_the_dead_point() {
    let start = Instant::now();
    let mock = MockOcient::new().token_lifetime(secs(100));
    // A backoff far longer than the token's life: only the cap can bring the retry forward.
    let layer = TokenRefreshLayer::new(auth()).retry_backoff(secs(600), secs(600));
    let (service, _) = layered(mock.clone(), layer);
    send(&service, query()).await.unwrap();
    mock.fail_token_requests(UNAVAILABLE, 1);
    sleep(secs(61)).await;
    send(&service, query()).await.unwrap();
    sleep(secs(1)).await;
    assert_eq!(mock.counters().refreshes, 1);

    // Dead point: 100 s - 5 s margin.
    tokio::time::sleep_until(start + secs(95) + millis(1)).await;
    let before = Instant::now();
    send(&service, query()).await.unwrap();
    assert_eq!(
        Instant::now(),
        before,
        "the retry ran at the dead point, not 600 s later"
    );
    assert_eq!(mock.counters().refreshes, 2);
}

// No usable token and the attempt fails: all waiters get that error from one attempt;
// during the backoff new callers fail fast with it; afterwards the next caller retries.
#[tokio::test(start_paused = true)]
async fn a_failed_attempt_is_shared_then_fails_fast_then_expires() {
    let mock = MockOcient::new().latency(millis(100));
    mock.fail_token_requests(UNAVAILABLE, 1);
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth()));

    let mut callers = JoinSet::new();
    for _ in 0..20 {
        let service = service.clone();
        callers.spawn(async move { send(&service, query()).await.map(|r| r.status()) });
    }
    while let Some(result) = callers.join_next().await {
        let error = result.unwrap().unwrap_err();
        assert_eq!(token_error(&error).vendor_code(), Some(-1));
    }
    assert_eq!(mock.counters().logins, 1, "twenty waiters, one attempt");

    // Inside the first backoff step (at least 750 ms): fail fast, no new attempt.
    sleep(millis(300)).await;
    let before = Instant::now();
    let error = send(&service, query()).await.unwrap_err();
    assert_eq!(Instant::now(), before, "fails at once during the backoff");
    assert!(matches!(
        token_error(&error),
        Error::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..
        }
    ));
    assert_eq!(mock.counters().logins, 1);

    // After the backoff, the next caller tries again, and the error is forgotten.
    sleep(millis(1000)).await;
    let response = send(&service, query()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.counters().logins, 2);
}

// A hung endpoint holds nobody longer than the refresh timeout.
#[tokio::test(start_paused = true)]
async fn a_hung_token_endpoint_times_out() {
    let mock = MockOcient::new();
    mock.fail_token_requests(Fault::Hang, 1);
    let layer = TokenRefreshLayer::new(auth()).refresh_timeout(secs(7));
    let (service, _) = layered(mock.clone(), layer);
    let before = Instant::now();
    let error = send(&service, query()).await.unwrap_err();
    assert_eq!(Instant::now() - before, secs(7));
    assert!(matches!(token_error(&error), Error::Timeout { after, .. } if *after == secs(7)));
}

// A credentials provider that never answers holds nobody longer than the refresh timeout
// either: the layer bounds a protocol's own work between requests too.
#[tokio::test(start_paused = true)]
async fn a_hung_credentials_provider_times_out() {
    let auth = tower_token_refresh::OcientAuth::new(crate::common::BASE.parse().unwrap())
        .credentials_from(std::future::pending);
    let layer = TokenRefreshLayer::new(auth).refresh_timeout(secs(7));
    let (service, recorder) = layered(MockOcient::new(), layer);
    let before = Instant::now();
    let error = send(&service, query()).await.unwrap_err();
    assert_eq!(Instant::now() - before, secs(7));
    assert!(matches!(token_error(&error), Error::Timeout { after, .. } if *after == secs(7)));
    assert!(recorder.seen().is_empty(), "nothing was sent");
}

/// A body that sends its headers, then never finishes.
#[derive(Debug)]
struct StalledBody;

impl http_body::Body for StalledBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

// The timeout covers the answer's body too.
#[tokio::test(start_paused = true)]
async fn a_stalled_answer_body_times_out() {
    let inner = service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(StalledBody))
    });
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth()).refresh_timeout(secs(3)))
        .service(inner);
    let before = Instant::now();
    let error = send(&service, query()).await.unwrap_err();
    assert_eq!(Instant::now() - before, secs(3));
    assert!(
        matches!(token_error(&error), Error::Timeout { .. }),
        "{error}"
    );
}

// The refresh belongs to its own task: dropping the caller that started it (a timeout
// outside the layer fired) neither cancels it nor strands the others.
#[tokio::test(start_paused = true)]
async fn a_dropped_caller_cancels_neither_the_login_nor_the_waiters() {
    let mock = MockOcient::new().latency(secs(5));
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth()));
    let impatient = ServiceBuilder::new()
        .timeout(secs(1))
        .service(service.clone());
    let error = impatient.oneshot(query()).await.unwrap_err();
    assert!(error.is::<tower::timeout::error::Elapsed>());

    let before = Instant::now();
    let response = send(&service, query()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        Instant::now() - before,
        secs(4),
        "joined the login already under way"
    );
    assert_eq!(mock.counters().logins, 1);
}

// The `on_token` hook hears of every new token, failure and revoked token, in order.
#[tokio::test(start_paused = true)]
async fn on_token_reports_tokens_failures_and_revocations() {
    use tower_token_refresh::TokenEvent;
    let events = Arc::new(Mutex::new(Vec::new()));
    let layer = TokenRefreshLayer::new(auth()).on_token({
        let events = Arc::clone(&events);
        move |event| {
            let line = match event {
                TokenEvent::Obtained { generation, grant } => {
                    format!("obtained {generation} {:?}", grant.lifetime())
                }
                TokenEvent::Failed {
                    consecutive_failures,
                    ..
                } => format!("failed {consecutive_failures}"),
                TokenEvent::Revoked { generation } => format!("revoked {generation}"),
                _ => "other".to_owned(),
            };
            events.lock().unwrap().push(line);
        }
    });
    let mock = MockOcient::new().token_lifetime(secs(60));
    mock.fail_token_requests(UNAVAILABLE, 1);
    let (service, _) = layered(mock.clone(), layer);
    send(&service, query()).await.unwrap_err();
    sleep(secs(2)).await;
    send(&service, query()).await.unwrap();
    mock.revoke_all();
    send(&service, query()).await.unwrap();
    send(&service, query()).await.unwrap();
    assert_eq!(
        *events.lock().unwrap(),
        ["failed 1", "obtained 1 60s", "revoked 1", "obtained 2 60s"]
    );
}

// A hook that panics takes down neither the refresh nor later ones.
#[tokio::test(start_paused = true)]
async fn a_panicking_hook_breaks_nothing() {
    let layer = TokenRefreshLayer::new(auth()).on_token(|_| panic!("a careless hook"));
    let mock = MockOcient::new().token_lifetime(secs(60));
    let (service, _) = layered(mock.clone(), layer);
    for _ in 0..4 {
        let response = send(&service, query()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        sleep(secs(40)).await;
    }
    let counters = mock.counters();
    assert_eq!(counters.logins, 1);
    assert!(counters.refreshes >= 2, "refreshes: {}", counters.refreshes);
}
