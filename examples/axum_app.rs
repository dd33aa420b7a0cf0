//! An axum server whose handler runs SQL through one shared, token-refreshing client.
//!
//! ```text
//! cargo run --example axum_app                  # serves on 127.0.0.1:3000 until Ctrl-C,
//!                                               # against an embedded mock Ocient
//! cargo run --example axum_app -- --once        # serves, sends itself one query, prints
//!                                               # the answer and exits (0 on success)
//! OCIENT_PASSWORD=... cargo run --example axum_app -- --url https://sql-node --user jdoe \
//!     --database retail_analytics               # against a real SQL node, over HTTPS
//! ```
//!
//! Other flags: `--listen ADDR` (default `127.0.0.1:3000`; with `--once` and no `--listen`,
//! a free port on 127.0.0.1, so a busy port 3000 cannot fail a CI run).
//!
//! `GET /ready` answers 200 while a usable token exists and 503 with the last error's text
//! otherwise, for an orchestrator's readiness probe; at start the app calls `warm_up`, so a
//! wrong password shows there at once. The layer refreshes when idle: an orchestrator sends
//! no traffic to a pod that is not ready, so after an outage that outlived the token only
//! the layer itself can make `/ready` green again (see [`token_layer`]). `POST /sql` takes one SQL statement as its raw text
//! body and answers with what the SQL node said about it, status and JSON body, from
//! `POST {url}/v1/execute/{database}`:
//!
//! ```text
//! curl -sS http://127.0.0.1:3000/sql -H 'content-type: text/plain' --data-binary 'SELECT 1'
//! ```
//!
//! The client lives in axum's `State`: a `TokenRefresh<Client<..>>`, built once. It is
//! `Clone`, and every clone (one per request here) shares one token, so a burst of
//! requests causes one login, and later one refresh at a time, however many handlers run.
//! Without `--once` the server runs until the process is interrupted (Ctrl-C).

use std::net::SocketAddr;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ocient_mock::MockOcient;
use tokio::net::TcpListener;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::{OcientAuth, TokenRefresh, TokenRefreshLayer, TokenStatus};

mod support;

use support::{NodeFlags, NODE_USAGE};

type Body = Full<Bytes>;
type HttpClient = support::tls::HttpsClient<Body>;

/// The largest answer from the SQL node the handler passes on.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// What every request handler shares.
#[derive(Clone)]
struct App {
    /// The client with the token layer on it; clones share one token.
    api: TokenRefresh<HttpClient>,
    /// `{url}/v1/execute/{database}`.
    execute: Uri,
}

/// The app's own flags; the node's come from `support::NodeFlags`.
struct Serve {
    listen: Option<SocketAddr>,
    once: bool,
}

fn parse_serve(rest: Vec<String>) -> Result<Serve, String> {
    let mut serve = Serve {
        listen: None,
        once: false,
    };
    let mut rest = rest.into_iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--listen" => {
                let value = rest.next().ok_or("--listen needs a value")?;
                serve.listen = Some(value.parse().map_err(|e| format!("--listen: {e}"))?);
            }
            "--once" => serve.once = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(serve)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let parsed = NodeFlags::parse(std::env::args().skip(1))
        .and_then(|(node, rest)| Ok((node, parse_serve(rest)?)));
    let (flags, args) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            eprintln!("usage: axum_app {NODE_USAGE} [--listen ADDR] [--once]");
            std::process::exit(2);
        }
    };
    // Kept alive for as long as the app serves; dropping it stops the mock.
    let node = flags.node(MockOcient::new()).await?;
    let client = node.client::<Body>()?;
    let app = App {
        api: ServiceBuilder::new()
            .layer(token_layer(node.auth.clone()))
            .service(client),
        execute: node.execute_uri().parse()?,
    };
    if let Err(error) = app.api.warm_up().await {
        // Serve anyway: /ready says why, and the layer keeps trying as requests come.
        eprintln!("not ready yet: {error}");
    }
    let router = Router::new()
        .route("/sql", post(sql))
        .route("/ready", get(ready))
        .with_state(app.clone());

    let listen = match (args.listen, args.once) {
        (Some(listen), _) => listen,
        (None, false) => SocketAddr::from(([127, 0, 0, 1], 3000)),
        (None, true) => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "POST http://{addr}/sql runs a statement through {} over {} ({})",
        app.execute,
        node.transport(),
        if node.mock.is_some() {
            "embedded mock Ocient"
        } else {
            "SQL node"
        }
    );
    println!(
        "try: curl -sS http://{addr}/sql -H 'content-type: text/plain' --data-binary 'SELECT 1'"
    );

    if !args.once {
        println!("serving until Ctrl-C");
        axum::serve(listener, router).await?;
        return Ok(());
    }

    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let (status, answer) = ask_myself(addr, "SELECT 1").await?;
    println!("\n--once: POST /sql with 'SELECT 1'");
    println!(
        "HTTP {status}  {}",
        String::from_utf8_lossy(&answer).trim_end()
    );
    server.abort();
    if !status.is_success() {
        std::process::exit(1);
    }
    Ok(())
}

