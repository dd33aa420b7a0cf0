//! A tiny OAuth 2.0 authorization server (`POST /oauth/token`, the refresh-token grant with
//! rotation) and the resource it guards (`GET /api/hello`), on 127.0.0.1.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use ocient_mock::LoopbackServer;
use tokio::time::Instant;
use tower_token_refresh::Secret;

use super::encoding::{decode_basic_credentials, parse_form, BASE64, FORM};

type Body = Full<Bytes>;

/// What the server has seen; no tokens in here, only counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Refresh tokens issued, the first one included.
    pub refresh_tokens_issued: u64,
    /// Successful refreshes (each rotates the refresh token).
    pub refreshes: u64,
    /// Refreshes refused because the refresh token had already been used.
    pub reuse_refused: u64,
    /// Other refused token requests (unknown token, bad client, malformed).
    pub other_refused: u64,
    /// The most times any one refresh token was presented.
    pub max_presentations: u32,
    /// `/api/hello` answered 200.
    pub api_ok: u64,
    /// `/api/hello` answered 401.
    pub api_unauthorized: u64,
}

/// What `oauth2_refresh` prints of them.
impl fmt::Display for ServerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ok, unauthorized) = (self.api_ok, self.api_unauthorized);
        writeln!(f, "  refreshes                         {}", self.refreshes)?;
        writeln!(
            f,
            "  refresh tokens issued             {}",
            self.refresh_tokens_issued
        )?;
        writeln!(
            f,
            "  most uses of one refresh token    {}",
            self.max_presentations
        )?;
        write!(
            f,
            "  /api/hello answered 200 / 401     {ok} / {unauthorized}"
        )
    }
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

/// The authorization server and the resource. Dropping it stops the server.
pub struct TokenServer {
    server: LoopbackServer,
    state: Arc<Mutex<ServerState>>,
}

impl TokenServer {
    /// Serves on a free port of 127.0.0.1; access tokens live `lifetime`, whole seconds.
    pub async fn start(
        client_id: &str,
        client_secret: &str,
        lifetime: Duration,
    ) -> io::Result<TokenServer> {
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
        let shared = Arc::clone(&state);
        let handler = tower::service_fn(move |request| {
            let state = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(respond(&state, request).await) }
        });
        let server = ocient_mock::serve(handler).await?;
        Ok(TokenServer { server, state })
    }

    pub fn uri(&self, path: &str) -> Uri {
        format!("http://{}{path}", self.server.addr())
            .parse()
            .expect("a loopback address and a path make a URI")
    }

    /// The refresh token an earlier authorization-code flow would have given the client.
    pub fn first_refresh_token(&self) -> Secret {
        let token = lock(&self.state).issue_refresh_token();
        Secret::new(token).expect("minted tokens are visible ASCII")
    }

    pub fn stats(&self) -> ServerStats {
        lock(&self.state).stats
    }
}

fn lock(state: &Mutex<ServerState>) -> MutexGuard<'_, ServerState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
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
            HeaderValue::from_static("Basic realm=\"example\""),
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
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
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
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Full::from(text.to_owned()));
    *response.status_mut() = status;
    response
}
