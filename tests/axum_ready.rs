//! The axum example's readiness probe: 503 with the reason while no usable token exists,
//! 200 once one does.

mod common;

#[allow(dead_code)]
#[path = "../examples/axum_app.rs"]
mod example;

use std::time::Duration;

use common::{layered, BASE};
use http::StatusCode;
use ocient_mock::{Fault, MockOcient};
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