/// The token layer for a service behind a readiness probe.
///
/// `refresh_when_idle(true)`: the layer refreshes with no request, and keeps trying after an
/// outage that outlived the token, until a token is usable again. Without it, `/ready`
/// would stay 503 after such an outage, the orchestrator would send no request, and no
/// request means no new token: a deadlock only a restart breaks.
fn token_layer(auth: OcientAuth) -> TokenRefreshLayer {
    TokenRefreshLayer::new(auth).refresh_when_idle(true)
}

/// `GET /ready`: whether a request sent now would go out with a token at once.
async fn ready(State(app): State<App>) -> (StatusCode, String) {
    readiness(app.api.status())
}

/// 200 while the token is usable; 503 with the reason otherwise. The status holds no
/// secret, and the layer's errors never quote the password or a token.
fn readiness(status: TokenStatus) -> (StatusCode, String) {
    if status.is_usable() {
        return (StatusCode::OK, "ready\n".into());
    }
    let why = match status.last_error {
        Some(error) => error.to_string(),
        None => "no usable token yet".into(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, why + "\n")
}

/// `POST /sql`: the body is the statement; the answer is the SQL node's.
async fn sql(State(app): State<App>, statement: String) -> Response {
    if statement.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "send one SQL statement as the request body\n",
        )
            .into_response();
    }
    let body = serde_json::json!({ "statement": statement }).to_string();
    let request = match Request::post(app.execute.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(body))
    {
        Ok(request) => request,
        Err(error) => return bad_gateway(format!("cannot build the query: {error}")),
    };
    // A clone per request: cheap, and it shares the one token with every other clone.
    let response = match app.api.clone().oneshot(request).await {
        Ok(response) => response,
        // The layer's errors never hold the password or a token.
        Err(error) => {
            return match error.downcast_ref::<tower_token_refresh::Error>() {
                Some(no_token) => bad_gateway(format!("no token for the SQL node: {no_token}")),
                None => bad_gateway(format!("the SQL node did not answer: {error}")),
            }
        }
    };
    let (parts, body) = response.into_parts();
    if parts.status == StatusCode::UNAUTHORIZED {
        // The layer has revoked that token; the next request goes out with a new one.
        // Our caller did nothing wrong, so this is not a 401 for them.
        return bad_gateway("the SQL node revoked our token; try again".into());
    }
    let answer = match Limited::new(body, MAX_ANSWER).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return bad_gateway(format!("reading the SQL node's answer: {error}")),
    };
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (parts.status, [(CONTENT_TYPE, content_type)], answer).into_response()
}

fn bad_gateway(message: String) -> Response {
    (StatusCode::BAD_GATEWAY, message + "\n").into_response()
}

/// `--once`: one request to our own `/sql`, over real HTTP.
async fn ask_myself(addr: SocketAddr, statement: &str) -> Result<(StatusCode, Bytes), BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let request = Request::post(format!("http://{addr}/sql"))
        .header(CONTENT_TYPE, "text/plain")
        .body(Full::from(statement.to_owned()))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
