//! An axum app whose handler queries Ocient as the signed-in user, with that user's own
//! token: `PerIdentityLayer` keeps a token per user, so Ocient's access rules and audit log
//! apply to each person rather than to one service account.
//!
//! ```text
//! cargo run --example axum_users   # serves on a free port of 127.0.0.1, against an
//!                                  # embedded mock Ocient with users alice and bob; asks
//!                                  # as alice, bob, alice; prints the answers; exits 0
//! ```
//!
//! Two pieces do it. A middleware puts the signed-in `User` in the request's extensions.
//! The handler puts that same `User` in the extensions of its request to Ocient, and the
//! one shared client (`PerIdentity`, in axum's `State`) sends it with that user's token:
//! one login per user, however many of their requests run at once, and each token
//! refreshed ahead of its expiry as `TokenRefreshLayer` refreshes its one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ocient_mock::{MockOcient, IDENTITY_HEADER};
use tokio::net::TcpListener;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::{OcientAuth, PerIdentity, PerIdentityLayer};

mod support;

type Body = Full<Bytes>;
type HttpClient = support::tls::HttpsClient<Body>;

/// The largest answer from Ocient the handler passes on.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Who is signed in: the key of their token. An `Arc<str>` clones without allocating.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct User(Arc<str>);

/// What every request handler shares.
#[derive(Clone)]
struct App {
    /// The client with a token per user on it; clones share the tokens.
    ocient: PerIdentity<HttpClient, User>,
    /// `{node}/v1/execute/{database}`.
    execute: Uri,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mock = MockOcient::new()
        .user("alice", "alice-password")
        .user("bob", "bob-password")
        .serve()
        .await?;
    // For a real node, `https://sql-node`: the client below is hyper-rustls's, verifying the
    // node's certificate against the system's roots (`support::tls`). The layer sends no
    // password or token over plain HTTP, except to loopback, where this mock listens.
    let node = mock.uri();
    let layer = PerIdentityLayer::new(move |user: &User| {
        // Each user's own credentials, asked for when the user is first seen. A stand-in
        // for a vault: better, the user's own identity-provider token, with
        // `OcientAuth::sso_token_from`, and no password at all.
        let password = format!("{}-password", user.0);
        OcientAuth::new(node.clone())
            .database("retail_analytics")
            .credentials(&*user.0, password)
    });
    let app = App {
        ocient: ServiceBuilder::new()
            .layer(layer)
            .service(support::tls::https_client(&[])?),
        execute: format!("{}v1/execute/retail_analytics", mock.uri()).parse()?,
    };
    let router = Router::new()
        .route("/sql", post(sql))
        .route_layer(middleware::from_fn(signed_in))
        .with_state(app.clone());

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    println!(
        "POST http://{addr}/sql as x-user, through to {}",
        app.execute
    );

    for user in ["alice", "bob", "alice"] {
        let (status, answer) = ask_as(addr, user, "SELECT 1").await?;
        let answer = String::from_utf8_lossy(&answer);
        println!("  as {user:<5}  HTTP {status}  {}", answer.trim_end());
        assert_eq!(status, StatusCode::OK, "{user}: {answer}");
    }
    server.abort();

    let counters = mock.mock().counters();
    let identities = app.ocient.status();
    println!("\nthe mock Ocient saw");
    println!("  logins                               {}", counters.logins);
    println!(
        "  queries with their own user's token  {}",
        counters.queries_ok
    );
    let wrong = counters.queries_wrong_identity;
    println!("  queries with another user's token    {wrong}");
    let (held, usable) = (identities.held, identities.usable);
    println!("the layer holds {held} users, {usable} with a usable token");
    assert_eq!(counters.logins, 2, "one login per user");
    assert_eq!(counters.queries_ok, 3);
    assert_eq!(counters.queries_wrong_identity, 0, "never another's token");
    Ok(())
}

/// The middleware: whose request this is, from the `x-user` header, put in the request's
/// extensions for the handler. A stand-in for your session: read the user from a signed
/// session cookie or a verified bearer token, never from a header any caller can set.
async fn signed_in(mut request: Request, next: Next) -> Response {
    let header = request.headers().get("x-user").map(HeaderValue::to_str);
    let Some(Ok(name)) = header.filter(|name| !matches!(name, Ok(""))) else {
        return (StatusCode::UNAUTHORIZED, "sign in first\n").into_response();
    };
    let user = User(name.into());
    request.extensions_mut().insert(user);
    next.run(request).await
}

/// `POST /sql`: runs the body's statement as the signed-in user; answers what Ocient said.
async fn sql(
    State(app): State<App>,
    Extension(user): Extension<User>,
    statement: String,
) -> Response {
    let body = serde_json::json!({ "statement": statement }).to_string();
    let mut request = http::Request::post(app.execute.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(body))
        .expect("a valid request");
    // The mock's own header, so that it checks the token is this user's. A real node knows
    // whose a token is without being told.
    let claim = HeaderValue::from_str(&user.0).expect("a header value came in");
    request.headers_mut().insert(IDENTITY_HEADER, claim);
    // Whose token to send: the layer reads it here.
    request.extensions_mut().insert(user);
    // `app` is this request's clone of the state: its client shares every user's token.
    let response = match app.ocient.oneshot(request).await {
        Ok(response) => response,
        // The layer's errors never hold a password or a token.
        Err(error) => return bad_gateway(format!("Ocient did not answer: {error}")),
    };
    let (parts, body) = response.into_parts();
    match Limited::new(body, MAX_ANSWER).collect().await {
        Ok(answer) => (parts.status, answer.to_bytes()).into_response(),
        Err(error) => bad_gateway(format!("reading Ocient's answer: {error}")),
    }
}

fn bad_gateway(message: String) -> Response {
    (StatusCode::BAD_GATEWAY, message + "\n").into_response()
}

/// One request to our own `/sql` as `user`, over real HTTP.
async fn ask_as(
    addr: SocketAddr,
    user: &str,
    statement: &str,
) -> Result<(StatusCode, Bytes), BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let request = http::Request::post(format!("http://{addr}/sql"))
        .header("x-user", user)
        .body(Full::from(statement.to_owned()))?;
    let response = client.request(request).await?;
    let status = response.status();
    let answer = response.into_body().collect().await?.to_bytes();
    Ok((status, answer))
}
