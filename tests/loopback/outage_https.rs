//! Outages on real sockets: the mock over HTTPS on 127.0.0.1 behind `ocient_mock::FaultProxy`,
//! hyper-util's legacy Client over hyper-rustls, the layer. Real time, short tokens; the
//! bounds asserted are what the crate promises (seconds), far above what a run takes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use ocient_mock::{FaultProxy, MockOcient, MockServer};
use tokio::time::{sleep, Instant};
use tower::{ServiceBuilder, ServiceExt};
use tower_token_refresh::{Error, OcientAuth, TokenEvent, TokenRefresh, TokenRefreshLayer};

use crate::common::https::{https_client, HttpsClient};
use crate::common::{millis, query_to, secs};

type Api = TokenRefresh<HttpsClient<Full<Bytes>>>;

/// The mock over HTTPS, handing out tokens of `lifetime`, and a proxy in front of it.
async fn node_behind_a_proxy(lifetime: Duration) -> (MockServer, FaultProxy) {
    let server = MockOcient::new()
        .token_lifetime(lifetime)
        .serve_tls()
        .await
        .unwrap();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    (server, proxy)
}

/// `https://127.0.0.1:{port}`: the mock's certificate names 127.0.0.1, so the same
/// certificate verifies through the proxy, which passes TLS through untouched.
fn https_to(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// The layer over a client that trusts the mock's CA; token requests go through `proxy`.
fn api(
    server: &MockServer,
    proxy: &FaultProxy,
    layer: impl FnOnce(OcientAuth) -> TokenRefreshLayer,
) -> Api {
    let ca = server.ca_certificate_pem().unwrap().to_owned();
    let auth = OcientAuth::new(https_to(proxy.addr().port()).parse().unwrap())
        .credentials("jdoe", "secret")
        .database("retail_analytics");
    ServiceBuilder::new()
        .layer(layer(auth))
        .service(https_client(&[ca]).unwrap())
}

async fn query_ok(api: &Api, base: &str) -> bool {
    let request = query_to(&format!("{base}/v1/execute/retail_analytics"));
    match api.clone().oneshot(request).await {
        Ok(response) => response.status() == StatusCode::OK,
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_proxy_down_for_three_token_lifetimes_under_traffic_is_recovered_from_within_five_seconds(
) {
    let (server, proxy) = node_behind_a_proxy(secs(4)).await;
    let api = api(&server, &proxy, TokenRefreshLayer::new);
    let base = https_to(proxy.addr().port());
    api.warm_up().await.unwrap();
    assert!(query_ok(&api, &base).await);

    proxy.set_down(true).await.unwrap();
    let down_since = Instant::now();
    while down_since.elapsed() < secs(12) {
        assert!(
            !query_ok(&api, &base).await,
            "nothing gets through while down"
        );
        sleep(millis(50)).await;
    }
    assert!(!api.status().is_usable(), "the outage outlived the token");
    proxy.set_down(false).await.unwrap();
    let back = Instant::now();
    while !query_ok(&api, &base).await {
        assert!(
            back.elapsed() < secs(5),
            "still turned away 5 s after the return"
        );
        sleep(millis(50)).await;
    }
    println!(
        "over https: first success {:?} after the proxy came back",
        back.elapsed()
    );
    assert_eq!(server.mock().counters().queries_bad_token, 0);
}

/// A node whose token requests go through a proxy while queries go straight to it.
struct SplitPaths {
    server: MockServer,
    proxy: FaultProxy,
    api: Api,
    /// Failed token requests, as the hook hears of them.
    failures: Arc<AtomicUsize>,
}

/// 10-second tokens refreshed once 90% is left (from 1-2 s on: the dead point is at 9 s),
/// each token request bounded by `refresh_timeout`; the first token already obtained.
async fn split_paths(refresh_timeout: Duration) -> SplitPaths {
    let (server, proxy) = node_behind_a_proxy(secs(10)).await;
    let failures = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&failures);
    let direct = server.uri();
    let api = api(&server, &proxy, |auth| {
        TokenRefreshLayer::new(auth)
            .refresh_at(0.9)
            .refresh_timeout(refresh_timeout)
            .allow_origin(direct)
            .on_token(move |event| {
                if let TokenEvent::Failed { .. } = event {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            })
    });
    api.warm_up().await.unwrap();
    SplitPaths {
        server,
        proxy,
        api,
        failures,
    }
}

/// Queries every 100 ms straight to the node (not through the proxy) until `done` says
/// so; panics on the first that fails, or if it takes more than 30 s.
async fn queries_all_succeed(api: &Api, server: &MockServer, done: impl Fn() -> bool) {
    let (direct, started) = (https_to(server.addr().port()), Instant::now());
    while !done() {
        assert!(
            query_ok(api, &direct).await,
            "a query failed while the token was valid"
        );
        assert!(started.elapsed() < secs(30), "never done");
        sleep(millis(100)).await;
    }
}

#[tokio::test]
async fn a_black_hole_during_a_refresh_times_out_and_the_valid_token_keeps_serving() {
    let SplitPaths {
        server,
        proxy,
        api,
        failures,
    } = split_paths(secs(1)).await;
    proxy.black_hole(true);

    // Past the latest refresh point (2 s) the refresh goes into the hole and times out
    // after 1 s; queries straight to the node keep going out with the valid token.
    let started = Instant::now();
    queries_all_succeed(&api, &server, || started.elapsed() > secs(4)).await;
    assert!(
        failures.load(Ordering::SeqCst) >= 1,
        "the refresh timed out"
    );
    let error = api.status().last_error.expect("a failure is kept");
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
    assert!(api.status().is_usable());

    proxy.black_hole(false);
    queries_all_succeed(&api, &server, || api.status().generation >= 2).await;
    assert_eq!(server.mock().counters().queries_bad_token, 0);
}

#[tokio::test]
async fn connections_cut_mid_refresh_are_retried_and_no_caller_fails_while_the_token_is_valid() {
    let SplitPaths {
        server,
        proxy,
        api,
        failures,
    } = split_paths(secs(5)).await;
    // Every chunk through the proxy now takes 300 ms each way: a refresh is in flight for
    // more than half a second, and the cut lands in the middle of it.
    proxy.latency(millis(300));
    queries_all_succeed(&api, &server, || api.status().refreshing).await;
    sleep(millis(200)).await;
    proxy.cut_connections();

    queries_all_succeed(&api, &server, || api.status().generation >= 2).await;
    assert!(
        failures.load(Ordering::SeqCst) >= 1,
        "the cut refresh failed"
    );
    assert_eq!(server.mock().counters().queries_bad_token, 0);
}
