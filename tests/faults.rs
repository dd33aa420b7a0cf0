//! Faults, hostile answers and cancellation: each test names the behaviour it pins down.

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{auth, layered, query, query_to, send, token_error, Recorder, BASE};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use ocient_mock::{Fault, MockOcient};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};
use tower_token_refresh::{Error, OcientAuth, RetryUnauthorized, TokenRefreshLayer};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

const UNAVAILABLE: Fault = Fault::Status(StatusCode::SERVICE_UNAVAILABLE);

// 1. A refresh that fails while the token is valid: keep serving it, retry after a backoff,
//    one attempt per backoff step however many requests arrive.
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

// 1. The background retry is never scheduled past the dead point: whoever arrives there
//    finds the attempt already made.
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

// 2. No usable token and the attempt fails: all waiters get that error from one attempt;
//    during the backoff new callers fail fast with it; afterwards the next caller retries.
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

// 3. A hung endpoint holds nobody longer than the refresh timeout.
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

// 3. The timeout covers the answer's body too.
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

// 4. The refresh belongs to its own task: dropping the caller that started it (a timeout
//    outside the layer fired) neither cancels it nor strands the others.
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

// 5. A 401 retires exactly the token the request carried; a late 401 for a token already
//    replaced retires nothing; the 401 itself reaches the caller.
#[tokio::test(start_paused = true)]
async fn a_401_retires_exactly_the_token_it_carried() {
    let mock = MockOcient::new();
    let slow = Recorder::new(mock.clone());
    let inner = ServiceBuilder::new()
        .layer_fn(|inner| DelayQueries { inner })
        .service(slow);
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth()))
        .service(inner);
    send(&service, query()).await.unwrap(); // t = 1 s: generation 1
    mock.revoke_all();

    // Ten requests carry generation 1 and are refused together; one more carries it too
    // but is refused only after generation 2 exists.
    let mut refused = JoinSet::new();
    for _ in 0..10 {
        let service = service.clone();
        refused.spawn(async move { send(&service, query()).await.map(|r| r.status()) });
    }
    sleep(millis(900)).await;
    let late = tokio::spawn({
        let service = service.clone();
        async move { send(&service, query()).await.map(|r| r.status()) }
    });
    while let Some(status) = refused.join_next().await {
        assert_eq!(status.unwrap().unwrap(), StatusCode::UNAUTHORIZED);
    }
    let fresh = send(&service, query()).await.unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_eq!(late.await.unwrap().unwrap(), StatusCode::UNAUTHORIZED);
    send(&service, query()).await.unwrap();
    assert_eq!(
        mock.counters().logins,
        2,
        "eleven 401s of one token: one new token"
    );
}

/// Answers queries a second late, so a test can have several in flight.
#[derive(Clone)]
struct DelayQueries<S> {
    inner: S,
}

impl<S> Service<Request<Full<Bytes>>> for DelayQueries<S>
where
    S: Service<Request<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let delay = request.uri().path().starts_with("/v1/execute");
        let response = self.inner.call(request);
        Box::pin(async move {
            if delay {
                sleep(secs(1)).await;
            }
            response.await
        })
    }
}

// 5. With `RetryUnauthorized` outside, a revocation on the server is invisible to callers.
#[tokio::test(start_paused = true)]
async fn retry_unauthorized_recovers_from_a_revocation() {
    let mock = MockOcient::new();
    let recorder = Recorder::new(mock.clone());
    let service = ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(RetryUnauthorized::default()))
        .layer(TokenRefreshLayer::new(auth()))
        .service(recorder);
    let service = service.map_err(BoxError::from);
    send(&service, query()).await.unwrap();
    mock.revoke_all();
    let response = send(&service, query()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let counters = mock.counters();
    assert_eq!((counters.logins, counters.queries_bad_token), (2, 1));

    // Only once: a server that refuses every token gets its 401 back.
    mock.revoke_all();
    mock.fail_token_requests(
        Fault::Body {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from_static(
                br#"{"access_token":"never-issued","expires_in":3600,"status":{"vendor_code":0}}"#,
            ),
        },
        1,
    );
    let response = send(&service, query()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        mock.counters().queries_bad_token,
        3,
        "the request and its one retry"
    );
}

