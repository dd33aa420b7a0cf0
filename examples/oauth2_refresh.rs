//! The protocol seam, proved on a second protocol: the OAuth 2.0 refresh-token grant
//! (RFC 6749 section 6), with refresh-token rotation, as a `TokenEndpoint`.
//!
//! ```text
//! cargo run --example oauth2_refresh
//! ```
//!
//! It starts a tiny OAuth 2.0 authorization server on 127.0.0.1 (below, in this file) that
//! issues 2-second access tokens, rotates the refresh token on every refresh and refuses a
//! refresh token used twice, plus a protected `GET /api/hello` that wants a live bearer
//! token. Then it sends requests through hyper-util's `Client` under
//! `TokenRefreshLayer::new(OAuth2RefreshGrant { .. })` until the server has rotated the
//! refresh token three times (about 3 s; bounded at 15 s), shows that the spent first refresh
//! token is refused, and exits 0. No token or secret is ever printed.
//!
//! # The grant
//!
//! - `POST {token_url}`, `Content-Type: application/x-www-form-urlencoded`, body
//!   `grant_type=refresh_token&refresh_token=..&client_id=..`; the client secret goes in
//!   `Authorization: Basic` (as RFC 6749 section 2.3.1 prefers) or in the body as
//!   `client_secret`.
//! - A good answer is `{"access_token", "token_type": "Bearer", "expires_in"?,
//!   "refresh_token"?}`. Its `refresh_token` replaces the one just used (rotation).
//! - An error answer is RFC 6749 section 5.2's `{"error", "error_description"?}`, mostly
//!   with HTTP 400. It becomes `Error::Rejected` with `vendor_code` 0 and `reason`
//!   `"<error>: <error_description>"`; `invalid_grant` (the refresh token is expired,
//!   revoked or spent) is what `rejects_token` calls a token that is no good.
//! - There is no login: the grant starts from a refresh token obtained earlier (by an
//!   authorization-code flow, say). `initial_grant` hands the layer that refresh token with
//!   a placeholder access token that is already expired, so the first request refreshes.
//!
//! # Keeping the refresh token
//!
//! RFC 6749 section 6 lets a server answer a refresh without a new `refresh_token`; the
//! client then keeps using the old one, which `read_answer` finds in `Answer::current`.
//!
//! # Tests
//!
//! `cargo test --all-features --example oauth2_refresh` runs the tests at the bottom (about
//! 2 s: real 2-second tokens). With `[[example]] name = "oauth2_refresh" test = true` in
//! `Cargo.toml`, a plain `cargo test --all-features` runs them too.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_token_refresh::{
    Answer, Error, Exchange, Grant, Secret, TokenEndpoint, TokenRefreshLayer,
};

type Body = Full<Bytes>;
type HttpClient = Client<HttpConnector, Body>;

const FORM: &str = "application/x-www-form-urlencoded";
/// The longest `reason` an error repeats from the server.
const MAX_REASON: usize = 256;
/// Stands in for the access token the client does not have yet. It is never sent: a
/// grant with a zero lifetime is dead from the start, so the layer refreshes first.
const NO_ACCESS_TOKEN_YET: &str = "no-access-token-yet";

// ---------------------------------------------------------------------------
// The protocol: OAuth 2.0 refresh-token grant as a `TokenEndpoint`
// ---------------------------------------------------------------------------

/// How the client authenticates to the token endpoint (RFC 6749 section 2.3.1).
#[derive(Debug, Clone)]
enum ClientAuth {
    /// `Authorization: Basic base64(urlencode(client_id) ":" urlencode(client_secret))`.
    Basic(Secret),
    /// `client_secret` in the form body, next to `client_id`.
    Body(Secret),
}

/// The OAuth 2.0 refresh-token grant, with refresh-token rotation.
///
/// `Debug` shows the URLs and the client id; `Secret` keeps the client secret and the
/// refresh token out of it.
#[derive(Debug, Clone)]
struct OAuth2RefreshGrant {
    /// The authorization server's token endpoint.
    token_url: Uri,
    /// The resource server: requests to its origin get `Authorization: Bearer`.
    api: Uri,
    /// The client's id at the authorization server.
    client_id: String,
    /// How the client proves it is that client.
    client_auth: ClientAuth,
    /// The refresh token to start from. The server rotates it; the layer's current grant
    /// carries the latest one.
    refresh_token: Secret,
    /// The lifetime to assume when an answer has no `expires_in` (it is only RECOMMENDED).
    default_lifetime: Duration,
}

