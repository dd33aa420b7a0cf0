//! The tower contract and the token's reach: the inner service is readied before every
//! call, a waiting request holds no slot of it, the token goes only to the API's origins,
//! and a runtime that goes away takes no stale token with it.

use std::task::Poll;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use ocient_mock::MockOcient;
use tokio::task::JoinSet;
use tokio::time::sleep;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_token_refresh::{Error, OcientAuth, TokenRefreshLayer};

use crate::common;
use crate::common::{
    auth, layered, millis, query, query_to, secs, send, token_error, Recorder, BASE,
};

// The token goes only to the API's origin, origins added with `allow_origin`, and
// origin-form requests.
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

// The tower contract: `call` only after `poll_ready`, on the inner service too, with
// tower-test's mock, which panics when a clone is called un-readied.
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

// A waiting request holds no slot of the inner service, so a limit of one cannot
// deadlock the login it waits for.
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

/// Whose request it is, for the per-identity layer.
#[derive(Clone, PartialEq, Eq, Hash)]
struct User(u32);

// The same contract for a token per identity: a request readies the inner service before
// calling it, one without an identity gives its readiness back, and requests waiting for
// their users' logins hold no slot under a limit of one.
#[tokio::test(start_paused = true)]
async fn per_identity_the_inner_service_is_readied_and_waiters_hold_no_slot() {
    let (inner, mut handle) =
        tower_test::mock::pair::<Request<Full<Bytes>>, Response<Full<Bytes>>>();
    let layer = tower_token_refresh::PerIdentityLayer::new(|user: &User| {
        OcientAuth::new(BASE.parse().unwrap()).initial_token(format!("seed-{}", user.0), secs(100))
    });
    let mut service = ServiceBuilder::new().layer(layer).service(inner);
    // Not ready inside means not ready outside.
    handle.allow(0);
    let readiness = std::future::poll_fn(|cx| Poll::Ready(service.poll_ready(cx))).await;
    assert!(readiness.is_pending());
    handle.allow(1);
    service.ready().await.unwrap();
    let error = service.call(query()).await.unwrap_err();
    assert!(matches!(
        error.downcast_ref::<Error>(),
        Some(Error::NoIdentity)
    ));
    // The readiness went back unused: the next call readies again, and is the one let through.
    service.ready().await.unwrap();
    let mut request = query();
    request.extensions_mut().insert(User(7));
    let call = tokio::spawn(service.call(request));
    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request.headers()[AUTHORIZATION], "Bearer seed-7");
    respond.send_response(Response::new(Full::default()));
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);

    let users = (0..20).fold(MockOcient::new().latency(millis(50)), |mock, user| {
        mock.user(format!("user-{user}"), "secret")
    });
    let limited = ServiceBuilder::new()
        .concurrency_limit(1)
        .service(Recorder::new(users.clone()));
    let layer = tower_token_refresh::PerIdentityLayer::new(|user: &User| {
        OcientAuth::new(BASE.parse().unwrap()).credentials(format!("user-{}", user.0), "secret")
    });
    let service = ServiceBuilder::new().layer(layer).service(limited);
    let mut callers = JoinSet::new();
    for caller in 0..60 {
        let mut service = service.clone();
        callers.spawn(async move {
            let mut request = query();
            request.extensions_mut().insert(User(caller % 20));
            service.ready().await?;
            service.call(request).await.map(|r| r.status())
        });
    }
    let all = async {
        while let Some(status) = callers.join_next().await {
            assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
        }
    };
    tokio::time::timeout(secs(60), all)
        .await
        .expect("no deadlock under ConcurrencyLimit(1)");
    assert_eq!(users.counters().logins, 20);
}