// 6. Hostile answers are typed errors, send nothing, and the layer recovers afterwards.
#[tokio::test(start_paused = true)]
async fn hostile_answers_are_typed_errors_and_the_layer_recovers() {
    let hostile: &[(&str, &[u8])] = &[
        ("not JSON", b"<html>oops</html>"),
        (
            "no token",
            br#"{"expires_in":60,"status":{"vendor_code":0}}"#,
        ),
        ("empty token", br#"{"access_token":"","expires_in":60}"#),
        ("number token", br#"{"access_token":42,"expires_in":60}"#),
        (
            "CRLF token",
            br#"{"access_token":"a\r\nX-Evil: 1","expires_in":60}"#,
        ),
        (
            "NUL token",
            br#"{"access_token":"a\u0000b","expires_in":60}"#,
        ),
        ("space token", br#"{"access_token":"a b","expires_in":60}"#),
        (
            "non-ASCII token",
            br#"{"access_token":"t\u00f6ken","expires_in":60}"#,
        ),
        ("no expiry", br#"{"access_token":"abc"}"#),
        ("zero expiry", br#"{"access_token":"abc","expires_in":0}"#),
        (
            "negative expiry",
            br#"{"access_token":"abc","expires_in":-5}"#,
        ),
        (
            "string expiry",
            br#"{"access_token":"abc","expires_in":"3600"}"#,
        ),
    ];
    for (name, body) in hostile {
        let mock = MockOcient::new();
        mock.fail_token_requests(
            Fault::Body {
                status: StatusCode::OK,
                content_type: "application/json",
                body: Bytes::from_static(body),
            },
            1,
        );
        let layer = TokenRefreshLayer::new(auth()).retry_backoff(millis(10), millis(10));
        let (service, recorder) = layered(mock.clone(), layer);
        let error = send(&service, query()).await.unwrap_err();
        assert!(
            matches!(token_error(&error), Error::InvalidResponse { .. }),
            "{name}: {error:?}"
        );
        assert!(
            recorder.seen_at("/v1/execute/retail_analytics").is_empty(),
            "{name}: nothing may be forwarded"
        );
        sleep(millis(20)).await;
        let response = send(&service, query()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}: must recover");
    }
}

// 6. Answers over 1 MiB are refused, whether they say so up front or not.
#[tokio::test(start_paused = true)]
async fn answers_over_a_mebibyte_are_refused() {
    let padding = "x".repeat(1024 * 1024);
    let big = format!(r#"{{"access_token":"abc","expires_in":60,"pad":"{padding}"}}"#);
    let mock = MockOcient::new();
    mock.fail_token_requests(
        Fault::Body {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from(big.clone()),
        },
        1,
    );
    let (service, _) = layered(mock, TokenRefreshLayer::new(auth()));
    let error = send(&service, query()).await.unwrap_err();
    assert!(format!("{error}").contains("larger than 1 MiB"), "{error}");

    // No Content-Length: the capped read stops it.
    let inner = service_fn(move |_: Request<Full<Bytes>>| {
        let big = big.clone();
        async move {
            let chunks = big
                .into_bytes()
                .chunks(64 * 1024)
                .map(Bytes::copy_from_slice)
                .collect();
            let body = Chunks(chunks);
            Ok::<_, Infallible>(Response::new(body))
        }
    });
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth()))
        .service(inner);
    let error = send(&service, query()).await.unwrap_err();
    assert!(format!("{error}").contains("larger than 1 MiB"), "{error}");
}

/// A body of chunks with no declared length, as a chunked answer arrives.
#[derive(Debug)]
struct Chunks(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

// 6. Absurd lifetimes are clamped, never an `Instant` overflow.
#[tokio::test(start_paused = true)]
async fn absurd_lifetimes_are_clamped() {
    for expires_in in ["9223372036854775807", "1e300", "18446744073709551615"] {
        let refreshes = Arc::new(Mutex::new(0));
        let endpoint = {
            let refreshes = Arc::clone(&refreshes);
            let grant = format!(r#"{{"access_token":"abc","expires_in":{expires_in}}}"#);
            service_fn(move |request: Request<Full<Bytes>>| {
                if request.uri().path() == "/v1/token_refresh" {
                    *refreshes.lock().unwrap() += 1;
                }
                let body = Full::<Bytes>::from(grant.clone());
                async move { Ok::<_, Infallible>(Response::new(body)) }
            })
        };
        let service = ServiceBuilder::new()
            .layer(TokenRefreshLayer::new(auth()))
            .service(endpoint);
        send(&service, query()).await.unwrap();
        // Clamped to 30 days, the token is due after 15 to 18 of them.
        sleep(Duration::from_secs(14 * 24 * 3600)).await;
        send(&service, query()).await.unwrap();
        assert_eq!(*refreshes.lock().unwrap(), 0, "{expires_in}: not due yet");
        sleep(Duration::from_secs(5 * 24 * 3600)).await;
        send(&service, query()).await.unwrap();
        sleep(secs(1)).await;
        assert_eq!(
            *refreshes.lock().unwrap(),
            1,
            "{expires_in}: due within 30 days"
        );
    }
}

// 8. The token goes only to the API's origin, origins added with `allow_origin`, and
//    origin-form requests.
#[tokio::test(start_paused = true)]
async fn the_token_goes_only_where_it_belongs() {
    let layer =
        TokenRefreshLayer::new(auth()).allow_origin("https://replica.test".parse().unwrap());
    let (service, recorder) = layered(MockOcient::new(), layer);
    let cases = [
        ("https://sql-node.test:9443/v1/execute/db", true),
        ("HTTPS://SQL-NODE.TEST:9443/v1/execute/db", true),
        ("/v1/execute/db", true),
        ("https://replica.test/v1/execute/db", true),
        ("https://replica.test:443/v1/execute/db", true),
        ("https://someone@sql-node.test:9443/v1/execute/db", true),
        ("https://sql-node.test/v1/execute/db", false),
        // The same host and port over plain http is another origin.
        ("http://sql-node.test:9443/v1/execute/db", false),
        ("http://sql-node.test/v1/execute/db", false),
        ("https://sql-node.test:9444/v1/execute/db", false),
        ("https://evil.test:9443/v1/execute/db", false),
        ("http://replica.test/v1/execute/db", false),
    ];
    for (uri, gets_token) in cases {
        send(&service, query_to(uri)).await.unwrap();
        let seen = recorder.seen().pop().unwrap();
        assert_eq!(
            seen.headers.contains_key(AUTHORIZATION),
            gets_token,
            "{uri}"
        );
    }
}

// 9. The tower contract: `call` only after `poll_ready`, on the inner service too, with
//    tower-test's mock, which panics when a clone is called un-readied.
#[tokio::test(start_paused = true)]
async fn the_inner_service_is_always_readied_before_it_is_called() {
    let (inner, mut handle) =
        tower_test::mock::pair::<Request<Full<Bytes>>, Response<Full<Bytes>>>();
    let auth = OcientAuth::new(BASE.parse().unwrap())
        .credentials("jdoe", "secret")
        .initial_token("seed", secs(100));
    let mut service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth))
        .service(inner);

    // Not ready inside means not ready outside.
    handle.allow(0);
    let readiness = std::future::poll_fn(|cx| Poll::Ready(service.poll_ready(cx))).await;
    assert!(readiness.is_pending());
    handle.allow(1);
    let readiness = std::future::poll_fn(|cx| Poll::Ready(service.poll_ready(cx))).await;
    assert!(matches!(readiness, Poll::Ready(Ok(()))));

    let call = tokio::spawn(service.call(query()));
    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request.headers()[AUTHORIZATION], "Bearer seed");
    respond.send_response(Response::new(Full::default()));
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);

    // Past expiry the request waits for a login, which readies its own clone.
    sleep(secs(101)).await;
    handle.allow(10);
    let mut waiting = service.clone();
    waiting.ready().await.unwrap();
    let call = tokio::spawn(waiting.call(query()));
    let (login, respond) = handle.next_request().await.unwrap();
    assert_eq!(login.uri().path(), "/v1/login");
    respond.send_response(Response::new(Full::from(
        r#"{"access_token":"fresh","expires_in":100,"status":{"vendor_code":0}}"#,
    )));
    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request.headers()[AUTHORIZATION], "Bearer fresh");
    respond.send_response(Response::new(Full::default()));
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
}

// 9. A waiting request holds no slot of the inner service, so a limit of one cannot
//    deadlock the login it waits for.
#[tokio::test(start_paused = true)]
async fn no_deadlock_under_concurrency_limit_or_buffer_of_one() {
    let mock = MockOcient::new().latency(millis(50));
    let limited = ServiceBuilder::new()
        .concurrency_limit(1)
        .service(Recorder::new(mock.clone()));
    no_deadlock(limited, &mock, "ConcurrencyLimit(1)").await;

    let mock = MockOcient::new().latency(millis(50));
    let buffered = ServiceBuilder::new()
        .buffer(1)
        .concurrency_limit(1)
        .service(Recorder::new(mock.clone()));
    no_deadlock(buffered.map_err(BoxError::from), &mock, "Buffer(1)").await;
}

async fn no_deadlock<S>(inner: S, mock: &MockOcient, name: &str)
where
    S: Service<Request<Full<Bytes>>, Response = Response<ocient_mock::MockBody>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth()))
        .service(inner);
    let mut callers = JoinSet::new();
    for _ in 0..50 {
        let mut service = service.clone();
        callers.spawn(async move {
            service.ready().await?;
            service.call(query()).await.map(|r| r.status())
        });
    }
    let all = async {
        while let Some(status) = callers.join_next().await {
            assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
        }
    };
    tokio::time::timeout(secs(60), all)
        .await
        .unwrap_or_else(|_| panic!("deadlock under {name}"));
    assert_eq!(mock.counters().logins, 1, "{name}");
}

