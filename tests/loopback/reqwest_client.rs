//! reqwest under the layer, over real HTTP and HTTPS on 127.0.0.1: `reqwest::Client`
//! (0.12, rustls with `ring`) made a `Service<http::Request<reqwest::Body>>` by
//! tower-reqwest's `HttpClientLayer`, the token layer on it. Every scenario runs twice:
//! `reqwest_client::over_http::` and `reqwest_client::over_https::`.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use ocient_mock::{FaultProxy, MockOcient, MockServer};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::retry::RetryLayer;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_reqwest::{HttpClientLayer, HttpClientService};
use tower_token_refresh::{Error, OcientAuth, RetryUnauthorized, TokenRefresh, TokenRefreshLayer};

use crate::transport::{serve, Transport};

/// The layer straight on tower-reqwest's service: requests carry a `reqwest::Body`.
type Api = TokenRefresh<HttpClientService<reqwest::Client>>;

const QUERY: &[u8] = br#"{"statement":"SELECT 1"}"#;

/// reqwest's client trusting exactly the server's CA (not the machine's store, so no run
/// depends on it), and no proxy from the environment: the server is on loopback.
fn reqwest_client(server: &MockServer) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .no_proxy()
        .timeout(Duration::from_secs(20));
    if let Some(ca) = server.ca_certificate_pem() {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// `{scheme}://127.0.0.1:{port}`, the mock's certificate naming 127.0.0.1: the mock itself,
/// or a proxy in front of it.
fn base(server: &MockServer, port: u16) -> String {
    format!("{}://127.0.0.1:{port}", server.uri().scheme_str().unwrap())
}

fn auth(base: &str) -> OcientAuth {
    OcientAuth::new(base.parse().unwrap())
        .credentials("jdoe", "secret")
        .database("retail_analytics")
}

fn api(server: &MockServer, layer: TokenRefreshLayer) -> Api {
    ServiceBuilder::new()
        .layer(layer)
        .layer(HttpClientLayer)
        .service(reqwest_client(server))
}

fn query<B: From<Bytes>>(base: &str) -> Request<B> {
    Request::post(format!("{base}/v1/execute/retail_analytics"))
        .header("content-type", "application/json")
        .body(B::from(Bytes::from_static(QUERY)))
        .unwrap()
}

/// Sends one query and reads its answer; the status, or the error.
async fn send<S, B>(service: &S, base: &str) -> Result<StatusCode, BoxError>
where
    S: Service<Request<B>, Response = Response<reqwest::Body>, Error = BoxError> + Clone,
    B: From<Bytes>,
{
    let response = service.clone().oneshot(query(base)).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// The first error of type `E` in `error`'s source chain, `error` included.
fn find<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// Sequential queries (one every 20 ms) until the server has answered `refreshes` token
/// refreshes, bounded at `within`; the number of queries, and of those that failed.
async fn queries_until_refreshed<S, B>(
    service: &S,
    server: &MockServer,
    base: &str,
    refreshes: u64,
    within: Duration,
) -> (u64, u64)
where
    S: Service<Request<B>, Response = Response<reqwest::Body>, Error = BoxError> + Clone,
    B: From<Bytes>,
{
    let deadline = Instant::now() + within;
    let (mut sent, mut failed) = (0, 0);
    // The mock counts a refresh when it arrives and moves the generation when it answers:
    // wait for the answer.
    while server.mock().current_generation() <= refreshes && Instant::now() < deadline {
        sent += 1;
        match send(service, base).await {
            Ok(StatusCode::OK) => {}
            Ok(other) => {
                failed += 1;
                eprintln!("query {sent}: HTTP {other}");
            }
            Err(error) => {
                failed += 1;
                eprintln!("query {sent}: {error}");
            }
        }
        // Pacing only: what is asserted is waited for above.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (sent, failed)
}

/// Queries through the layer on reqwest, reaching `server` on `port` (its own, or a
/// proxy's), until its 2-second tokens were refreshed three times: sent and failed.
async fn three_refreshes(server: &MockServer, port: u16) -> (u64, u64) {
    let base = base(server, port);
    // Refresh once 90% is left: about 0.2 s to 0.4 s after each new token.
    let service = api(server, TokenRefreshLayer::new(auth(&base)).refresh_at(0.9));
    let within = Duration::from_secs(20);
    queries_until_refreshed::<_, reqwest::Body>(&service, server, &base, 3, within).await
}

async fn tokens_are_refreshed_for_generations_with_no_failure(transport: Transport) {
    let server = serve(
        MockOcient::new().token_lifetime(Duration::from_secs(2)),
        transport,
    )
    .await;
    let (sent, failed) = three_refreshes(&server, server.addr().port()).await;
    let counters = server.mock().counters();
    eprintln!("{transport:?}: {sent} queries, {failed} failed, {counters:?}");
    assert!(counters.refreshes >= 3, "refreshes: {}", counters.refreshes);
    assert!(server.mock().current_generation() >= 4, "four generations");
    assert_eq!(failed, 0, "no request failed");
    assert_eq!(counters.logins, 1, "one login, then refreshes");
    assert_eq!(counters.queries_bad_token, 0, "never an expired token");
    assert_eq!(counters.queries_no_token, 0);
    assert_eq!(counters.queries_ok, sent);
}

async fn token_requests_travel_through_reqwests_pool(transport: Transport) {
    let server = serve(
        MockOcient::new().token_lifetime(Duration::from_secs(2)),
        transport,
    )
    .await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    // Every request, the layer's login and refreshes included, goes through the proxy,
    // which counts the TCP connections made to it.
    let (sent, failed) = three_refreshes(&server, proxy.addr().port()).await;
    let counters = server.mock().counters();
    let connections = proxy.connections();
    eprintln!(
        "{transport:?}: {sent} queries, {} logins, {} refreshes over {connections} connections",
        counters.logins, counters.refreshes
    );
    assert_eq!(failed, 0);
    assert!(counters.refreshes >= 3, "refreshes: {}", counters.refreshes);
    assert!(sent >= 10, "queries: {sent}");
    // Queries go one at a time; a refresh starts beside the query that found the token due,
    // so at most two requests are ever in flight. A client of its own for the token
    // requests would open a connection for each of them.
    assert!(
        (1..=2).contains(&connections),
        "{sent} queries and {} token requests over {connections} connections",
        counters.token_requests()
    );
}

async fn a_thousand_callers_at_a_dead_token_cause_one_token_request(transport: Transport) {
    let server = serve(MockOcient::new(), transport).await;
    let base = base(&server, server.addr().port());
    let auth = auth(&base).initial_token("long-expired", Duration::ZERO);
    let service = api(&server, TokenRefreshLayer::new(auth));
    let mut callers = JoinSet::new();
    for _ in 0..1000 {
        let (service, base) = (service.clone(), base.clone());
        callers.spawn(async move { send::<_, reqwest::Body>(&service, &base).await });
    }
    while let Some(status) = callers.join_next().await {
        assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
    }
    let counters = server.mock().counters();
    eprintln!("{transport:?}: {counters:?}");
    assert_eq!(counters.token_requests(), 1, "exactly one token request");
    assert_eq!(counters.logins, 1);
    assert_eq!(counters.queries_bad_token, 0, "the dead token never sent");
    assert_eq!(counters.queries_ok, 1000);
}

async fn a_401_retires_the_token_and_the_retry_resends_once(transport: Transport) {
    let server = serve(MockOcient::new(), transport).await;
    let base = base(&server, server.addr().port());
    // README's composition: the retry outside the token layer, requests with a `Bytes`
    // body (`Clone`, which `reqwest::Body` is not), turned into a `reqwest::Body` under it.
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryUnauthorized::default()))
        .layer(TokenRefreshLayer::new(auth(&base)))
        .map_request(|request: Request<Bytes>| request.map(reqwest::Body::from))
        .layer(HttpClientLayer)
        .service(reqwest_client(&server));
    assert_eq!(send(&service, &base).await.unwrap(), StatusCode::OK);

    server.mock().revoke_all();
    let status = send(&service, &base).await.unwrap();
    let counters = server.mock().counters();
    eprintln!("{transport:?}: {counters:?}");
    assert_eq!(status, StatusCode::OK, "the caller never sees the 401");
    assert_eq!(counters.queries_bad_token, 1, "one 401, resent once");
    assert_eq!(counters.logins, 2, "the revoked token retired, a new login");
    assert_eq!(counters.refreshes, 0, "a revoked token is not refreshed");
    assert_eq!(counters.queries_ok, 2);
}

async fn a_wrong_password_is_the_typed_error_inside_the_box(transport: Transport) {
    let server = serve(MockOcient::new(), transport).await;
    let base = base(&server, server.addr().port());
    let auth = OcientAuth::new(base.parse().unwrap()).credentials("jdoe", "wrong");
    let service = api(&server, TokenRefreshLayer::new(auth));
    let error = send::<_, reqwest::Body>(&service, &base).await.unwrap_err();
    let error = error
        .downcast_ref::<Error>()
        .unwrap_or_else(|| panic!("not the layer's error: {error:?}"));
    assert!(matches!(error, Error::Rejected { .. }), "{error:?}");
    assert_eq!(error.vendor_code(), Some(-304), "{error}");
    assert_eq!(server.mock().counters().queries_ok, 0);
}

async fn reqwests_errors_pass_through_unchanged(transport: Transport) {
    let server = serve(MockOcient::new(), transport).await;
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let base = base(&server, proxy.addr().port());
    let service = api(&server, TokenRefreshLayer::new(auth(&base)));
    assert_eq!(
        send::<_, reqwest::Body>(&service, &base).await.unwrap(),
        StatusCode::OK
    );
    // The token is good for a minute; the query itself now fails in reqwest. The port is
    // closed and the pooled connection cut, so no kept-alive connection can answer it.
    proxy.set_down(true).await.unwrap();
    proxy.cut_connections();
    let error = send::<_, reqwest::Body>(&service, &base).await.unwrap_err();
    assert!(error.downcast_ref::<Error>().is_none(), "{error:?}");
    assert!(
        error.downcast_ref::<tower_reqwest::Error>().is_some(),
        "the adapter's error, as it was: {error:?}"
    );
    assert!(
        find::<reqwest::Error>(error.as_ref()).is_some(),
        "reqwest's error is its source: {error:?}"
    );
}

over_http_and_https!(
    tokens_are_refreshed_for_generations_with_no_failure,
    token_requests_travel_through_reqwests_pool,
    a_thousand_callers_at_a_dead_token_cause_one_token_request,
    a_401_retires_the_token_and_the_retry_resends_once,
    a_wrong_password_is_the_typed_error_inside_the_box,
    reqwests_errors_pass_through_unchanged,
);

/// A login whose request reqwest could not deliver: the layer's `Error::Transport`, with
/// reqwest's error in its source chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_reqwest_could_not_send_is_a_transport_error_with_reqwests_error_inside() {
    let server = serve(MockOcient::new(), Transport::Http).await;
    // A port nothing listens on: bound, then closed at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let base = base(&server, port);
    let service = api(&server, TokenRefreshLayer::new(auth(&base)));
    let error = send::<_, reqwest::Body>(&service, &base).await.unwrap_err();
    match error.downcast_ref::<Error>() {
        Some(Error::Transport { exchange, .. }) => assert_eq!(exchange.to_string(), "login"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    let reqwest = find::<reqwest::Error>(error.as_ref()).expect("reqwest's error inside");
    assert!(reqwest.is_connect(), "{reqwest:?}");
}
