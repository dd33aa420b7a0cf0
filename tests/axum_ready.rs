//! The axum example's readiness probe: 503 with the reason while no usable token exists,
//! 200 once one does.

mod common;

#[allow(dead_code)]
#[path = "../examples/axum_app.rs"]
mod example;

use std::time::Duration;

use common::{layered, switched, BASE};
use http::StatusCode;
use ocient_mock::{Fault, MockOcient};
use tokio::time::{sleep, Instant};
use tower_token_refresh::{OcientAuth, TokenRefreshLayer};

#[tokio::test(start_paused = true)]
async fn ready_answers_503_with_the_reason_then_200() {
    let mock = MockOcient::new();
    mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 1);
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "secret");
    let layer =
        TokenRefreshLayer::new(auth).retry_backoff(Duration::from_secs(1), Duration::from_secs(1));
    let (service, _recorder) = layered(mock, layer);

    let (status, body) = example::readiness(service.status());
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "no usable token yet\n");

    let error = service.warm_up().await.unwrap_err();
    let (status, body) = example::readiness(service.status());
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, format!("{error}\n"));
    assert!(body.contains("503"), "{body}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    service.warm_up().await.unwrap();
    let (status, body) = example::readiness(service.status());
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
}

#[tokio::test(start_paused = true)]
async fn ready_turns_200_again_after_an_outage_with_no_request_in_between() {
    let mock = MockOcient::new().token_lifetime(Duration::from_secs(60));
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "secret");
    let (service, switch) = switched(mock.clone(), example::token_layer(auth));
    service.warm_up().await.unwrap();
    assert_eq!(example::readiness(service.status()).0, StatusCode::OK);

    // The node goes away for five minutes: the token dies, the probe turns red, and an
    // orchestrator sends nothing to a pod that is not ready.
    switch.set_down(true);
    sleep(Duration::from_secs(300)).await;
    let (status, body) = example::readiness(service.status());
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("connection refused"), "{body}");

    switch.set_down(false);
    let back = Instant::now();
    while example::readiness(service.status()).0 != StatusCode::OK {
        assert!(back.elapsed() < Duration::from_secs(10), "still not ready");
        sleep(Duration::from_millis(100)).await;
    }
    let counters = mock.counters();
    let queries = counters.queries_ok + counters.queries_bad_token + counters.queries_no_token;
    assert_eq!(queries, 0, "ready again with no request in between");
}
