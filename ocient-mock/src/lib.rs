//! An Ocient-compatible HTTP Query API server for tests and demos.
//!
//! [`MockOcient`] answers `POST /v1/login`, `POST /v1/token_refresh` and
//! `GET`/`POST /v1/execute/{database}` the way the Ocient HTTP Query API does,
//! with knobs for token lifetimes, latency and injected [`Fault`]s. Use it
//! in-process as a [`tower_service::Service`], or over loopback HTTP with
//! [`MockOcient::serve`]; both run the same handler, so answers and
//! [`Counters`] are identical either way.
//!
//! All time is read from [`tokio::time::Instant`], so a test on a paused
//! clock (`tokio::time::pause` / `advance`) drives token expiry and latency.
//!
//! ```rust
//! use std::time::Duration;
//! use ocient_mock::{Fault, MockOcient};
//!
//! fn main() -> std::io::Result<()> {
//!     let runtime = tokio::runtime::Builder::new_current_thread()
//!         .enable_all()
//!         .build()?;
//!     runtime.block_on(async {
//!         let server = MockOcient::new()
//!             .token_lifetime(Duration::from_secs(5))
//!             .serve()
//!             .await?;
//!         println!("Ocient mock listening on {}", server.uri());
//!
//!         // The next login or token refresh is answered with a 503.
//!         server
//!             .mock()
//!             .fail_token_requests(Fault::Status(http::StatusCode::SERVICE_UNAVAILABLE), 1);
//!
//!         let counters = server.mock().counters();
//!         println!("{} token requests so far", counters.token_requests());
//!         server.shutdown();
//!         Ok(())
//!     })
//! }
//! ```
//!
//! # Failure answers
//!
//! | situation | HTTP | `vendor_code` | `sql_state` |
//! |---|---|---|---|
//! | wrong username or password | 401 | -304 | `08004` |
//! | no `Authorization` header | 401 | -1204 | `08003` |
//! | unknown, malformed or revoked token | 401 | -1205 | `08004` |
//! | expired token | 401 | -1208 | `08004` |
//! | refresh past the refresh lifetime | 401 | -733 | `42502` |
//! | `Content-Type` is not `application/json` | 415 | -1 | `22000` |
//! | malformed JSON or unreadable body | 400 | -1 | `22000` |
//! | body over 64 KiB | 413 | -1 | `22000` |
//! | wrong method on a known path | 405 | -1 | `42000` |
//! | unknown path | 404 | -1 | `42000` |
//!
//! With [`MockOcient::errors_in_band`] the 401 answers become HTTP 200
//! carrying the same status object; protocol errors keep their HTTP status.
//! A token refresh checks, in this order: the token is known (-1205), its
//! refresh lifetime (-733), then its expiry (-1208, unless
//! [`MockOcient::refresh_expired_tokens`]).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const BODY_LIMIT: usize = 64 * 1024;
const DEFAULT_DATABASE: &str = "system";
/// Below this many stored tokens, dead ones are not worth a sweep.
const PRUNE_FLOOR: usize = 1024;
/// Keeps a persistent accept error (e.g. out of file descriptors) from spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// An in-memory Ocient HTTP Query API.
///
/// Cheap to clone: clones share users, tokens, knobs and counters, so a
/// clone kept by a test observes a server started from another clone.
#[derive(Clone)]
pub struct MockOcient {
    shared: Arc<Mutex<State>>,
}

/// A failure injected into the next login or token refresh requests with
/// [`MockOcient::fail_token_requests`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Fault {
    /// That HTTP status with a status object: `vendor_code` -1,
    /// `sql_state` `58000`, reason `injected failure`.
    Status(StatusCode),
    /// A status object with this vendor code, e.g. HTTP 200 with -1208 or
    /// HTTP 401 with -733. Known codes get their usual reason text.
    VendorCode {
        /// HTTP status of the answer.
        http: StatusCode,
        /// The status object's `vendor_code`.
        vendor_code: i64,
        /// The status object's `sql_state`.
        sql_state: &'static str,
    },
    /// This exact answer: malformed JSON, hostile tokens, huge bodies.
    Body {
        /// HTTP status of the answer.
        status: StatusCode,
        /// The `Content-Type` header; omitted if it is not a valid header value.
        content_type: &'static str,
        /// The raw body.
        body: Bytes,
    },
    /// Never answer: the response future stays pending and, over HTTP, the
    /// connection stalls.
    Hang,
    /// HTTP 200 headers with a `Content-Length`, then the body fails part-way;
    /// over HTTP the client sees an incomplete body or a connection error.
    CutOff,
}

/// A snapshot of what the mock has been asked, from [`MockOcient::counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Login requests received, good or bad.
    pub logins: u64,
    /// Token refresh requests received, good or bad.
    pub refreshes: u64,
    /// Login and refresh requests answered with a failure, injected faults included.
    pub failed_token_requests: u64,
    /// Execute requests with a valid token.
    pub queries_ok: u64,
    /// Execute requests with an expired, revoked or unknown token.
    pub queries_bad_token: u64,
    /// Execute requests without an `Authorization` header.
    pub queries_no_token: u64,
}

impl Counters {
    /// Logins plus refreshes.
    pub fn token_requests(&self) -> u64 {
        self.logins.saturating_add(self.refreshes)
    }
}

/// A [`MockOcient`] listening on a loopback port, from [`MockOcient::serve`].
///
/// Dropping it (or calling [`shutdown`](MockServer::shutdown)) stops the
/// accept loop and closes every open connection.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    mock: MockOcient,
    accept_loop: AbortHandle,
}

/// The mock's response body: bytes that can also fail part-way, for
/// [`Fault::CutOff`].
pub struct MockBody {
    kind: BodyKind,
}

/// The future returned by [`MockOcient`]'s `Service::call`.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<MockBody>, Infallible>> + Send>>,
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Knobs {
    token_lifetime: Duration,
    refresh_lifetime: Duration,
    latency: Duration,
    errors_in_band: bool,
    refresh_expired_tokens: bool,
    old_token_survives_refresh: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(3600),
            refresh_lifetime: Duration::from_secs(24 * 3600),
            latency: Duration::ZERO,
            errors_in_band: false,
            refresh_expired_tokens: false,
            old_token_survives_refresh: true,
        }
    }
}

