//! A token the server revokes: the 401 revokes exactly the token it answered, and
//! `RetryUnauthorized` makes the revocation invisible to callers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use ocient_mock::{Fault, MockOcient};
use tokio::task::JoinSet;
use tokio::time::sleep;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_token_refresh::{RetryUnauthorized, TokenRefreshLayer};

use crate::common::{auth, millis, query, secs, send, Recorder};

// A 401 revokes exactly the token the request carried; a late 401 for a token already
// replaced revokes nothing; the 401 itself reaches the caller.
#[tokio::test(start_paused = true)]
async fn a_401_revokes_exactly_the_token_it_carried() {
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

// With `RetryUnauthorized` outside, a revocation on the server is invisible to callers.
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
