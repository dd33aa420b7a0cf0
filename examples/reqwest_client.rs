//! The token layer over `reqwest::Client`, through tower-reqwest's `HttpClientLayer`, with
//! `RetryUnauthorized` outside; several token generations, then a token revoked on the server
//! that nobody upstream notices.
//!
//! ```text
//! cargo run --example reqwest_client              # against an embedded mock Ocient
//! cargo run --example reqwest_client -- --tls     # the same, over HTTPS (the mock's CA added)
//! OCIENT_PASSWORD=... cargo run --example reqwest_client -- --url https://sql-node \
//!     --user jdoe --database retail_analytics     # SELECT 1 against a real SQL node
//! ```
//!
//! # Which reqwest
//!
//! reqwest 0.12 with its `rustls-tls-native-roots` feature, and tower-reqwest 0.5 (0.5.2):
//!
//! - reqwest 0.12's `rustls-tls-*` features use rustls's `ring` provider, which builds with a
//!   C compiler alone. reqwest 0.13's rustls defaults to the `aws-lc-rs` provider, which needs
//!   cmake, and tower-reqwest's 0.6 line (the one for reqwest 0.13) needs Rust 1.89, newer
//!   than this crate's 1.85; tower-reqwest 0.5.3 needs 1.88, hence 0.5.2.
//! - Lean: `default-features = false` (no native-tls, no HTTP/2, no system proxy lookup);
//!   HTTP/1.1 is always on in reqwest 0.12.
//! - One provider in the process. This program links only `ring`, and reqwest 0.12 uses it
//!   when no default provider is installed. A program that links both (reqwest 0.13's
//!   default rustls next to hyper-rustls with `ring`, say) must install one before its first
//!   TLS handshake, or rustls panics there:
//!   `rustls::crypto::ring::default_provider().install_default()`.
//!
//! # The stack, outside in
//!
//! ```text
//! RetryLayer::new(RetryUnauthorized::default())   one more try after a 401; clones Request<Bytes>
//!   TokenRefreshLayer::new(OcientAuth)            puts the token on, keeps it fresh
//!     map_request(Bytes -> reqwest::Body)          tower-reqwest takes reqwest::Body only
//!       HttpClientLayer                           http::Request -> reqwest::Request
//!         reqwest::Client                         one pool, its TLS roots, proxy, timeouts
//! ```
//!
//! - **The body.** tower-reqwest's service takes `http::Request<reqwest::Body>` only, and
//!   `reqwest::Body` is not `Clone`, so a retry cannot copy it. Requests are built with a
//!   `Bytes` body (`Clone`, and `From<Bytes>` as the layer needs for its own token requests),
//!   turned into a `reqwest::Body` under the token layer: no copy, the length kept.
//! - **Retry outside the token layer**, so the retried request passes through it again and
//!   goes out with the new token.
//! - **Token layer on the client.** Its login and refresh requests go through the same
//!   `reqwest::Client`: its connection pool (a refresh reuses a query's connection), its
//!   roots, proxy settings and timeout.
//!
//! With no flags the example starts the embedded mock Ocient with 2-second tokens, runs a
//! query every 100 ms until the token has been refreshed three times, revokes every token on
//! the server, shows that the next query still succeeds (a 401, the layer revokes the token,
//! the retry goes out with a new one), prints the server's counters and exits 0 in about
//! four seconds.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use ocient_mock::{MockOcient, MockServer};
use tower::retry::RetryLayer;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_reqwest::HttpClientLayer;
use tower_token_refresh::{RetryUnauthorized, TokenRefreshLayer};

mod support;

use support::{Node, NodeFlags};

/// The embedded mock's token lifetime: short, so a few seconds see several generations.
const TOKEN_LIFETIME: Duration = Duration::from_secs(2);
/// Refreshes to see before revoking: three refreshes, four token generations.
const REFRESHES: u64 = 3;
/// The pause between two queries, and the most queries the generations may take.
const PACE: Duration = Duration::from_millis(100);
const MAX_QUERIES: usize = 100;
/// reqwest's bound on each request, the layer's token requests included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest answer body the example echoes.
const MAX_SHOWN: usize = 200;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let flags = NodeFlags::only_or_exit("reqwest_client");
    let node = flags
        .node(MockOcient::new().token_lifetime(TOKEN_LIFETIME))
        .await?;

    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryUnauthorized::default()))
        .layer(TokenRefreshLayer::new(node.auth.clone()))
        .map_request(|request: Request<Bytes>| request.map(reqwest::Body::from))
        .layer(HttpClientLayer)
        .service(reqwest_client(&node)?);

    let target = node.execute_uri();
    let ok = match &node.mock {
        Some(server) => against_the_mock(&service, &target, server, node.transport()).await,
        None => against_a_node(&service, &target).await,
    };
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// reqwest's client: the system's roots plus the node's private CA (`--ca-cert`, or the
/// embedded mock's), a bound on each request, HTTP/1.1.
fn reqwest_client(node: &Node) -> Result<reqwest::Client, BoxError> {
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5));
    for pem in node.private_cas() {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
    }
    if node.mock.is_some() {
        // The embedded mock is on 127.0.0.1: an `HTTP(S)_PROXY` in the environment must not
        // take its requests elsewhere. Against a real node, reqwest's proxy settings apply.
        builder = builder.no_proxy();
    }
    Ok(builder.build()?)
}