/// What a token grants. Deadlines are `None` when the lifetime is too long
/// to represent, which means "never".
struct Session {
    username: String,
    database: String,
    expires_at: Option<Instant>,
    refresh_until: Option<Instant>,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        passed(self.expires_at, now)
    }

    /// Nothing can be done with it any more but log in again.
    fn dead(&self, now: Instant) -> bool {
        self.expired(now) && passed(self.refresh_until, now)
    }
}

struct State {
    knobs: Knobs,
    users: HashMap<String, String>,
    /// Keyed by the token itself.
    sessions: HashMap<String, Session>,
    generation: u64,
    prune_at: usize,
    /// A fault and how many more requests it applies to; counts are kept
    /// rather than copies so a huge `times` costs nothing.
    faults: VecDeque<(Fault, usize)>,
    counters: Counters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenRoute {
    Login,
    Refresh,
}

impl State {
    fn new() -> Self {
        Self {
            knobs: Knobs::default(),
            users: HashMap::from([("jdoe".to_owned(), "secret".to_owned())]),
            sessions: HashMap::new(),
            generation: 0,
            prune_at: PRUNE_FLOOR,
            faults: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Counts the request and takes the fault it is to get, if any.
    fn begin_token_request(&mut self, endpoint: TokenRoute) -> Option<Fault> {
        match endpoint {
            TokenRoute::Login => self.counters.logins += 1,
            TokenRoute::Refresh => self.counters.refreshes += 1,
        }
        let fault = self.next_fault()?;
        self.counters.failed_token_requests += 1;
        Some(fault)
    }

    fn next_fault(&mut self) -> Option<Fault> {
        let (fault, remaining) = self.faults.front_mut()?;
        *remaining -= 1;
        if *remaining > 0 {
            return Some(fault.clone());
        }
        self.faults.pop_front().map(|(fault, _)| fault)
    }

    fn login(&mut self, creds: LoginRequest, now: Instant) -> Result<Issued, ApiStatus> {
        if self.users.get(&creds.username) != Some(&creds.password) {
            return Err(ApiStatus::BAD_CREDENTIALS);
        }
        let refresh_until = now.checked_add(self.knobs.refresh_lifetime);
        let database = creds
            .database
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        Ok(self.issue(creds.username, database, refresh_until, now))
    }

    /// The refresh deadline is checked before expiry: past it, no setting
    /// can make the token refreshable, so it is the more useful answer.
    fn refresh(
        &mut self,
        token: &str,
        database: Option<String>,
        now: Instant,
    ) -> Result<Issued, ApiStatus> {
        let old = self.sessions.get(token).ok_or(ApiStatus::TOKEN_INVALID)?;
        if passed(old.refresh_until, now) {
            return Err(ApiStatus::REFRESH_EXPIRED);
        }
        if old.expired(now) && !self.knobs.refresh_expired_tokens {
            return Err(ApiStatus::TOKEN_EXPIRED);
        }
        let username = old.username.clone();
        let database = database.unwrap_or_else(|| old.database.clone());
        let refresh_until = old.refresh_until;
        if !self.knobs.old_token_survives_refresh {
            self.sessions.remove(token);
        }
        Ok(self.issue(username, database, refresh_until, now))
    }

    fn check(&self, token: &str, now: Instant) -> Result<(), ApiStatus> {
        match self.sessions.get(token) {
            None => Err(ApiStatus::TOKEN_INVALID),
            Some(session) if session.expired(now) => Err(ApiStatus::TOKEN_EXPIRED),
            Some(_) => Ok(()),
        }
    }

    fn issue(
        &mut self,
        username: String,
        database: String,
        refresh_until: Option<Instant>,
        now: Instant,
    ) -> Issued {
        self.prune(now);
        self.generation += 1;
        let access_token = format!(
            "mock.{}.{:016x}",
            self.generation,
            random_u64(self.generation)
        );
        let lifetime = self.knobs.token_lifetime;
        let session = Session {
            username: username.clone(),
            database: database.clone(),
            expires_at: now.checked_add(lifetime),
            refresh_until,
        };
        self.sessions.insert(access_token.clone(), session);
        Issued {
            access_token,
            username,
            database,
            expires_in: expires_in(lifetime),
            status: ApiStatus::AUTHENTICATED,
        }
    }

    /// Forgets tokens that can only ever be refused, so a long demo does not
    /// grow without bound; they then answer -1205 instead of -1208/-733.
    /// The threshold doubles so sweeping stays amortised O(1) per token.
    fn prune(&mut self, now: Instant) {
        if self.sessions.len() < self.prune_at {
            return;
        }
        self.sessions.retain(|_, session| !session.dead(now));
        self.prune_at = (self.sessions.len() * 2).max(PRUNE_FLOOR);
    }
}

fn passed(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|deadline| now >= deadline)
}

/// JSON carries whole seconds: rounding down could announce 0, which
/// clients read as "already expired", so round up and never go below 1.
fn expires_in(lifetime: Duration) -> u64 {
    let secs = lifetime
        .as_secs()
        .saturating_add(u64::from(lifetime.subsec_nanos() > 0));
    secs.clamp(1, i64::MAX as u64)
}

fn random_u64(salt: u64) -> u64 {
    // Every `RandomState` has fresh keys, which is all the randomness needed here.
    RandomState::new().hash_one(salt)
}

fn query_id() -> String {
    let (a, b) = (random_u64(1), random_u64(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff,
    )
}

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct ApiStatus {
    reason: &'static str,
    sql_state: &'static str,
    vendor_code: i64,
}

impl ApiStatus {
    const fn new(vendor_code: i64, sql_state: &'static str, reason: &'static str) -> Self {
        Self {
            reason,
            sql_state,
            vendor_code,
        }
    }

    const AUTHENTICATED: Self = Self::new(0, "00000", "Authentication successful");
    const QUERY_OK: Self = Self::new(0, "00000", "ok");
    const BAD_CREDENTIALS: Self = Self::new(-304, "08004", "invalid username or password");
    const NO_SESSION: Self = Self::new(-1204, "08003", "no session");
    const TOKEN_INVALID: Self = Self::new(-1205, "08004", "security token invalid");
    const TOKEN_EXPIRED: Self = Self::new(-1208, "08004", "security token expired");
    const REFRESH_EXPIRED: Self = Self::new(-733, "42502", "session expired, refresh necessary");
    const INJECTED: Self = Self::new(-1, "58000", "injected failure");

    fn reason_for(vendor_code: i64) -> &'static str {
        [
            Self::BAD_CREDENTIALS,
            Self::NO_SESSION,
            Self::TOKEN_INVALID,
            Self::TOKEN_EXPIRED,
            Self::REFRESH_EXPIRED,
        ]
        .iter()
        .find(|known| known.vendor_code == vendor_code)
        .map_or(Self::INJECTED.reason, |known| known.reason)
    }
}

#[derive(Serialize)]
struct StatusOnly {
    status: ApiStatus,
}

#[derive(Serialize)]
struct Issued {
    access_token: String,
    username: String,
    database: String,
    expires_in: u64,
    status: ApiStatus,
}

#[derive(Serialize)]
struct QueryAnswer {
    query_id: String,
    status: ApiStatus,
    data: [[u8; 1]; 1],
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    database: Option<String>,
}

#[derive(Deserialize, Default)]
struct RefreshRequest {
    database: Option<String>,
}

// ---------------------------------------------------------------------------
// Builder and runtime knobs
// ---------------------------------------------------------------------------

impl MockOcient {
    /// One user `jdoe` / `secret`, tokens valid 1 hour and refreshable for
    /// 24 hours after login, no latency, failures answered as HTTP 401.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Mutex::new(State::new())),
        }
    }