// 10. Refresh points are spread over a tenth of the lifetime, so a fleet started together
//     does not refresh together.
#[tokio::test(start_paused = true)]
async fn a_fleet_started_together_spreads_its_refreshes() {
    const FLEET: usize = 10_000;
    let refreshed_at = Arc::new(Mutex::new(Vec::with_capacity(FLEET)));
    let start = Instant::now();
    let endpoint = {
        let refreshed_at = Arc::clone(&refreshed_at);
        service_fn(move |request: Request<Full<Bytes>>| {
            if request.uri().path() == "/v1/token_refresh" {
                refreshed_at.lock().unwrap().push(start.elapsed());
            }
            let body = r#"{"access_token":"next","expires_in":100,"status":{"vendor_code":0}}"#;
            async move { Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(body))) }
        })
    };
    let fleet: Vec<_> = (0..FLEET)
        .map(|_| {
            let auth = OcientAuth::new(BASE.parse().unwrap()).initial_token("same", secs(100));
            ServiceBuilder::new()
                .layer(TokenRefreshLayer::new(auth))
                .service(endpoint.clone())
        })
        .collect();
    // Every member sends a request each second from 49 s to 61 s.
    sleep(secs(49)).await;
    for _ in 49..=61 {
        for member in &fleet {
            member.clone().oneshot(query()).await.unwrap();
        }
        sleep(secs(1)).await;
    }
    let times = refreshed_at.lock().unwrap().clone();
    assert_eq!(times.len(), FLEET, "each member refreshed once");
    let mut per_second = [0usize; 12];
    for t in &times {
        let second = t.as_secs();
        assert!(
            (50..=61).contains(&second),
            "refreshed at {t:?}, outside 50..61 s"
        );
        per_second[(second - 50) as usize] += 1;
    }
    // The window is 50..60 s; requests come once a second, so each second of it should
    // hold about a tenth of the fleet. Lockstep would put them all in one second.
    for (second, &count) in per_second[1..10].iter().enumerate() {
        assert!(
            (FLEET / 20..FLEET / 5).contains(&count),
            "second {}: {count} refreshes ({per_second:?})",
            51 + second
        );
    }
}

