//! A cluster of several SQL nodes: token requests fail over from a node that is down or
//! failing, never from one that says the credentials are wrong. Over real loopback HTTP.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::Full;
use ocient_mock::{Fault, MockOcient, MockServer};
use tower::{ServiceBuilder, ServiceExt};
use tower_token_refresh::{Error, OcientAuth, TokenEvent, TokenRefresh, TokenRefreshLayer};

use crate::common;
use crate::common::https::{https_client, HttpsClient};

type Client = TokenRefresh<HttpsClient<Full<Bytes>>>;

/// Failovers the hook heard of, as (from, to).
type Failovers = Arc<Mutex<Vec<(String, String)>>>;

/// The layer over a client trusting `private_cas`, and what its hook hears of failovers.
fn layered_trusting(auth: OcientAuth, private_cas: &[String]) -> (Client, Failovers) {
    let failovers = Failovers::default();
    let heard = Arc::clone(&failovers);
    let layer = TokenRefreshLayer::new(auth).on_token(move |event| {
        if let TokenEvent::FailedOver { from, to, .. } = event {
            heard
                .lock()
                .unwrap()
                .push((from.to_string(), to.to_string()));
        }
    });
    let client = https_client(private_cas).unwrap();
    let service = ServiceBuilder::new().layer(layer).service(client);
    (service, failovers)
}

fn layered(auth: OcientAuth) -> (Client, Failovers) {
    layered_trusting(auth, &[])
}

fn query(server: &MockServer) -> http::Request<Full<Bytes>> {
    common::query_to(&format!("{}v1/execute/retail_analytics", server.uri()))
}

/// A loopback address where nothing listens.
async fn closed_port() -> Uri {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/").parse().unwrap()
}