    /// Adds a user, replacing the password of an existing one.
    #[must_use]
    pub fn user(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.lock().users.insert(username.into(), password.into());
        self
    }

    /// How long tokens issued from now on are valid. The server expires them
    /// after exactly `lifetime`; `expires_in` says it in whole seconds,
    /// rounded up and at least 1.
    #[must_use]
    pub fn token_lifetime(self, lifetime: Duration) -> Self {
        self.set_token_lifetime(lifetime);
        self
    }

    /// How long after its login a token, and every token refreshed from it,
    /// can still be refreshed; past that a refresh gets -733.
    #[must_use]
    pub fn refresh_lifetime(self, lifetime: Duration) -> Self {
        self.lock().knobs.refresh_lifetime = lifetime;
        self
    }

    /// Delay before answering a login or token refresh. It is a
    /// `tokio::time::sleep`, so a paused clock drives it.
    #[must_use]
    pub fn latency(self, latency: Duration) -> Self {
        self.set_latency(latency);
        self
    }

    /// `true`: authentication failures are HTTP 200 with the non-zero
    /// `vendor_code`, instead of HTTP 401.
    #[must_use]
    pub fn errors_in_band(self, yes: bool) -> Self {
        self.lock().knobs.errors_in_band = yes;
        self
    }

    /// `true`: an expired token can still be refreshed while inside its
    /// refresh lifetime. Default `false`: refreshing it gets -1208.
    #[must_use]
    pub fn refresh_expired_tokens(self, yes: bool) -> Self {
        self.lock().knobs.refresh_expired_tokens = yes;
        self
    }

    /// Default `true`: a token stays valid until it expires. `false`:
    /// refreshing a token revokes it.
    #[must_use]
    pub fn old_token_survives_refresh(self, yes: bool) -> Self {
        self.lock().knobs.old_token_survives_refresh = yes;
        self
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().knobs.token_lifetime = lifetime;
    }