impl TokenEndpoint for OAuth2RefreshGrant {
    fn origin(&self) -> &Uri {
        &self.api
    }

    fn initial_grant(&self) -> Option<Grant> {
        let placeholder = Secret::new(NO_ACCESS_TOKEN_YET).ok()?;
        Some(Grant::new(placeholder, Duration::ZERO).with_refresh_token(self.refresh_token.clone()))
    }

    /// The refresh-token grant has no login: with nothing to refresh, nothing helps.
    fn login_request(&self) -> Option<Request<Bytes>> {
        None
    }

    fn refresh_request(&self, current: &Grant) -> Request<Bytes> {
        let mut form = vec![("grant_type", "refresh_token")];
        // Every grant this endpoint makes (`initial_grant`, `read_answer`) carries a refresh
        // token; without one the server answers `invalid_request`, which is the truth.
        if let Some(refresh_token) = current.refresh_token() {
            form.push(("refresh_token", refresh_token.expose()));
        }
        form.push(("client_id", &self.client_id));
        let mut request = Request::new(Bytes::new());
        match &self.client_auth {
            ClientAuth::Basic(secret) => {
                let value = basic_credentials(&self.client_id, secret.expose());
                // A `Secret` and a form-encoded id are visible ASCII: always a valid value.
                if let Ok(mut value) = http::HeaderValue::from_str(&value) {
                    value.set_sensitive(true);
                    request.headers_mut().insert(AUTHORIZATION, value);
                }
            }
            ClientAuth::Body(secret) => form.push(("client_secret", secret.expose())),
        }
        *request.body_mut() = Bytes::from(form_body(&form));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.token_url.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, http::HeaderValue::from_static(FORM));
        headers.insert(ACCEPT, http::HeaderValue::from_static("application/json"));
        request
    }

    fn read_answer(&self, answer: Answer<'_>) -> Result<Grant, Error> {
        let exchange = answer.exchange;
        if !answer.status.is_success() {
            return Err(rejected(exchange, answer.status, answer.body));
        }
        // serde's message can quote the body, and the body holds tokens: say where only.
        let parsed: serde_json::Value = serde_json::from_slice(answer.body).map_err(|e| {
            invalid(
                exchange,
                format!("not JSON (line {} column {})", e.line(), e.column()),
            )
        })?;
        let field = |name: &str| parsed.get(name).filter(|v| !v.is_null());

        // RFC 6749 section 7.1: a client must not use a token type it does not understand.
        match field("token_type").and_then(|v| v.as_str()) {
            Some(kind) if kind.eq_ignore_ascii_case("bearer") => {}
            Some(_) => return Err(invalid(exchange, "token_type is not Bearer")),
            None => return Err(invalid(exchange, "token_type is missing")),
        }
        let access_token = secret_field(exchange, "access_token", field("access_token"))?;
        let lifetime = match field("expires_in") {
            None => self.default_lifetime,
            Some(value) => lifetime(exchange, value)?,
        };
        // Rotation: the answer's refresh token replaces the one just used. An answer with
        // none means "keep the old one" (RFC 6749 section 6).
        let refresh_token = match field("refresh_token") {
            Some(value) => secret_field(exchange, "refresh_token", Some(value))?,
            None => match answer.current.and_then(Grant::refresh_token) {
                Some(kept) => kept.clone(),
                None => return Err(invalid(exchange, "no refresh_token in the answer")),
            },
        };
        Ok(Grant::new(access_token, lifetime).with_refresh_token(refresh_token))
    }

    fn rejects_token(&self, error: &Error) -> bool {
        oauth_error(error) == Some("invalid_grant")
    }
}

/// The OAuth error code (`invalid_grant`, ...) of a rejection this endpoint made.
fn oauth_error(error: &Error) -> Option<&str> {
    match error {
        Error::Rejected { reason, .. } => reason.split(':').next(),
        _ => None,
    }
}

/// An RFC 6749 section 5.2 error answer as `Error::Rejected`.
fn rejected(exchange: Exchange, status: StatusCode, body: &[u8]) -> Error {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(printable)
    };
    let reason = match (text("error"), text("error_description")) {
        (Some(code), Some(description)) => format!("{code}: {description}"),
        (Some(code), None) => code,
        (None, _) => "no OAuth error in the answer".to_owned(),
    };
    Error::Rejected {
        exchange,
        status,
        vendor_code: 0,
        sql_state: String::new(),
        reason: reason.chars().take(MAX_REASON).collect(),
    }
}

