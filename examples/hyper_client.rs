//! hyper-util's legacy `Client` under a retry, a timeout and the token layer, stacked with
//! `ServiceBuilder`, and a token revoked on the server that nobody upstream ever notices.
//!
//! ```text
//! cargo run --example hyper_client              # against an embedded mock Ocient
//! cargo run --example hyper_client -- --tls     # the same, over HTTPS
//! OCIENT_PASSWORD=... cargo run --example hyper_client -- --url https://sql-node \
//!     --user jdoe --database retail_analytics   # SELECT 1 against a real SQL node
//! ```
//!
//! The client is hyper-util's over hyper-rustls (see `support/tls.rs`): the TLS connector
//! sits under the token layer, so the layer's own login and refresh requests use it too.
//!
//! # The stack, outside in
//!
//! ```text
//! RetryLayer::new(RetryUnauthorized::default())   one more try after a 401
//!   TimeoutLayer::new(10 s)                       bounds each attempt
//!     TokenRefreshLayer::new(OcientAuth)          puts the token on, keeps it fresh
//!       Client                                    hyper-util, one connection pool
//! ```
//!
//! - **Retry outside the token layer.** A 401 tells the token layer that the token the
//!   request carried is no good (revoked, say), and it revokes that token. The retry must
//!   then pass through the token layer *again*, so it goes out with the new token; a retry
//!   under the token layer would resend the old header and get the same 401.
//! - **Timeout between them.** It bounds each attempt, so the retry gets its own full
//!   budget. For a deadline on the whole call, put a second timeout outside the retry.
//! - **Token layer innermost, right on the client.** Its own login and refresh requests go
//!   through the service it wraps: the bare client, with the same pool, TLS and proxy, but
//!   not through the retry or the timeout above. Those requests have their own bound
//!   (`TokenRefreshLayer::refresh_timeout`, 30 s by default).
//! - **A timeout outside the layer cancels only its caller.** The refresh runs on its own
//!   task, shared by every caller; when one caller's timeout fires, its request is dropped,
//!   and the refresh goes on for everybody else.
//!
//! With no flags the example starts the embedded mock Ocient, runs a few queries, revokes
//! every token on the server and shows that the next query still succeeds: it is answered
//! 401, the layer revokes the token, the retry policy sends it again and the layer logs in
//! once more. It prints the server's counters and exits 0 within a second or so.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use ocient_mock::{MockOcient, MockServer};
use tower::retry::RetryLayer;
use tower::timeout::TimeoutLayer;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_token_refresh::{RetryUnauthorized, TokenRefreshLayer};

mod support;

use support::NodeFlags;

type Body = Full<Bytes>;

/// How long one attempt (one trip through the token layer and the client) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest answer body the example echoes.
const MAX_SHOWN: usize = 200;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let flags = NodeFlags::only_or_exit("hyper_client");
    let node = flags.node(MockOcient::new()).await?;

    let client = node.client::<Body>()?;
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryUnauthorized::default()))
        .layer(TimeoutLayer::new(ATTEMPT_TIMEOUT))
        .layer(TokenRefreshLayer::new(node.auth.clone()))
        .service(client);

    let target = node.execute_uri();
    let ok = match &node.mock {
        Some(server) => against_the_mock(&service, &target, server).await,
        None => against_a_node(&service, &target).await,
    };
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// A few queries, every token revoked, one more query; true when every query succeeded.
async fn against_the_mock<S>(service: &S, target: &str, server: &MockServer) -> bool
where
    S: Service<Request<Body>, Response = http::Response<hyper::body::Incoming>, Error = BoxError>
        + Clone,
{
    println!("embedded mock Ocient at {} (user jdoe)", server.uri());
    println!("stack: Retry(RetryUnauthorized) > Timeout(10 s) > TokenRefresh > Client\n");
    let mut all_ok = true;
    for n in 1..=3 {
        all_ok &= report(n, query(service, target).await);
    }

    println!("\nthe server revokes every token it has issued");
    server.mock().revoke_all();
    let before = server.mock().counters();
    all_ok &= report(4, query(service, target).await);
    let during = server.mock().counters();
    support::explain_retry(&before, &during);

    support::print_counters(&server.mock().counters());
    all_ok
}

/// `SELECT 1` against a real SQL node; true when it succeeded.
async fn against_a_node<S>(service: &S, target: &str) -> bool
where
    S: Service<Request<Body>, Response = http::Response<hyper::body::Incoming>, Error = BoxError>
        + Clone,
{
    println!("SELECT 1 against {target}\n");
    report(1, query(service, target).await)
}

async fn query<S>(service: &S, target: &str) -> Result<(StatusCode, Bytes), BoxError>
where
    S: Service<Request<Body>, Response = http::Response<hyper::body::Incoming>, Error = BoxError>
        + Clone,
{
    let request = Request::post(target)
        .header("content-type", "application/json")
        .body(Full::from(r#"{"statement":"SELECT 1"}"#))?;
    let response = service.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Prints one query's outcome; true when it succeeded.
fn report(n: usize, outcome: Result<(StatusCode, Bytes), BoxError>) -> bool {
    match outcome {
        Ok((status, body)) => {
            // A query answer holds rows and a status object, never the token.
            let text = String::from_utf8_lossy(&body);
            let shown: String = text.chars().take(MAX_SHOWN).collect();
            println!("query {n}: HTTP {status}  {}", shown.trim_end());
            status.is_success()
        }
        // The layer's errors never hold the password or a token.
        Err(error) => {
            println!("query {n}: failed: {error}");
            false
        }
    }
}