    /// Changes the latency of login and token refresh requests that arrive
    /// from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().knobs.latency = latency;
    }

    /// The next `times` login or token refresh requests get `fault` instead
    /// of normal handling. Faults queue up behind ones already set; each
    /// request still counts as a login or refresh, and as a failure.
    pub fn fail_token_requests(&self, fault: Fault, times: usize) {
        if times > 0 {
            self.lock().faults.push_back((fault, times));
        }
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every token issued so far becomes invalid (-1205).
    pub fn revoke_all(&self) {
        self.lock().sessions.clear();
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.lock().counters
    }

    /// How many tokens have been issued; the last one is
    /// `mock.<generation>.<random>`.
    pub fn current_generation(&self) -> u64 {
        self.lock().generation
    }

    /// Binds `127.0.0.1` on a free port and serves HTTP/1 there, each
    /// connection on its own task. Must be awaited on a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the loopback socket cannot be bound.
    pub async fn serve(self) -> io::Result<MockServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let accept_loop = tokio::spawn(accept_loop(listener, self.clone())).abort_handle();
        tracing::debug!(%addr, "Ocient mock listening");
        Ok(MockServer {
            addr,
            mock: self,
            accept_loop,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take every later request down with it.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MockOcient {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MockOcient {
    /// Knobs, user names and counters; never a password or a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        let mut users: Vec<&str> = state.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        let pending_faults = state
            .faults
            .iter()
            .fold(0_usize, |sum, (_, times)| sum.saturating_add(*times));
        f.debug_struct("MockOcient")
            .field("users", &users)
            .field("knobs", &state.knobs)
            .field("generation", &state.generation)
            .field("live_tokens", &state.sessions.len())
            .field("pending_faults", &pending_faults)
            .field("counters", &state.counters)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The handler, shared by the Service impl and the HTTP server
// ---------------------------------------------------------------------------

enum Route {
    Token(TokenRoute),
    Execute,
    WrongMethod,
    NotFound,
}

impl Route {
    fn of(method: &Method, path: &str) -> Self {
        let (route, allowed) = match path {
            "/v1/login" => (Self::Token(TokenRoute::Login), method == Method::POST),
            "/v1/token_refresh" => (Self::Token(TokenRoute::Refresh), method == Method::POST),
            _ if is_execute(path) => (
                Self::Execute,
                method == Method::GET || method == Method::POST,
            ),
            _ => return Self::NotFound,
        };
        if allowed {
            route
        } else {
            Self::WrongMethod
        }
    }
}

fn is_execute(path: &str) -> bool {
    path.strip_prefix("/v1/execute/")
        .is_some_and(|database| !database.is_empty() && !database.contains('/'))
}

impl MockOcient {
    async fn respond<B>(self, request: Request<B>) -> Response<MockBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let response = match Route::of(&parts.method, parts.uri.path()) {
            Route::Token(endpoint) => self.token_request(endpoint, &parts.headers, body).await,
            Route::Execute => self.execute(&parts.headers),
            Route::WrongMethod => Failure::protocol(
                StatusCode::METHOD_NOT_ALLOWED,
                "42000",
                "method not allowed",
            )
            .into_response(),
            Route::NotFound => {
                Failure::protocol(StatusCode::NOT_FOUND, "42000", "not found").into_response()
            }
        };
        // The path is safe to log: tokens travel in headers and bodies only.
        tracing::debug!(
            method = %parts.method,
            path = parts.uri.path(),
            status = %response.status(),
            "Ocient mock answered"
        );
        response
    }

    async fn token_request<B>(
        &self,
        endpoint: TokenRoute,
        headers: &HeaderMap,
        body: B,
    ) -> Response<MockBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (fault, latency) = {
            let mut state = self.lock();
            (state.begin_token_request(endpoint), state.knobs.latency)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(fault) = fault {
            tracing::debug!(
                ?endpoint,
                fault = fault.name(),
                "Ocient mock injecting a fault"
            );
            return fault.into_response().await;
        }
        let outcome = match endpoint {
            TokenRoute::Login => self.login(headers, body).await,
            TokenRoute::Refresh => self.refresh(headers, body).await,
        };
        match outcome {
            Ok(issued) => json(StatusCode::OK, &issued),
            Err(failure) => {
                self.lock().counters.failed_token_requests += 1;
                failure.into_response()
            }
        }
    }

    async fn login<B>(&self, headers: &HeaderMap, body: B) -> Result<Issued, Failure>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        require_json(headers)?;
        let creds: LoginRequest = read_json(body).await?.ok_or_else(Failure::malformed_json)?;
        let mut state = self.lock();
        let in_band = state.knobs.errors_in_band;
        state
            .login(creds, Instant::now())
            .map_err(|status| Failure::auth(status, in_band))
    }

    async fn refresh<B>(&self, headers: &HeaderMap, body: B) -> Result<Issued, Failure>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        require_json(headers)?;
        let request: RefreshRequest = read_json(body).await?.unwrap_or_default();
        let now = Instant::now();
        let mut state = self.lock();
        let in_band = state.knobs.errors_in_band;
        bearer(headers)
            .and_then(|token| state.refresh(token, request.database, now))
            .map_err(|status| Failure::auth(status, in_band))
    }

    fn execute(&self, headers: &HeaderMap) -> Response<MockBody> {
        let now = Instant::now();
        let mut state = self.lock();
        let verdict = bearer(headers).and_then(|token| state.check(token, now));
        let counter = match verdict {
            Ok(()) => &mut state.counters.queries_ok,
            Err(ApiStatus::NO_SESSION) => &mut state.counters.queries_no_token,
            Err(_) => &mut state.counters.queries_bad_token,
        };
        *counter += 1;
        let in_band = state.knobs.errors_in_band;
        drop(state);
        match verdict {
            Ok(()) => json(
                StatusCode::OK,
                &QueryAnswer {
                    query_id: query_id(),
                    status: ApiStatus::QUERY_OK,
                    data: [[1]],
                },
            ),
            Err(status) => Failure::auth(status, in_band).into_response(),
        }
    }
}

/// A refusal: a status object and the HTTP status that carries it.
#[derive(Debug, Clone, Copy)]
struct Failure {
    http: StatusCode,
    status: ApiStatus,
}

impl Failure {
    fn auth(status: ApiStatus, in_band: bool) -> Self {
        let http = if in_band {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        Self { http, status }
    }

    /// Protocol errors keep their HTTP status even with `errors_in_band`,
    /// which is about how the server reports authentication outcomes.
    fn protocol(http: StatusCode, sql_state: &'static str, reason: &'static str) -> Self {
        Self {
            http,
            status: ApiStatus::new(-1, sql_state, reason),
        }
    }

    fn malformed_json() -> Self {
        Self::protocol(StatusCode::BAD_REQUEST, "22000", "malformed JSON body")
    }

    fn into_response(self) -> Response<MockBody> {
        json(
            self.http,
            &StatusOnly {
                status: self.status,
            },
        )
    }
}

/// `Authorization: Bearer <token>`; a missing header is "no session", any
/// other shape is an invalid token.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiStatus> {
    let value = headers.get(AUTHORIZATION).ok_or(ApiStatus::NO_SESSION)?;
    let (scheme, token) = value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .ok_or(ApiStatus::TOKEN_INVALID)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(token.trim())
    } else {
        Err(ApiStatus::TOKEN_INVALID)
    }
}

fn require_json(headers: &HeaderMap) -> Result<(), Failure> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(Failure::protocol(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "22000",
            "Content-Type must be application/json",
        ))
    }
}

/// `Ok(None)` for an empty body, which a token refresh allows.
async fn read_json<T, B>(body: B) -> Result<Option<T>, Failure>
where
    T: DeserializeOwned,
    B: Body,
    B::Error: Into<BoxError>,
{
    let bytes = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return Err(Failure::protocol(
                StatusCode::PAYLOAD_TOO_LARGE,
                "22000",
                "request body too large",
            ));
        }
        Err(_) => {
            return Err(Failure::protocol(
                StatusCode::BAD_REQUEST,
                "22000",
                "unreadable request body",
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| Failure::malformed_json())
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<MockBody> {
    // These plain structs always serialize; the fallback only keeps this total.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    respond_with(
        status,
        Some(HeaderValue::from_static("application/json")),
        MockBody::full(body.into()),
    )
}

fn respond_with(
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: MockBody,
) -> Response<MockBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, content_type);
    }
    response
}

impl Fault {
    fn name(&self) -> &'static str {
        match self {
            Self::Status(_) => "Status",
            Self::VendorCode { .. } => "VendorCode",
            Self::Body { .. } => "Body",
            Self::Hang => "Hang",
            Self::CutOff => "CutOff",
        }
    }

    async fn into_response(self) -> Response<MockBody> {
        match self {
            Self::Status(http) => Failure {
                http,
                status: ApiStatus::INJECTED,
            }
            .into_response(),
            Self::VendorCode {
                http,
                vendor_code,
                sql_state,
            } => {
                let reason = ApiStatus::reason_for(vendor_code);
                let status = ApiStatus::new(vendor_code, sql_state, reason);
                Failure { http, status }.into_response()
            }
            Self::Body {
                status,
                content_type,
                body,
            } => {
                let content_type = HeaderValue::from_str(content_type).ok();
                respond_with(status, content_type, MockBody::full(body))
            }
            Self::Hang => std::future::pending().await,
            Self::CutOff => cut_off(),
        }
    }
}