/// Server text, without control characters, and short.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect()
}

fn invalid(exchange: Exchange, reason: impl Into<String>) -> Error {
    Error::InvalidResponse {
        exchange,
        reason: reason.into(),
    }
}

fn secret_field(
    exchange: Exchange,
    name: &str,
    value: Option<&serde_json::Value>,
) -> Result<Secret, Error> {
    match value {
        Some(serde_json::Value::String(text)) => Secret::new(text.as_str())
            .map_err(|e| invalid(exchange, format!("{name} refused: {e}"))),
        Some(_) => Err(invalid(exchange, format!("{name} is not a string"))),
        None => Err(invalid(exchange, format!("{name} is missing"))),
    }
}

/// `expires_in` in seconds: a positive number (`Grant::new` clamps absurd ones).
fn lifetime(exchange: Exchange, value: &serde_json::Value) -> Result<Duration, Error> {
    let seconds = value
        .as_f64()
        .ok_or_else(|| invalid(exchange, "expires_in is not a number"))?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(invalid(exchange, "expires_in is not positive"));
    }
    let max = tower_token_refresh::MAX_LIFETIME.as_secs_f64();
    Ok(Duration::from_secs_f64(seconds.min(max)))
}

// ---------------------------------------------------------------------------
// Form encoding and HTTP Basic, from the form_urlencoded and base64 crates
// ---------------------------------------------------------------------------

/// One name or value, form-encoded.
pub fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A form body of `pairs`, in order.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One form-encoded name or value, decoded; `None` when it is not one (see [`parse_form`]).
pub fn form_decode(encoded: &str) -> Option<String> {
    if encoded.contains(['&', '=']) {
        return None;
    }
    let pairs = parse_form(encoded.as_bytes())?;
    Some(pairs.into_keys().next().unwrap_or_default())
}

/// The pairs of a form body, strictly: `None` when an escape is broken (`form_urlencoded`
/// would keep it as it is), when a name or value is not visible ASCII or space (RFC 6749
/// appendix A's VSCHAR, which every parameter of the refresh grant is; an escape that does
/// not decode to UTF-8 fails here too), or when a name repeats, which section 3.2 forbids.
pub fn parse_form(body: &[u8]) -> Option<HashMap<String, String>> {
    let text = std::str::from_utf8(body).ok()?;
    let escapes_whole = text.split('%').skip(1).all(|after| {
        after
            .get(..2)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !escapes_whole {
        return None;
    }
    let vschar = |text: &str| text.chars().all(|c| matches!(c, ' '..='~'));
    let mut pairs = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if !vschar(&name) || !vschar(&value) {
            return None;
        }
        if pairs
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return None;
        }
    }
    Some(pairs)
}

/// `Basic base64(urlencode(client_id) ":" urlencode(client_secret))`.
pub fn basic_credentials(client_id: &str, client_secret: &str) -> String {
    let pair = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
    format!("Basic {}", BASE64.encode(pair))
}

/// The client id and secret in what follows `Basic ` in a value [`basic_credentials`] made.
pub fn decode_basic_credentials(encoded: &str) -> Option<(String, String)> {
    let raw = BASE64.decode(encoded).ok()?;
    let pair = String::from_utf8(raw).ok()?;
    let (id, secret) = pair.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

// ---------------------------------------------------------------------------
// A tiny OAuth 2.0 authorization server and resource, on 127.0.0.1
// ---------------------------------------------------------------------------

/// What the server has seen; no tokens in here, only counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ServerStats {
    /// Refresh tokens issued, the first one included.
    refresh_tokens_issued: u64,
    /// Successful refreshes (each rotates the refresh token).
    refreshes: u64,
    /// Refreshes refused because the refresh token had already been used.
    reuse_refused: u64,
    /// Other refused token requests (unknown token, bad client, malformed).
    other_refused: u64,
    /// The most times any one refresh token was presented.
    max_presentations: u32,
    /// `/api/hello` answered 200.
    api_ok: u64,
    /// `/api/hello` answered 401.
    api_unauthorized: u64,
}

struct ServerState {
    client_id: String,
    client_secret: String,
    lifetime: Duration,
    /// Refresh tokens that may still be used, once.
    live_refresh: HashSet<String>,
    /// Refresh tokens that were used; presenting one again is refused.
    spent_refresh: HashSet<String>,
    /// How many times each refresh token was presented.
    presented: HashMap<String, u32>,
    /// Access token -> when it expires.
    access: HashMap<String, Instant>,
    serial: u64,
    stats: ServerStats,
}