// The `on_token` hook hears of every new token, failure and refused token, in order.
#[tokio::test(start_paused = true)]
async fn on_token_reports_tokens_failures_and_refusals() {
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
                TokenEvent::Invalidated { generation } => format!("invalidated {generation}"),
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
        [
            "failed 1",
            "obtained 1 60s",
            "invalidated 1",
            "obtained 2 60s"
        ]
    );
}

// A token whose timer died with its runtime is never trusted again: nothing would ever mark
// it due or dead.
#[test]
fn a_token_outliving_its_timer_is_not_sent() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let mock = MockOcient::new();
    let (service, _) =
        runtime().block_on(async { layered(mock.clone(), TokenRefreshLayer::new(auth())) });
    runtime().block_on(async { send(&service, query()).await.unwrap() });
    // That runtime, and the timer it ran, are gone.
    runtime().block_on(async { send(&service, query()).await.unwrap() });
    let counters = mock.counters();
    assert_eq!(
        (counters.logins, counters.refreshes),
        (1, 1),
        "the orphaned token must be replaced"
    );
    assert_eq!(counters.queries_ok, 2);
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

// The spread never swallows the due window: with a tenth of the lifetime left to refresh
// in, a request inside it goes out at once and starts the refresh.
#[tokio::test(start_paused = true)]
async fn the_spread_leaves_a_window_to_refresh_in() {
    for _ in 0..20 {
        let mock = MockOcient::new().token_lifetime(secs(100));
        let layer = TokenRefreshLayer::new(auth()).refresh_at(0.1);
        let (service, _) = layered(mock.clone(), layer);
        let start = Instant::now();
        send(&service, query()).await.unwrap();
        // Due from 90 s, moved by at most half the 5 s before the dead point at 95 s.
        tokio::time::sleep_until(start + millis(92_600)).await;
        let before = Instant::now();
        send(&service, query()).await.unwrap();
        assert_eq!(Instant::now(), before, "the token was still usable");
        sleep(millis(10)).await;
        assert_eq!(
            mock.counters().refreshes,
            1,
            "and due: the request started a refresh"
        );
    }
}

// A call made outside a runtime fails with `NoRuntime` and spoils nothing: a token handed
// in is not installed where no timer could watch it, so it still dies on time later.
#[test]
fn a_call_outside_a_runtime_fails_cleanly_and_spoils_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let mock = MockOcient::new();
    // A token the server knows, handed over from elsewhere.
    let handed_over = runtime.block_on(common::login_token(&mock));
    let auth = auth().initial_token(handed_over.clone(), secs(100));
    let (mut service, recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    let outside = Service::call(&mut service, query());

    runtime.block_on(async {
        let error = outside.await.unwrap_err();
        assert!(matches!(token_error(&error), Error::NoRuntime), "{error}");
        send(&service, query()).await.unwrap();
        sleep(secs(101)).await;
        send(&service, query()).await.unwrap();
    });
    let bearers: Vec<String> = recorder
        .seen_at("/v1/execute/retail_analytics")
        .iter()
        .map(|s| s.headers[AUTHORIZATION].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(bearers.len(), 2);
    assert_eq!(
        bearers[0],
        format!("Bearer {handed_over}"),
        "the handed-over token is used"
    );
    assert_ne!(bearers[1], bearers[0], "and not sent after it died");
    assert_eq!(mock.counters().queries_bad_token, 0);
}