async fn assert_queries_succeed(service: &Client, server: &MockServer, n: usize) {
    for _ in 0..n {
        let response = service.clone().oneshot(query(server)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_down_fails_over_to_the_next() {
    let down = closed_port().await;
    let up = MockOcient::new().serve().await.unwrap();
    let auth = OcientAuth::new(down.clone())
        .node(up.uri())
        .credentials("jdoe", "secret");
    let (service, failovers) = layered(auth);

    assert_queries_succeed(&service, &up, 10).await;
    assert_eq!(up.mock().counters().logins, 1);
    let heard = failovers.lock().unwrap().clone();
    let up_origin = up.uri().to_string();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(
        heard[0].0.trim_end_matches('/'),
        down.to_string().trim_end_matches('/')
    );
    assert_eq!(
        heard[0].1.trim_end_matches('/'),
        up_origin.trim_end_matches('/')
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answering_503_fails_over_and_the_next_stays_in_use() {
    let failing = MockOcient::new().serve().await.unwrap();
    failing
        .mock()
        .fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 1);
    let up = MockOcient::new().serve().await.unwrap();
    let auth = OcientAuth::new(failing.uri())
        .node(up.uri())
        .credentials("jdoe", "secret");
    let (service, failovers) = layered(auth);

    assert_queries_succeed(&service, &up, 5).await;
    assert_eq!(failing.mock().counters().logins, 1);
    assert_eq!(up.mock().counters().logins, 1);
    assert_eq!(failovers.lock().unwrap().len(), 1);

    // The next login goes where the last answer came from.
    up.mock().revoke_all();
    let refused = service.clone().oneshot(query(&up)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_queries_succeed(&service, &up, 1).await;
    assert_eq!(up.mock().counters().logins, 2);
    assert_eq!(failing.mock().counters().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_does_not_fail_over() {
    let first = MockOcient::new().serve().await.unwrap();
    let second = MockOcient::new().serve().await.unwrap();
    let auth = OcientAuth::new(first.uri())
        .node(second.uri())
        .credentials("jdoe", "wrong");
    let (service, failovers) = layered(auth);

    let error = service.oneshot(query(&first)).await.unwrap_err();
    match common::token_error(&error) {
        error @ Error::Rejected { .. } => assert_eq!(error.vendor_code(), Some(-304)),
        other => panic!("expected a rejection, got {other}"),
    }
    assert_eq!(first.mock().counters().logins, 1);
    assert_eq!(second.mock().counters().logins, 0);
    assert!(failovers.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_goes_to_every_node_and_to_no_other() {
    let first = MockOcient::new().serve().await.unwrap();
    let second = MockOcient::new().serve().await.unwrap();
    let elsewhere = MockOcient::new().serve().await.unwrap();
    let auth = OcientAuth::new(first.uri())
        .node(second.uri())
        .credentials("jdoe", "secret");
    let (service, _) = layered(auth);

    for server in [&first, &first, &second, &elsewhere] {
        service.clone().oneshot(query(server)).await.unwrap();
    }
    // The first node issued the token; the second got it (and refused it: it never issued
    // it), the third never saw it.
    assert_eq!(first.mock().counters().queries_ok, 2);
    assert_eq!(second.mock().counters().queries_bad_token, 1);
    let elsewhere = elsewhere.mock().counters();
    assert_eq!(
        (elsewhere.queries_no_token, elsewhere.queries_bad_token),
        (1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_in_the_clear_is_skipped_not_stuck_on() {
    let failing = MockOcient::new().serve_tls().await.unwrap();
    failing
        .mock()
        .fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 1);
    let up = MockOcient::new().serve_tls().await.unwrap();
    // A node over plain http on another host: never to be sent the password.
    let cleartext: Uri = "http://sql-node-in-the-clear.invalid:9090".parse().unwrap();
    let auth = OcientAuth::new(failing.uri())
        .node(cleartext)
        .node(up.uri())
        .credentials("jdoe", "secret");
    let cas: Vec<String> = [&failing, &up]
        .iter()
        .filter_map(|s| s.ca_certificate_pem().map(str::to_owned))
        .collect();
    let (service, failovers) = layered_trusting(auth, &cas);

    assert_queries_succeed(&service, &up, 3).await;
    assert_eq!(up.mock().counters().logins, 1);
    assert_eq!(
        failovers.lock().unwrap().len(),
        2,
        "past the node in the clear"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_node_is_down_each_is_tried_once_and_the_error_is_the_transports() {
    let (first, second) = (closed_port().await, closed_port().await);
    let auth = OcientAuth::new(first.clone())
        .node(second)
        .credentials("jdoe", "secret");
    let (service, failovers) = layered(auth);
    let request = common::query_to(&format!("{first}v1/execute/retail_analytics"));
    let outcome =
        tokio::time::timeout(std::time::Duration::from_secs(20), service.oneshot(request));
    let error = outcome
        .await
        .expect("no endless round of the nodes")
        .unwrap_err();
    assert!(
        matches!(common::token_error(&error), Error::Transport { .. }),
        "{error}"
    );
    // The second node's own failure, not a flight that died trying for a third.
    assert!(!error.to_string().contains("ended early"), "{error}");
    assert_eq!(
        failovers.lock().unwrap().len(),
        1,
        "one move, to the second node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_node_calls_malformed_does_not_fail_over() {
    let first = MockOcient::new().serve().await.unwrap();
    first
        .mock()
        .fail_token_requests(Fault::Status(StatusCode::BAD_REQUEST), 1);
    let second = MockOcient::new().serve().await.unwrap();
    let auth = OcientAuth::new(first.uri())
        .node(second.uri())
        .credentials("jdoe", "secret");
    let (service, failovers) = layered(auth);

    let error = service.oneshot(query(&first)).await.unwrap_err();
    match common::token_error(&error) {
        Error::Rejected { status, .. } => assert_eq!(*status, StatusCode::BAD_REQUEST),
        other => panic!("expected a rejection, got {other}"),
    }
    assert_eq!(second.mock().counters().logins, 0);
    assert!(failovers.lock().unwrap().is_empty());
}