impl ServerState {
    /// An opaque token in base64, `=` and often `+` or `/` included, so form encoding
    /// gets exercised.
    fn mint(&mut self, kind: &str) -> String {
        self.serial += 1;
        let mut random = [0_u8; 16];
        for half in random.chunks_mut(8) {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(self.serial);
            half.copy_from_slice(&hasher.finish().to_le_bytes());
        }
        format!("{kind}{}.{}", self.serial, BASE64.encode(&random[..10]))
    }

    fn issue_refresh_token(&mut self) -> String {
        let token = self.mint("rt");
        self.live_refresh.insert(token.clone());
        self.stats.refresh_tokens_issued += 1;
        token
    }

    fn issue_access_token(&mut self) -> String {
        let now = Instant::now();
        self.access.retain(|_, expires| *expires > now);
        let token = self.mint("at");
        self.access.insert(token.clone(), now + self.lifetime);
        token
    }
}

/// The authorization server (`POST /oauth/token`) and the resource (`GET /api/hello`).
/// Dropping it stops the server.
struct TokenServer {
    addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
    accept_loop: AbortHandle,
}

impl TokenServer {
    /// Serves on a free port of 127.0.0.1; access tokens live `lifetime`, whole seconds.
    async fn start(
        client_id: &str,
        client_secret: &str,
        lifetime: Duration,
    ) -> io::Result<TokenServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(ServerState {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            lifetime,
            live_refresh: HashSet::new(),
            spent_refresh: HashSet::new(),
            presented: HashMap::new(),
            access: HashMap::new(),
            serial: 0,
            stats: ServerStats::default(),
        }));
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::clone(&state))).abort_handle();
        Ok(TokenServer {
            addr,
            state,
            accept_loop,
        })
    }

    fn uri(&self, path: &str) -> Uri {
        format!("http://{}{path}", self.addr)
            .parse()
            .expect("a loopback address and a path make a URI")
    }

    /// The refresh token an earlier authorization-code flow would have given the client.
    fn first_refresh_token(&self) -> Secret {
        let token = lock(&self.state).issue_refresh_token();
        Secret::new(token).expect("minted tokens are visible ASCII")
    }

    fn stats(&self) -> ServerStats {
        lock(&self.state).stats
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

fn lock(state: &Mutex<ServerState>) -> MutexGuard<'_, ServerState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<ServerState>>) {
    // Aborting this task drops the set, which aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(stream, Arc::clone(&state)));
                    }
                    // Out of file descriptors, say: do not spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<Mutex<ServerState>>) {
    let service = hyper::service::service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(respond(&state, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn respond(state: &Mutex<ServerState>, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/oauth/token") => {
            let body = match Limited::new(body, 64 * 1024).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return oauth_error_answer(400, "invalid_request", "unreadable body"),
            };
            token_endpoint(&mut lock(state), &parts.headers, &body)
        }
        (&Method::GET, "/api/hello") => hello(&mut lock(state), &parts.headers),
        (_, "/oauth/token" | "/api/hello") => plain(StatusCode::METHOD_NOT_ALLOWED, ""),
        _ => plain(StatusCode::NOT_FOUND, ""),
    }
}