fn cut_off() -> Response<MockBody> {
    const PREFIX: &[u8] = br#"{"access_token":"mock.0."#;
    const DECLARED: u64 = 256;
    let mut response = respond_with(
        StatusCode::OK,
        Some(HeaderValue::from_static("application/json")),
        MockBody::cut_off(Bytes::from_static(PREFIX), DECLARED),
    );
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(DECLARED));
    response
}

// ---------------------------------------------------------------------------
// tower Service
// ---------------------------------------------------------------------------

impl<B> tower_service::Service<Request<B>> for MockOcient
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<MockBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mock = self.clone();
        ResponseFuture {
            inner: Box::pin(async move { Ok(mock.respond(request).await) }),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<MockBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Response body
// ---------------------------------------------------------------------------

enum BodyKind {
    Full(Option<Bytes>),
    /// Sends `chunk`, then fails, while `size_hint` promises `declared` bytes.
    CutOff {
        chunk: Option<Bytes>,
        declared: u64,
        stalled: bool,
    },
}

impl MockBody {
    fn full(bytes: Bytes) -> Self {
        let data = (!bytes.is_empty()).then_some(bytes);
        Self {
            kind: BodyKind::Full(data),
        }
    }

    fn cut_off(chunk: Bytes, declared: u64) -> Self {
        Self {
            kind: BodyKind::CutOff {
                chunk: Some(chunk),
                declared,
                stalled: false,
            },
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            BodyKind::Full(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            BodyKind::CutOff { chunk, stalled, .. } => {
                if let Some(chunk) = chunk.take() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                // Pending once, so hyper flushes the headers and the chunk
                // before the error closes the connection; otherwise the
                // client sees no response at all instead of a cut body.
                if !*stalled {
                    *stalled = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.kind = BodyKind::Full(None);
                Poll::Ready(Some(Err(
                    "Ocient mock: response body cut off (injected fault)".into(),
                )))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, BodyKind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            BodyKind::CutOff { declared, .. } => SizeHint::with_exact(*declared),
        }
    }
}

impl fmt::Debug for MockBody {
    /// Sizes only: a body may carry a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("MockBody");
        match &self.kind {
            BodyKind::Full(data) => debug.field("len", &data.as_ref().map_or(0, Bytes::len)),
            BodyKind::CutOff { declared, .. } => debug.field("cut_off_of", declared),
        };
        debug.finish()
    }
}

// ---------------------------------------------------------------------------
// HTTP server
// ---------------------------------------------------------------------------

impl MockServer {
    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URI, `http://127.0.0.1:PORT/`.
    pub fn uri(&self) -> Uri {
        Uri::builder()
            .scheme("http")
            .authority(self.addr.to_string())
            .path_and_query("/")
            .build()
            // Cannot fail for a socket address; the default keeps this panic-free.
            .unwrap_or_default()
    }

    /// The mock it serves, to read counters or turn knobs while it runs.
    pub fn mock(&self) -> &MockOcient {
        &self.mock
    }

    /// Stops accepting and closes open connections; dropping does the same.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Owns every connection task, so aborting it closes them all, hung ones included.
async fn accept_loop(listener: TcpListener, mock: MockOcient) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, mock.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "Ocient mock failed to accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, mock: MockOcient) {
    let service = hyper::service::service_fn(move |request| {
        let mock = mock.clone();
        async move { Ok::<_, Infallible>(mock.respond(request).await) }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "Ocient mock connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use serde_json::Value;
    use tower_service::Service;

    const JSON: &str = "application/json";

    fn request(
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
            .header(CONTENT_TYPE, JSON)
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .expect("valid test request")
    }

    fn login_request(username: &str, password: &str) -> Request<Full<Bytes>> {
        let body = serde_json::json!({ "username": username, "password": password }).to_string();
        request(Method::POST, "/v1/login", None, &body)
    }

    fn refresh_request(token: &str) -> Request<Full<Bytes>> {
        request(Method::POST, "/v1/token_refresh", Some(token), "")
    }

    fn execute_request(token: Option<&str>) -> Request<Full<Bytes>> {
        request(Method::POST, "/v1/execute/system", token, "SELECT 1")
    }

    async fn call(mock: &MockOcient, request: Request<Full<Bytes>>) -> Response<MockBody> {
        match mock.clone().call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    async fn send(mock: &MockOcient, request: Request<Full<Bytes>>) -> (StatusCode, Value) {
        let response = call(mock, request).await;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("complete body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).expect("JSON body"))
    }

    fn vendor_code(answer: &Value) -> i64 {
        answer["status"]["vendor_code"]
            .as_i64()
            .expect("vendor_code")
    }

    fn token_of(answer: &Value) -> String {
        answer["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    fn generation_of(token: &str) -> u64 {
        token
            .split('.')
            .nth(1)
            .and_then(|g| g.parse().ok())
            .expect("generation")
    }

    async fn login(mock: &MockOcient) -> String {
        let (status, answer) = send(mock, login_request("jdoe", "secret")).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        token_of(&answer)
    }

    async fn refresh(mock: &MockOcient, token: &str) -> (StatusCode, Value) {
        send(mock, refresh_request(token)).await
    }

    async fn execute(mock: &MockOcient, token: &str) -> (StatusCode, i64) {
        let (status, answer) = send(mock, execute_request(Some(token))).await;
        (status, vendor_code(&answer))
    }

    #[test]
    fn public_types_are_thread_safe() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        fn assert_send<T: Send + 'static>() {}
        fn assert_unpin<T: Unpin>() {}
        assert_send_sync::<MockOcient>();
        assert_send_sync::<MockServer>();
        assert_send_sync::<MockBody>();
        assert_send_sync::<Fault>();
        assert_send::<ResponseFuture>();
        assert_unpin::<MockBody>();
    }

    #[tokio::test]
    async fn login_ok_answers_like_ocient() {
        let mock = MockOcient::new();
        let (status, answer) = send(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["username"], "jdoe");
        assert_eq!(answer["database"], "system");
        assert_eq!(answer["expires_in"], 3600);
        assert_eq!(
            answer["status"],
            serde_json::json!({"reason": "Authentication successful", "sql_state": "00000", "vendor_code": 0})
        );
        let token = token_of(&answer);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts[..2], ["mock", "1"]);
        assert!(
            parts[2].len() == 16 && parts[2].bytes().all(|b| b.is_ascii_hexdigit()),
            "{token}"
        );
        assert_eq!(mock.current_generation(), 1);
        assert_eq!(
            mock.counters(),
            Counters {
                logins: 1,
                ..Counters::default()
            }
        );
    }

    #[tokio::test]
    async fn login_uses_the_requested_database_and_added_users() {
        let mock = MockOcient::new().user("alice", "pw");
        let body = r#"{"username": "alice", "password": "pw", "database": "sales"}"#;
        let (status, answer) = send(&mock, request(Method::POST, "/v1/login", None, body)).await;
        assert_eq!(
            (status, &answer["database"]),
            (StatusCode::OK, &Value::from("sales"))
        );
        assert_eq!(answer["username"], "alice");
        login(&mock).await;
    }

    #[tokio::test]
    async fn wrong_credentials_are_401_with_vendor_code_304() {
        let mock = MockOcient::new();
        for (user, password) in [("jdoe", "wrong"), ("nobody", "secret")] {
            let (status, answer) = send(&mock, login_request(user, password)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(vendor_code(&answer), -304);
            assert_eq!(answer["status"]["sql_state"], "08004");
            assert!(answer.get("access_token").is_none());
        }
        let counters = mock.counters();
        assert_eq!((counters.logins, counters.failed_token_requests), (2, 2));
        assert_eq!(mock.current_generation(), 0);
    }

    #[tokio::test]
    async fn errors_in_band_answer_200_with_the_vendor_code() {
        let mock = MockOcient::new().errors_in_band(true);
        let (status, answer) = send(&mock, login_request("jdoe", "wrong")).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, -304));
        assert_eq!(
            execute(&mock, "mock.9.0000000000000000").await,
            (StatusCode::OK, -1205)
        );
        assert_eq!(mock.counters().failed_token_requests, 1);
    }

    #[tokio::test]
    async fn login_requires_a_json_content_type() {
        let mock = MockOcient::new();
        let body = r#"{"username": "jdoe", "password": "secret"}"#;
        for content_type in [None, Some("text/plain")] {
            let mut builder = Request::post("/v1/login");
            if let Some(content_type) = content_type {
                builder = builder.header(CONTENT_TYPE, content_type);
            }
            let request = builder.body(Full::new(Bytes::from(body))).expect("request");
            let (status, answer) = send(&mock, request).await;
            assert_eq!(
                (status, vendor_code(&answer)),
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, -1)
            );
        }
        let with_charset = Request::post("/v1/login")
            .header(CONTENT_TYPE, "Application/JSON; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        assert_eq!(send(&mock, with_charset).await.0, StatusCode::OK);
        let counters = mock.counters();
        assert_eq!((counters.logins, counters.failed_token_requests), (3, 2));
    }

    #[tokio::test]
    async fn bad_login_bodies_are_rejected_not_panicked_on() {
        let mock = MockOcient::new();
        let huge = "x".repeat(BODY_LIMIT + 1);
        let cases = [
            ("", StatusCode::BAD_REQUEST),
            ("{not json", StatusCode::BAD_REQUEST),
            (r#"{"username": "jdoe"}"#, StatusCode::BAD_REQUEST),
            ("[1, 2]", StatusCode::BAD_REQUEST),
            (huge.as_str(), StatusCode::PAYLOAD_TOO_LARGE),
        ];
        for (body, expected) in cases {
            let (status, answer) =
                send(&mock, request(Method::POST, "/v1/login", None, body)).await;
            assert_eq!(
                (status, vendor_code(&answer)),
                (expected, -1),
                "body {:.20}",
                body
            );
        }
        assert_eq!(mock.counters().failed_token_requests, 5);
    }

    #[tokio::test]
    async fn refresh_issues_a_newer_token_and_keeps_the_old_one() {
        let mock = MockOcient::new();
        let first = login(&mock).await;
        let (status, answer) = refresh(&mock, &first).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
        let second = token_of(&answer);
        assert_ne!(first, second);
        assert!(generation_of(&second) > generation_of(&first));
        assert_eq!(mock.current_generation(), 2);
        assert_eq!(answer["database"], "system");
        assert_eq!(execute(&mock, &first).await, (StatusCode::OK, 0));
        assert_eq!(execute(&mock, &second).await, (StatusCode::OK, 0));
        let counters = mock.counters();
        assert_eq!(
            (counters.logins, counters.refreshes, counters.queries_ok),
            (1, 1, 2)
        );
    }

    #[tokio::test]
    async fn refresh_accepts_empty_object_and_database_bodies() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        let (_, answer) = send(
            &mock,
            request(Method::POST, "/v1/token_refresh", Some(&token), "{}"),
        )
        .await;
        assert_eq!(
            (vendor_code(&answer), &answer["database"]),
            (0, &Value::from("system"))
        );
        let body = r#"{"database": "sales"}"#;
        let (_, answer) = send(
            &mock,
            request(Method::POST, "/v1/token_refresh", Some(&token), body),
        )
        .await;
        assert_eq!(
            (vendor_code(&answer), &answer["database"]),
            (0, &Value::from("sales"))
        );
    }

    #[tokio::test]
    async fn refresh_without_a_usable_token_is_refused() {
        let mock = MockOcient::new();
        let (status, answer) =
            send(&mock, request(Method::POST, "/v1/token_refresh", None, "")).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -1204)
        );
        assert_eq!(answer["status"]["sql_state"], "08003");
        let (status, answer) = refresh(&mock, "garbage").await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -1205)
        );
        let token = login(&mock).await;
        let basic = Request::post("/v1/token_refresh")
            .header(CONTENT_TYPE, JSON)
            .header(AUTHORIZATION, format!("Basic {token}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        assert_eq!(vendor_code(&send(&mock, basic).await.1), -1205);
        assert_eq!(mock.counters().failed_token_requests, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_token_is_refused_for_execute_and_refresh() {
        let mock = MockOcient::new().token_lifetime(Duration::from_secs(10));
        let token = login(&mock).await;
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(execute(&mock, &token).await, (StatusCode::OK, 0));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            execute(&mock, &token).await,
            (StatusCode::UNAUTHORIZED, -1208)
        );
        let (status, answer) = refresh(&mock, &token).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -1208)
        );
        assert_eq!(answer["status"]["reason"], "security token expired");
        let counters = mock.counters();
        assert_eq!((counters.queries_ok, counters.queries_bad_token), (1, 1));
        assert_eq!(counters.failed_token_requests, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_token_can_be_refreshed_when_allowed() {
        let mock = MockOcient::new()
            .token_lifetime(Duration::from_secs(10))
            .refresh_expired_tokens(true);
        let token = login(&mock).await;
        tokio::time::advance(Duration::from_secs(60)).await;
        let (status, answer) = refresh(&mock, &token).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
        assert_eq!(
            execute(&mock, &token_of(&answer)).await,
            (StatusCode::OK, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sub_second_lifetimes_expire_exactly_but_advertise_one_second() {
        let mock = MockOcient::new().token_lifetime(Duration::from_millis(500));
        let (_, answer) = send(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(answer["expires_in"], 1);
        let token = token_of(&answer);
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(execute(&mock, &token).await.1, 0);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(execute(&mock, &token).await.1, -1208);
        mock.set_token_lifetime(Duration::from_millis(2_001));
        let (_, answer) = send(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(answer["expires_in"], 3);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_lifetime_counts_from_the_login() {
        let mock = MockOcient::new()
            .token_lifetime(Duration::from_secs(3600))
            .refresh_lifetime(Duration::from_secs(60));
        let first = login(&mock).await;
        tokio::time::advance(Duration::from_secs(59)).await;
        let (_, answer) = refresh(&mock, &first).await;
        assert_eq!(vendor_code(&answer), 0);
        let second = token_of(&answer);
        tokio::time::advance(Duration::from_secs(1)).await;
        let (status, answer) = refresh(&mock, &second).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -733)
        );
        assert_eq!(answer["status"]["sql_state"], "42502");
        // Still valid for queries: only refreshing is over.
        assert_eq!(execute(&mock, &second).await.1, 0);
    }

    #[tokio::test]
    async fn refresh_can_revoke_the_old_token() {
        let mock = MockOcient::new().old_token_survives_refresh(false);
        let first = login(&mock).await;
        let second = token_of(&refresh(&mock, &first).await.1);
        assert_eq!(execute(&mock, &first).await.1, -1205);
        assert_eq!(execute(&mock, &second).await.1, 0);
        assert_eq!(vendor_code(&refresh(&mock, &first).await.1), -1205);
    }

    #[tokio::test]
    async fn revoke_all_invalidates_every_issued_token() {
        let mock = MockOcient::new();
        let first = login(&mock).await;
        let second = token_of(&refresh(&mock, &first).await.1);
        mock.revoke_all();
        assert_eq!(
            execute(&mock, &first).await,
            (StatusCode::UNAUTHORIZED, -1205)
        );
        assert_eq!(execute(&mock, &second).await.1, -1205);
        assert_eq!(vendor_code(&refresh(&mock, &second).await.1), -1205);
        let third = login(&mock).await;
        assert_eq!(execute(&mock, &third).await.1, 0);
        assert_eq!(generation_of(&third), 3);
    }

    #[tokio::test]
    async fn execute_answers_and_counts_by_token() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        let (status, answer) = send(&mock, execute_request(Some(&token))).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
        assert_eq!(answer["data"], serde_json::json!([[1]]));
        assert_eq!(answer["query_id"].as_str().map(str::len), Some(36));
        let get = request(Method::GET, "/v1/execute/other", Some(&token), "");
        assert_eq!(send(&mock, get).await.0, StatusCode::OK);
        let (status, answer) = send(&mock, execute_request(None)).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -1204)
        );
        assert_eq!(execute(&mock, "mock.1.ffffffffffffffff").await.1, -1205);
        let expected = Counters {
            logins: 1,
            queries_ok: 2,
            queries_bad_token: 1,
            queries_no_token: 1,
            ..Counters::default()
        };
        assert_eq!(mock.counters(), expected);
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_get_status_objects() {
        let mock = MockOcient::new();
        for (method, path, expected) in [
            (Method::GET, "/v1/nothing", StatusCode::NOT_FOUND),
            (Method::GET, "/v1/execute/", StatusCode::NOT_FOUND),
            (Method::GET, "/v1/execute/a/b", StatusCode::NOT_FOUND),
            (Method::GET, "/v1/login", StatusCode::METHOD_NOT_ALLOWED),
            (
                Method::DELETE,
                "/v1/execute/system",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
        ] {
            let (status, answer) = send(&mock, request(method, path, None, "")).await;
            assert_eq!((status, vendor_code(&answer)), (expected, -1), "{path}");
        }
        assert_eq!(mock.counters(), Counters::default());
    }

    #[tokio::test]
    async fn status_fault_applies_to_the_next_requests_only() {
        let mock = MockOcient::new();
        mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 2);
        for _ in 0..2 {
            let (status, answer) = send(&mock, login_request("jdoe", "secret")).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                answer["status"],
                serde_json::json!({"reason": "injected failure", "sql_state": "58000", "vendor_code": -1})
            );
        }
        login(&mock).await;
        let counters = mock.counters();
        assert_eq!((counters.logins, counters.failed_token_requests), (3, 2));
    }

    #[tokio::test]
    async fn faults_queue_in_order_and_hit_refreshes_too() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        mock.fail_token_requests(
            Fault::VendorCode {
                http: StatusCode::OK,
                vendor_code: -1208,
                sql_state: "08004",
            },
            1,
        );
        mock.fail_token_requests(
            Fault::VendorCode {
                http: StatusCode::UNAUTHORIZED,
                vendor_code: -42,
                sql_state: "XX000",
            },
            1,
        );
        let (status, answer) = refresh(&mock, &token).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, -1208));
        assert_eq!(answer["status"]["reason"], "security token expired");
        let (status, answer) = refresh(&mock, &token).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -42)
        );
        assert_eq!(answer["status"]["sql_state"], "XX000");
        assert_eq!(vendor_code(&refresh(&mock, &token).await.1), 0);
        assert_eq!(mock.counters().failed_token_requests, 2);
    }

    #[tokio::test]
    async fn body_fault_is_sent_verbatim() {
        let mock = MockOcient::new();
        let body = Bytes::from_static(b"{\"access_token\": \"\x01\x7f\"");
        mock.fail_token_requests(
            Fault::Body {
                status: StatusCode::OK,
                content_type: "text/html",
                body: body.clone(),
            },
            1,
        );
        let response = call(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html");
        assert_eq!(
            response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes(),
            body
        );
    }

    #[tokio::test]
    async fn body_fault_with_an_invalid_content_type_omits_the_header() {
        let mock = MockOcient::new();
        mock.fail_token_requests(
            Fault::Body {
                status: StatusCode::OK,
                content_type: "bad\nvalue",
                body: Bytes::new(),
            },
            1,
        );
        let response = call(&mock, login_request("jdoe", "secret")).await;
        assert!(response.headers().get(CONTENT_TYPE).is_none());
        assert!(response.body().is_end_stream());
    }

    #[tokio::test(start_paused = true)]
    async fn hang_fault_never_answers() {
        let mock = MockOcient::new();
        mock.fail_token_requests(Fault::Hang, 1);
        let pending = call(&mock, login_request("jdoe", "secret"));
        let outcome = tokio::time::timeout(Duration::from_secs(3600), pending).await;
        assert!(outcome.is_err(), "a hung request answered");
        let counters = mock.counters();
        assert_eq!((counters.logins, counters.failed_token_requests), (1, 1));
        login(&mock).await;
    }

    #[tokio::test]
    async fn cut_off_fault_fails_the_body_midway() {
        let mock = MockOcient::new();
        mock.fail_token_requests(Fault::CutOff, 1);
        let response = call(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let declared: u64 = response.headers()[CONTENT_LENGTH]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        assert_eq!(response.body().size_hint().exact(), Some(declared));
        let mut body = response.into_body();
        let first = body.frame().await.expect("a frame").expect("data first");
        assert!((first.data_ref().map_or(0, Bytes::len) as u64) < declared);
        assert!(body.frame().await.expect("a frame").is_err());
        assert!(body.frame().await.is_none());
        assert_eq!(mock.counters().failed_token_requests, 1);
    }

    #[tokio::test]
    async fn clear_faults_restores_normal_answers() {
        let mock = MockOcient::new();
        mock.fail_token_requests(Fault::Status(StatusCode::INTERNAL_SERVER_ERROR), usize::MAX);
        mock.fail_token_requests(Fault::Hang, usize::MAX);
        assert!(format!("{mock:?}").contains(&format!("pending_faults: {}", usize::MAX)));
        assert_eq!(
            send(&mock, login_request("jdoe", "secret")).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        mock.clear_faults();
        login(&mock).await;
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_token_requests_on_the_tokio_clock() {
        let mock = MockOcient::new().latency(Duration::from_secs(5));
        let in_flight = tokio::spawn({
            let mock = mock.clone();
            async move { login(&mock).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(mock.counters().logins, 1, "counted on arrival");
        tokio::time::advance(Duration::from_millis(4_999)).await;
        tokio::task::yield_now().await;
        assert!(!in_flight.is_finished());
        tokio::time::advance(Duration::from_millis(1)).await;
        in_flight.await.expect("login task");

        mock.set_latency(Duration::ZERO);
        let started = Instant::now();
        login(&mock).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn dead_tokens_are_pruned_but_live_ones_kept() {
        let mock = MockOcient::new()
            .token_lifetime(Duration::from_secs(1))
            .refresh_lifetime(Duration::from_secs(3600));
        // Expired but still refreshable: must survive the sweep.
        let keeper = login(&mock).await;
        mock.lock().knobs.refresh_lifetime = Duration::from_secs(1);
        let oldest = login(&mock).await;
        for _ in 2..PRUNE_FLOOR {
            login(&mock).await;
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(execute(&mock, &oldest).await.1, -1208);
        let fresh = login(&mock).await;
        assert_eq!(mock.lock().sessions.len(), 2);
        assert_eq!(execute(&mock, &fresh).await.1, 0);
        assert_eq!(execute(&mock, &oldest).await.1, -1205);
        assert_eq!(execute(&mock, &keeper).await.1, -1208);
    }

    #[tokio::test]
    async fn debug_output_never_shows_passwords_or_tokens() {
        let mock = MockOcient::new().user("alice", "hunter2");
        let token = login(&mock).await;
        let printed = format!("{mock:?}");
        assert!(
            printed.contains("alice") && printed.contains("logins: 1"),
            "{printed}"
        );
        for secret in ["secret", "hunter2", token.as_str()] {
            assert!(!printed.contains(secret), "{printed}");
        }
        let response = call(&mock, login_request("jdoe", "secret")).await;
        let printed = format!("{:?}", response.body());
        assert!(!printed.contains("mock."), "{printed}");
    }

    #[tokio::test]
    async fn loopback_http_shares_the_in_process_handler() {
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;

        let server = MockOcient::new().serve().await.expect("bind loopback");
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let base = server.uri();
        assert_eq!(base.host(), Some("127.0.0.1"));
        assert_eq!(base.port_u16(), Some(server.addr().port()));
        let absolute = |path: &str| format!("http://{}{path}", server.addr());

        let mut login = login_request("jdoe", "secret");
        *login.uri_mut() = absolute("/v1/login").parse().expect("uri");
        let response = client.request(login).await.expect("login over HTTP");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let token = token_of(&serde_json::from_slice(&bytes).expect("JSON"));

        let mut query = execute_request(Some(&token));
        *query.uri_mut() = absolute("/v1/execute/system").parse().expect("uri");
        assert_eq!(
            client.request(query).await.expect("execute").status(),
            StatusCode::OK
        );
        // The in-process handler sees the token issued over HTTP.
        assert_eq!(execute(server.mock(), &token).await.1, 0);

        server.mock().fail_token_requests(Fault::CutOff, 1);
        let mut cut = login_request("jdoe", "secret");
        *cut.uri_mut() = absolute("/v1/login").parse().expect("uri");
        // The head must arrive: a client has to cope with a body that breaks.
        let response = client.request(cut).await.expect("cut-off head arrives");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await;
        assert!(body.is_err(), "a cut-off body arrived whole");

        server.mock().fail_token_requests(Fault::Hang, 1);
        let mut hung = login_request("jdoe", "secret");
        *hung.uri_mut() = absolute("/v1/login").parse().expect("uri");
        let waited = tokio::time::timeout(Duration::from_millis(200), client.request(hung)).await;
        assert!(waited.is_err(), "a hung request answered");

        let counters = server.mock().counters();
        assert_eq!(
            (
                counters.logins,
                counters.failed_token_requests,
                counters.queries_ok
            ),
            (3, 2, 2)
        );

        let addr = server.addr();
        server.shutdown();
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "still accepting after shutdown");
    }
}
