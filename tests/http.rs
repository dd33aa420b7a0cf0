//! End to end over real HTTP on 127.0.0.1: the mock server, hyper-util's legacy Client, the layer.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ocient_mock::{MockOcient, MockServer};
use tokio::task::JoinSet;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::{Error, OcientAuth, TokenRefreshLayer};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

fn query(server: &MockServer) -> Request<Full<Bytes>> {
    common::query_to(&format!("{}v1/execute/retail_analytics", server.uri()))
}

fn auth(server: &MockServer) -> OcientAuth {
    OcientAuth::new(server.uri())
        .credentials("jdoe", "secret")
        .database("retail_analytics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_go_out_with_the_token_from_one_login() {
    let server = MockOcient::new().serve().await.unwrap();
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth(&server)))
        .service(client());
    let response = service.clone().oneshot(query(&server)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["status"]["vendor_code"], 0);
    let counters = server.mock().counters();
    assert_eq!((counters.logins, counters.queries_ok), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_at_an_expired_token_cause_one_login_over_http() {
    let server = MockOcient::new().serve().await.unwrap();
    let auth = auth(&server).initial_token("long-expired", Duration::ZERO);
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth))
        .service(client());
    let mut callers = JoinSet::new();
    for _ in 0..1000 {
        let (service, request) = (service.clone(), query(&server));
        callers.spawn(async move { service.oneshot(request).await.map(|r| r.status()) });
    }
    while let Some(status) = callers.join_next().await {
        assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
    }
    let counters = server.mock().counters();
    assert_eq!(counters.token_requests(), 1, "exactly one token request");
    assert_eq!(counters.logins, 1);
    assert_eq!(
        counters.queries_bad_token, 0,
        "the expired token was never sent"
    );
    assert_eq!(counters.queries_ok, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_refreshed_over_http_while_queries_flow() {
    let server = MockOcient::new()
        .token_lifetime(Duration::from_secs(2))
        .serve()
        .await
        .unwrap();
    // Refresh once 90% is left: about 0.2 s to 0.4 s after each new token.
    let layer = TokenRefreshLayer::new(auth(&server)).refresh_at(0.9);
    let service = ServiceBuilder::new().layer(layer).service(client());
    // Bounded: about 3 s of queries, 20 per second.
    for _ in 0..60 {
        let response = service.clone().oneshot(query(&server)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        if server.mock().counters().refreshes >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counters = server.mock().counters();
    assert!(counters.refreshes >= 2, "refreshes: {}", counters.refreshes);
    assert_eq!(counters.logins, 1);
    assert_eq!(counters.queries_bad_token, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_over_http_is_rejected_with_304() {
    let server = MockOcient::new().serve().await.unwrap();
    let auth = OcientAuth::new(server.uri()).credentials("jdoe", "wrong");
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth))
        .service(client());
    let error: BoxError = service.oneshot(query(&server)).await.unwrap_err();
    assert_eq!(common::token_error(&error).vendor_code(), Some(-304));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_node_is_a_transport_error() {
    let server = MockOcient::new().serve().await.unwrap();
    let uri = server.uri();
    server.shutdown();
    let auth = OcientAuth::new(uri.clone()).credentials("jdoe", "secret");
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth))
        .service(client());
    let request = common::query_to(&format!("{uri}v1/execute/system"));
    let error = service.oneshot(request).await.unwrap_err();
    assert!(
        matches!(common::token_error(&error), Error::Transport { .. }),
        "{error:?}"
    );
}