/// RFC 6749 section 6, with rotation: each refresh token works once.
fn token_endpoint(state: &mut ServerState, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let refused = |state: &mut ServerState, status, code, description| {
        state.stats.other_refused += 1;
        oauth_error_answer(status, code, description)
    };
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == FORM);
    if !is_form {
        return refused(state, 400, "invalid_request", "expected a form body");
    }
    let Some(form) = parse_form(body) else {
        return refused(
            state,
            400,
            "invalid_request",
            "malformed or repeated parameters",
        );
    };

    // Client authentication: HTTP Basic, or client_id and client_secret in the body.
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let client = match basic {
        Some(encoded) => decode_basic_credentials(encoded),
        None => form
            .get("client_id")
            .cloned()
            .zip(form.get("client_secret").cloned()),
    };
    let authenticated = client
        .as_ref()
        .is_some_and(|(id, secret)| *id == state.client_id && *secret == state.client_secret);
    // A `client_id` in the body must name the client that authenticated.
    let consistent = match (form.get("client_id"), &client) {
        (Some(body_id), Some((id, _))) => body_id == id,
        _ => true,
    };
    if !authenticated || !consistent {
        let mut answer = refused(state, 401, "invalid_client", "client authentication failed");
        answer.headers_mut().insert(
            WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=\"example\""),
        );
        return answer;
    }

    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return refused(
            state,
            400,
            "unsupported_grant_type",
            "only refresh_token here",
        );
    }
    let Some(refresh_token) = form.get("refresh_token") else {
        return refused(state, 400, "invalid_request", "refresh_token is missing");
    };
    let presented = state.presented.entry(refresh_token.clone()).or_insert(0);
    *presented += 1;
    state.stats.max_presentations = state.stats.max_presentations.max(*presented);

    if !state.live_refresh.remove(refresh_token) {
        if state.spent_refresh.contains(refresh_token) {
            state.stats.reuse_refused += 1;
            return oauth_error_answer(400, "invalid_grant", "refresh token already used");
        }
        return refused(state, 400, "invalid_grant", "unknown refresh token");
    }
    state.spent_refresh.insert(refresh_token.clone());
    state.stats.refreshes += 1;
    let access_token = state.issue_access_token();
    let next_refresh_token = state.issue_refresh_token();
    let answer = serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.lifetime.as_secs().max(1),
        "refresh_token": next_refresh_token,
    });
    let mut response = json_answer(StatusCode::OK, answer);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

/// The protected resource: a live bearer token, or 401 (RFC 6750 section 3).
fn hello(state: &mut ServerState, headers: &HeaderMap) -> Response<Body> {
    let now = Instant::now();
    let live = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| state.access.get(token))
        .is_some_and(|expires| *expires > now);
    if live {
        state.stats.api_ok += 1;
        plain(StatusCode::OK, &format!("hello, {}", state.client_id))
    } else {
        state.stats.api_unauthorized += 1;
        let mut answer = plain(StatusCode::UNAUTHORIZED, "");
        answer.headers_mut().insert(
            WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        answer
    }
}

fn oauth_error_answer(status: u16, code: &str, description: &str) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    json_answer(
        status,
        serde_json::json!({ "error": code, "error_description": description }),
    )
}

fn json_answer(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Full::from(text.to_owned()));
    *response.status_mut() = status;
    response
}

// ---------------------------------------------------------------------------
// The client side, and main
// ---------------------------------------------------------------------------

const CLIENT_ID: &str = "example-client";
/// The secret of this example's made-up client, with the characters that HTTP Basic and
/// form encoding trip over (`:`, `+`, `/`, `&`, `=`, `%`). Never printed all the same.
const CLIENT_SECRET: &str = "s3cr3t:+/&=%~";
/// How long the server's access tokens live: short, to show several rotations quickly.
const ACCESS_LIFETIME: Duration = Duration::from_secs(2);
/// How many rotations `main` waits to see, and for how long at most.
const ROTATIONS: u64 = 3;
const DEADLINE: Duration = Duration::from_secs(15);

fn grant_for(
    server: &TokenServer,
    client_auth: ClientAuth,
    refresh_token: Secret,
) -> OAuth2RefreshGrant {
    OAuth2RefreshGrant {
        token_url: server.uri("/oauth/token"),
        api: server.uri("/"),
        client_id: CLIENT_ID.to_owned(),
        client_auth,
        refresh_token,
        default_lifetime: Duration::from_secs(60),
    }
}

fn client_secret() -> Secret {
    Secret::new(CLIENT_SECRET).expect("visible ASCII")
}

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http::<Body>()
}

fn hello_request(server: &TokenServer) -> Request<Body> {
    Request::get(server.uri("/api/hello"))
        .body(Body::default())
        .expect("a valid request")
}