/// Queries through several token generations, every token revoked, one more query; true
/// when every query succeeded and the token was refreshed as often as expected.
async fn against_the_mock<S>(service: &S, target: &str, server: &MockServer, via: &str) -> bool
where
    S: Service<Request<Bytes>, Response = Response<reqwest::Body>, Error = BoxError> + Clone,
{
    println!(
        "embedded mock Ocient at {} over {via} (user jdoe, {}-second tokens)",
        server.uri(),
        TOKEN_LIFETIME.as_secs()
    );
    println!(
        "stack: Retry(RetryUnauthorized) > TokenRefresh > HttpClientLayer > reqwest::Client\n"
    );
    let mut all_ok = true;
    let mut generation = 0;
    let mut n = 0;
    while server.mock().counters().refreshes < REFRESHES && n < MAX_QUERIES {
        n += 1;
        let outcome = query(service, target).await;
        let now = server.mock().current_generation();
        // Every query is checked; one line for the first and for each new token.
        let shown = outcome.is_err() || now != generation;
        if shown {
            all_ok &= report(n, outcome, now);
        }
        generation = now;
        tokio::time::sleep(PACE).await;
    }
    let refreshes = server.mock().counters().refreshes;
    if refreshes < REFRESHES {
        println!("only {refreshes} refreshes in {n} queries");
        all_ok = false;
    }

    println!("\nthe server revokes every token it has issued");
    server.mock().revoke_all();
    let before = server.mock().counters();
    let outcome = query(service, target).await;
    all_ok &= report(n + 1, outcome, server.mock().current_generation());
    let during = server.mock().counters();
    support::explain_retry(&before, &during);

    support::print_counters(&server.mock().counters());
    all_ok
}

/// `SELECT 1` against a real SQL node; true when it succeeded.
async fn against_a_node<S>(service: &S, target: &str) -> bool
where
    S: Service<Request<Bytes>, Response = Response<reqwest::Body>, Error = BoxError> + Clone,
{
    println!("SELECT 1 against {target}\n");
    match query(service, target).await {
        Ok((status, body)) => {
            println!("query 1: HTTP {status}  {}", shown(&body));
            status.is_success()
        }
        Err(error) => {
            println!("query 1: failed: {}", explain(&error));
            false
        }
    }
}

async fn query<S>(service: &S, target: &str) -> Result<(StatusCode, Bytes), BoxError>
where
    S: Service<Request<Bytes>, Response = Response<reqwest::Body>, Error = BoxError> + Clone,
{
    let request = Request::post(target)
        .header("content-type", "application/json")
        .body(Bytes::from_static(br#"{"statement":"SELECT 1"}"#))?;
    let response = service.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Prints one query's outcome with the server's token generation; true when it succeeded.
fn report(n: usize, outcome: Result<(StatusCode, Bytes), BoxError>, generation: u64) -> bool {
    match outcome {
        Ok((status, body)) => {
            println!(
                "query {n}: HTTP {status}  token generation {generation}  {}",
                shown(&body)
            );
            status.is_success()
        }
        Err(error) => {
            println!("query {n}: failed: {}", explain(&error));
            false
        }
    }
}

/// A query answer holds rows and a status object, never the token.
fn shown(body: &Bytes) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars()
        .take(MAX_SHOWN)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Where a failure came from: the layer (no token: a `tower_token_refresh::Error` in the
/// box), or reqwest (the request itself: tower-reqwest's error in the box, with the
/// `reqwest::Error` as its source). The layer's errors never hold the password or a token.
fn explain(error: &BoxError) -> String {
    if let Some(no_token) = error.downcast_ref::<tower_token_refresh::Error>() {
        return format!("no token: {no_token}");
    }
    match find::<reqwest::Error>(error.as_ref()) {
        Some(reqwest) if reqwest.is_timeout() => format!("reqwest timed out: {reqwest}"),
        Some(reqwest) => format!("reqwest: {reqwest}"),
        None => error.to_string(),
    }
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
