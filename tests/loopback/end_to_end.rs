//! End to end over real HTTP and HTTPS on 127.0.0.1: the mock server, hyper-util's legacy
//! Client over hyper-rustls, the layer. Every scenario runs twice: `over_http::` and
//! `over_https::`.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use ocient_mock::{MockOcient, MockServer};
use tokio::task::JoinSet;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::{Error, OcientAuth, TokenRefresh, TokenRefreshLayer};

use crate::common;
use crate::common::https::{https_client, HttpsClient};
use crate::transport::{serve, Transport};

/// A client that trusts the server's CA, if it has one.
fn client(server: &MockServer) -> HttpsClient<Full<Bytes>> {
    let private_cas: Vec<String> = server
        .ca_certificate_pem()
        .into_iter()
        .map(Into::into)
        .collect();
    https_client(&private_cas).unwrap()
}

fn layered(
    server: &MockServer,
    layer: TokenRefreshLayer,
) -> TokenRefresh<HttpsClient<Full<Bytes>>> {
    ServiceBuilder::new().layer(layer).service(client(server))
}

fn query(server: &MockServer) -> Request<Full<Bytes>> {
    common::query_to(&format!("{}v1/execute/retail_analytics", server.uri()))
}

fn auth(server: &MockServer) -> OcientAuth {
    OcientAuth::new(server.uri())
        .credentials("jdoe", "secret")
        .database("retail_analytics")
}

async fn queries_go_out_with_the_token_from_one_login(transport: Transport) {
    let server = serve(MockOcient::new(), transport).await;
    let service = layered(&server, TokenRefreshLayer::new(auth(&server)));
    let response = service.clone().oneshot(query(&server)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["status"]["vendor_code"], 0);
    let counters = server.mock().counters();
    assert_eq!((counters.logins, counters.queries_ok), (1, 1));
}

async fn a_thousand_callers_at_an_expired_token_cause_one_login(transport: Transport) {
    let server = serve(MockOcient::new(), transport).await;
    let auth = auth(&server).initial_token("long-expired", Duration::ZERO);
    let service = layered(&server, TokenRefreshLayer::new(auth));
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

async fn the_token_is_refreshed_for_generations_while_queries_flow(transport: Transport) {
    let mock = MockOcient::new().token_lifetime(Duration::from_secs(2));
    let server = serve(mock, transport).await;
    // Refresh once 90% is left: about 0.2 s to 0.4 s after each new token.
    let layer = TokenRefreshLayer::new(auth(&server)).refresh_at(0.9);
    let service = layered(&server, layer);
    // Bounded: at most about 5 s of queries, 20 per second. The mock counts a refresh when
    // it arrives and moves the generation when it answers: wait for the answer.
    for _ in 0..100 {
        let response = service.clone().oneshot(query(&server)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        if server.mock().current_generation() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counters = server.mock().counters();
    assert!(counters.refreshes >= 3, "refreshes: {}", counters.refreshes);
    assert!(server.mock().current_generation() >= 4, "a few generations");
    assert_eq!(counters.logins, 1);
    assert_eq!(counters.queries_bad_token, 0);
    assert_eq!(counters.queries_no_token, 0);
}

async fn a_wrong_password_is_rejected_with_304(transport: Transport) {
    let server = serve(MockOcient::new(), transport).await;
    let auth = OcientAuth::new(server.uri()).credentials("jdoe", "wrong");
    let service = layered(&server, TokenRefreshLayer::new(auth));
    let error: BoxError = service.oneshot(query(&server)).await.unwrap_err();
    assert_eq!(common::token_error(&error).vendor_code(), Some(-304));
}

async fn an_unreachable_node_is_a_transport_error(transport: Transport) {
    let server = serve(MockOcient::new(), transport).await;
    let service = layered(&server, TokenRefreshLayer::new(auth(&server)));
    let request = query(&server);
    server.shutdown();
    let error = service.oneshot(request).await.unwrap_err();
    assert!(
        matches!(common::token_error(&error), Error::Transport { .. }),
        "{error:?}"
    );
}

over_http_and_https!(
    queries_go_out_with_the_token_from_one_login,
    a_thousand_callers_at_an_expired_token_cause_one_login,
    the_token_is_refreshed_for_generations_while_queries_flow,
    a_wrong_password_is_rejected_with_304,
    an_unreachable_node_is_a_transport_error,
);

/// A client without the mock's CA in its roots: the login fails its certificate check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_server_gets_a_transport_error_not_a_hang() {
    let server = serve(MockOcient::new(), Transport::Https).await;
    let untrusting = https_client::<Full<Bytes>>(&[]).unwrap();
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth(&server)))
        .service(untrusting);
    // A guard against a hang only: the answer comes at once.
    let outcome = tokio::time::timeout(Duration::from_secs(20), service.oneshot(query(&server)));
    let error = outcome.await.expect("no hang").unwrap_err();
    match common::token_error(&error) {
        Error::Transport { exchange, .. } => assert_eq!(exchange.to_string(), "login"),
        other => panic!("expected a transport error, got {other}"),
    }
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert_eq!(
        server.mock().counters().logins,
        0,
        "the password never left"
    );
}