/// Sends `GET /api/hello` through `service`: the status and the text of the answer.
async fn say_hello<S>(service: &S, server: &TokenServer) -> Result<(StatusCode, String), BoxError>
where
    S: Service<Request<Body>, Response = Response<Incoming>, Error = BoxError> + Clone,
{
    let response = service.clone().oneshot(hello_request(server)).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let server = TokenServer::start(CLIENT_ID, CLIENT_SECRET, ACCESS_LIFETIME).await?;
    let first_refresh_token = server.first_refresh_token();
    println!(
        "OAuth 2.0 token endpoint {} (access tokens live {:?}, refresh tokens rotate)",
        server.uri("/oauth/token"),
        ACCESS_LIFETIME
    );
    println!("protected resource      {}", server.uri("/api/hello"));
    println!("the client starts from a refresh token obtained earlier, and no access token\n");

    let grant = grant_for(
        &server,
        ClientAuth::Basic(client_secret()),
        first_refresh_token.clone(),
    );
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(grant))
        .service(http_client());

    let mut ok = true;
    let deadline = Instant::now() + DEADLINE;
    let mut pace = tokio::time::interval(Duration::from_millis(200));
    let mut n = 0;
    while server.stats().refreshes < ROTATIONS {
        if Instant::now() > deadline {
            println!("no {ROTATIONS} rotations within {DEADLINE:?}");
            ok = false;
            break;
        }
        pace.tick().await;
        n += 1;
        let outcome = say_hello(&service, &server).await;
        let stats = server.stats();
        match outcome {
            Ok((status, text)) => {
                ok &= status == StatusCode::OK;
                println!(
                    "request {n:>2}: HTTP {status}  {text:<22} refreshes so far {}",
                    stats.refreshes
                );
            }
            Err(error) => {
                ok = false;
                println!("request {n:>2}: failed: {error}");
            }
        }
    }

    let stats = server.stats();
    println!("\nserver saw");
    println!("  refreshes                         {}", stats.refreshes);
    println!(
        "  refresh tokens issued             {}",
        stats.refresh_tokens_issued
    );
    println!(
        "  most uses of one refresh token    {}",
        stats.max_presentations
    );
    println!(
        "  /api/hello answered 200 / 401     {} / {}",
        stats.api_ok, stats.api_unauthorized
    );
    ok &= stats.max_presentations == 1 && stats.api_unauthorized == 0;

    println!("\na second client starts from the first refresh token, spent long ago");
    println!("(it sends its client secret in the form body instead of HTTP Basic)");
    let stale = grant_for(
        &server,
        ClientAuth::Body(client_secret()),
        first_refresh_token,
    );
    let stale_service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(stale.clone()))
        .service(http_client());
    match say_hello(&stale_service, &server).await {
        Ok((status, _)) => {
            ok = false;
            println!("  unexpectedly answered HTTP {status}");
        }
        Err(error) => match error.downcast_ref::<Error>() {
            Some(error) => {
                println!("  {error}");
                println!(
                    "  the grant calls that refresh token no good: {}",
                    stale.rejects_token(error)
                );
                ok &= oauth_error(error) == Some("invalid_grant");
            }
            None => {
                ok = false;
                println!("  failed in transport: {error}");
            }
        },
    }
    println!(
        "  server refused reused refresh tokens {} time(s)",
        server.stats().reuse_refused
    );

    match say_hello(&service, &server).await {
        Ok((status, text)) => {
            ok &= status == StatusCode::OK;
            println!("\nthe first client carries on: HTTP {status}  {text}");
        }
        Err(error) => {
            ok = false;
            println!("\nthe first client failed: {error}");
        }
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_with<'a>(status: StatusCode, headers: &'a HeaderMap, body: &'a str) -> Answer<'a> {
        Answer::new(Exchange::Refresh, status, headers, body.as_bytes())
    }

    fn offline_grant(client_auth: ClientAuth) -> OAuth2RefreshGrant {
        OAuth2RefreshGrant {
            token_url: "http://127.0.0.1:9/oauth/token".parse().unwrap(),
            api: "http://127.0.0.1:9/".parse().unwrap(),
            client_id: "s6BhdRkqt3".to_owned(),
            client_auth,
            refresh_token: Secret::new("tGzv3JOkF0XG5Qx2TlKWIA").unwrap(),
            default_lifetime: Duration::from_secs(60),
        }
    }

    #[test]
    fn an_answer_without_a_refresh_token_keeps_the_old_one() {
        let grant = offline_grant(ClientAuth::Body(Secret::new("x").unwrap()));
        let current = Grant::new(Secret::new("old-access").unwrap(), Duration::ZERO)
            .with_refresh_token(Secret::new("kept-refresh").unwrap());
        let headers = HeaderMap::new();
        let body = r#"{"access_token":"new-access","token_type":"Bearer","expires_in":60}"#;
        let answer = answer_with(StatusCode::OK, &headers, body).replacing(&current);
        let refreshed = grant.read_answer(answer).unwrap();
        assert_eq!(refreshed.access_token().expose(), "new-access");
        assert_eq!(refreshed.refresh_token().unwrap().expose(), "kept-refresh");
    }

    #[test]
    fn base64_matches_rfc_4648_and_round_trips() {
        // The engine HTTP Basic goes through: RFC 4648's alphabet, padded, strict on decoding.
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(BASE64.encode(plain), encoded);
            assert_eq!(BASE64.decode(encoded).unwrap(), plain.as_bytes());
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Z!==", "Zm9v=Zm9"] {
            assert!(BASE64.decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn form_encoding_round_trips() {
        let value = "a+b/c= d&e%f~";
        let encoded = form_encode(value);
        assert_eq!(encoded, "a%2Bb%2Fc%3D+d%26e%25f%7E");
        assert_eq!(form_decode(&encoded).unwrap(), value);
        assert!(
            parse_form(b"a=1&a=2").is_none(),
            "repeated names are refused"
        );
        for bad in ["%", "%4", "%+F", "%zz", "%FF"] {
            assert!(form_decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn refresh_request_is_rfc_6749_section_6() {
        // RFC 6749 section 2.3.1's example client and section 6's example refresh token.
        let grant = offline_grant(ClientAuth::Basic(Secret::new("gX1fBat3bV").unwrap()));
        let current = grant.initial_grant().unwrap();
        let request = grant.refresh_request(&current);
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), &grant.token_url);
        assert_eq!(request.headers()[CONTENT_TYPE], FORM);
        assert_eq!(
            request.headers()[AUTHORIZATION],
            "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"
        );
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
        assert_eq!(
            request.body().as_ref(),
            b"grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA&client_id=s6BhdRkqt3"
        );

        let grant = offline_grant(ClientAuth::Body(Secret::new("gX1fBat3bV").unwrap()));
        let request = grant.refresh_request(&current);
        assert!(request.headers().get(AUTHORIZATION).is_none());
        let form = parse_form(request.body()).unwrap();
        assert_eq!(form["client_secret"], "gX1fBat3bV");
        assert!(
            !format!("{grant:?}").contains("gX1fBat3bV"),
            "Debug hides the secret"
        );
    }

    #[test]
    fn the_initial_grant_refreshes_before_anything_is_sent() {
        let grant = offline_grant(ClientAuth::Body(Secret::new("x").unwrap()));
        let initial = grant.initial_grant().unwrap();
        assert_eq!(initial.lifetime(), Duration::ZERO);
        assert_eq!(initial.refresh_token(), Some(&grant.refresh_token));
        assert!(grant.login_request().is_none());
    }

    #[test]
    fn answers_rotate_the_refresh_token() {
        let grant = offline_grant(ClientAuth::Body(Secret::new("x").unwrap()));
        let headers = HeaderMap::new();
        let body = r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"bearer",
                       "expires_in":3600,"refresh_token":"new-rt"}"#;
        let next = grant
            .read_answer(answer_with(StatusCode::OK, &headers, body))
            .unwrap();
        assert_eq!(next.access_token().expose(), "2YotnFZFEjr1zCsicMWpAA");
        assert_eq!(next.lifetime(), Duration::from_secs(3600));
        assert_eq!(next.refresh_token().map(Secret::expose), Some("new-rt"));

        let no_expiry = r#"{"access_token":"a","token_type":"Bearer","refresh_token":"r"}"#;
        let next = grant
            .read_answer(answer_with(StatusCode::OK, &headers, no_expiry))
            .unwrap();
        assert_eq!(next.lifetime(), grant.default_lifetime);

        for (body, why) in [
            (
                r#"{"access_token":"a","token_type":"mac","refresh_token":"r"}"#,
                "not Bearer",
            ),
            (
                r#"{"access_token":"a","refresh_token":"r"}"#,
                "token_type is missing",
            ),
            (
                r#"{"token_type":"Bearer","refresh_token":"r"}"#,
                "access_token is missing",
            ),
            (
                r#"{"access_token":"a","token_type":"Bearer","expires_in":0,"refresh_token":"r"}"#,
                "not positive",
            ),
            // Without the grant being replaced there is no refresh token to keep.
            (
                r#"{"access_token":"a","token_type":"Bearer","expires_in":60}"#,
                "no refresh_token",
            ),
            ("not json at all", "not JSON"),
        ] {
            match grant.read_answer(answer_with(StatusCode::OK, &headers, body)) {
                Err(Error::InvalidResponse { reason, .. }) => {
                    assert!(reason.contains(why), "{body}: {reason}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_answers_become_rejections() {
        let grant = offline_grant(ClientAuth::Body(Secret::new("x").unwrap()));
        let headers = HeaderMap::new();
        let body = r#"{"error":"invalid_grant","error_description":"refresh token already used"}"#;
        let error = grant
            .read_answer(answer_with(StatusCode::BAD_REQUEST, &headers, body))
            .unwrap_err();
        match &error {
            Error::Rejected {
                exchange,
                status,
                vendor_code,
                reason,
                ..
            } => {
                assert_eq!(*exchange, Exchange::Refresh);
                assert_eq!(*status, StatusCode::BAD_REQUEST);
                assert_eq!(*vendor_code, 0);
                assert_eq!(reason, "invalid_grant: refresh token already used");
            }
            other => panic!("{other:?}"),
        }
        assert!(grant.rejects_token(&error));

        let body = r#"{"error":"invalid_client"}"#;
        let error = grant
            .read_answer(answer_with(StatusCode::UNAUTHORIZED, &headers, body))
            .unwrap_err();
        assert_eq!(oauth_error(&error), Some("invalid_client"));
        assert!(
            !grant.rejects_token(&error),
            "the refresh token may be fine"
        );

        let error = grant
            .read_answer(answer_with(StatusCode::BAD_GATEWAY, &headers, "<html>"))
            .unwrap_err();
        assert!(!grant.rejects_token(&error));
    }

    /// Over real HTTP: several token lifetimes, each refresh token used once, a spent one
    /// refused, and no request ever fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_across_several_lifetimes_and_reuse_refused() {
        let server = TokenServer::start(CLIENT_ID, CLIENT_SECRET, ACCESS_LIFETIME)
            .await
            .unwrap();
        let first = server.first_refresh_token();
        let grant = grant_for(&server, ClientAuth::Basic(client_secret()), first.clone());
        let service = ServiceBuilder::new()
            .layer(TokenRefreshLayer::new(grant))
            .service(http_client());

        // Concurrent callers, so refreshes race with requests: a second refresh with the
        // same refresh token would show up as a reuse.
        const WANTED: u64 = 3;
        let server = Arc::new(server);
        let deadline = Instant::now() + DEADLINE;
        let mut callers = JoinSet::new();
        for _ in 0..4 {
            let (service, server) = (service.clone(), Arc::clone(&server));
            callers.spawn(async move {
                let mut pace = tokio::time::interval(Duration::from_millis(50));
                let mut sent = 0_u32;
                while server.stats().refreshes < WANTED && Instant::now() < deadline {
                    pace.tick().await;
                    let (status, _) = say_hello(&service, &server).await.expect("no error");
                    assert_eq!(status, StatusCode::OK);
                    sent += 1;
                }
                sent
            });
        }
        let mut sent = 0;
        while let Some(caller) = callers.join_next().await {
            sent += caller.unwrap();
        }
        let stats = server.stats();
        assert!(
            stats.refreshes >= WANTED,
            "only {stats:?} within {DEADLINE:?}"
        );
        assert_eq!(stats.max_presentations, 1, "a refresh token was used twice");
        assert_eq!(stats.reuse_refused + stats.other_refused, 0);
        assert_eq!(stats.refresh_tokens_issued, stats.refreshes + 1);
        assert_eq!(stats.api_unauthorized, 0);
        assert_eq!(stats.api_ok, u64::from(sent));

        // The spent first refresh token, straight to the token endpoint: refused.
        let form = form_body(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first.expose()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]);
        let request = Request::post(server.uri("/oauth/token"))
            .header(CONTENT_TYPE, FORM)
            .body(Full::from(form))
            .unwrap();
        let response = http_client().request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["error"], "invalid_grant");
        assert_eq!(server.stats().reuse_refused, 1);

        // And through the layer: the caller gets `Error::Rejected`, promptly.
        let stale = grant_for(&server, ClientAuth::Body(client_secret()), first);
        let stale_service = ServiceBuilder::new()
            .layer(TokenRefreshLayer::new(stale.clone()))
            .service(http_client());
        let error = say_hello(&stale_service, &server).await.unwrap_err();
        let error = error.downcast_ref::<Error>().expect("a token error");
        assert_eq!(oauth_error(error), Some("invalid_grant"), "{error}");
        assert!(stale.rejects_token(error));
        assert_eq!(server.stats().reuse_refused, 2);

        // The first client is unaffected.
        let (status, text) = say_hello(&service, &server).await.unwrap();
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, "hello, example-client")
        );
    }
}
