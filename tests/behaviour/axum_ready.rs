//! The readiness probe `examples/axum_app.rs` shows: a `GET /ready` over the layer's
//! `status()` answers 503 with the reason while no usable token exists, 200 once one does,
//! and, on a layer that refreshes when idle as the example's does, turns green again after an
//! outage with no request in between. The test serves a router of its own, in-process, on
//! tokio's paused clock.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use ocient_mock::{Fault, MockOcient};
use tokio::time::{sleep, Instant};
use tower::ServiceExt;
use tower_token_refresh::{OcientAuth, TokenRefresh, TokenRefreshLayer};

use crate::common::{layered, switched, BASE};

/// The layer for a service behind a readiness probe, as the example builds it: with no
/// traffic, only the layer itself can make `/ready` green again after an outage.
fn token_layer(auth: OcientAuth) -> TokenRefreshLayer {
    TokenRefreshLayer::new(auth).refresh_when_idle(true)
}

/// An app whose `GET /ready` reports `api`'s token.
fn ready_app<S>(api: TokenRefresh<S>) -> Router
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/ready", get(ready::<S>))
        .with_state(api)
}

/// 200 while the token is usable; 503 with the reason otherwise.
async fn ready<S>(State(api): State<TokenRefresh<S>>) -> (StatusCode, String) {
    let status = api.status();
    if status.is_usable() {
        return (StatusCode::OK, "ready\n".into());
    }
    let why = status
        .last_error
        .map_or("no usable token yet".into(), |e| e.to_string());
    (StatusCode::SERVICE_UNAVAILABLE, why + "\n")
}

/// What `GET /ready` answers: the status and the body.
async fn probe(app: &Router) -> (StatusCode, String) {
    let request = Request::get("/ready")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(start_paused = true)]
async fn ready_answers_503_with_the_reason_then_200() {
    let mock = MockOcient::new();
    mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 1);
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "secret");
    let layer =
        TokenRefreshLayer::new(auth).retry_backoff(Duration::from_secs(1), Duration::from_secs(1));
    let (service, _recorder) = layered(mock, layer);
    let app = ready_app(service.clone());

    let (status, body) = probe(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "no usable token yet\n");

    let error = service.warm_up().await.unwrap_err();
    let (status, body) = probe(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, format!("{error}\n"));
    assert!(body.contains("503"), "{body}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    service.warm_up().await.unwrap();
    let (status, body) = probe(&app).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
}

#[tokio::test(start_paused = true)]
async fn ready_turns_200_again_after_an_outage_with_no_request_in_between() {
    let mock = MockOcient::new().token_lifetime(Duration::from_secs(60));
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "secret");
    let (service, switch) = switched(mock.clone(), token_layer(auth));
    let app = ready_app(service.clone());
    service.warm_up().await.unwrap();
    assert_eq!(probe(&app).await.0, StatusCode::OK);

    // The node goes away for five minutes: the token dies, the probe turns red, and an
    // orchestrator sends nothing to a pod that is not ready.
    switch.set_down(true);
    sleep(Duration::from_secs(300)).await;
    let (status, body) = probe(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("connection refused"), "{body}");

    switch.set_down(false);
    let back = Instant::now();
    while probe(&app).await.0 != StatusCode::OK {
        assert!(back.elapsed() < Duration::from_secs(10), "still not ready");
        sleep(Duration::from_millis(100)).await;
    }
    let counters = mock.counters();
    let queries = counters.queries_ok + counters.queries_bad_token + counters.queries_no_token;
    assert_eq!(queries, 0, "ready again with no request in between");
}
