//! The scenario table: (token state, what the server answers, when the caller calls)
//! → (token requests made, what the caller gets, whether it waited).
//!
//! One test walks every row on tokio's paused clock, each on a fresh mock and a fresh
//! layer, and reports every row that disagrees, by name, before failing.
//!
//! Timeline of a 100 s token obtained at `t`: refresh point in `[t+50, t+60)`
//! (`refresh_at` 0.5 plus up to 10 % spread), dead point `t+95` (5 s margin), expiry
//! `t+100`. The `Start` states are reached from a login at 0 with no latency.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{auth, query, send, BASE};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use ocient_mock::{Counters, Fault, MockOcient};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, Instant};
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_token_refresh::{Error, Exchange, OcientAuth, TokenRefresh, TokenRefreshLayer};

use Exchange::{Login, Refresh};

// ---------------------------------------------------------------------------
// The table's vocabulary
// ---------------------------------------------------------------------------

/// Who the layer is.
#[derive(Debug, Clone, Copy)]
enum Auth {
    /// `jdoe` / `secret`: can log in.
    Credentials,
    /// A token the mock issued at 0, handed over with no credentials.
    InitialToken,
    /// Neither credentials nor a token.
    Nothing,
}

/// Where the token is when the steps begin (reached with a login at 0, no latency).
#[derive(Debug, Clone, Copy)]
enum Start {
    /// No request yet: no token.
    NoToken,
    /// A tenth of the lifetime in (10 s of 100 s).
    Fresh,
    /// 61 % in: past the latest refresh point, no refresh started yet.
    Due,
    /// Inside the safety margin: dead to the layer, still valid on the server (96 s of 100 s).
    DeadInMargin,
    /// 110 % in: expired on the server too.
    Expired,
    /// At 10 s the server forgot every token and a request carrying it was answered 401.
    Revoked,
}

/// What the mock answers the next token requests with.
#[derive(Debug, Clone, Copy)]
enum F {
    /// That HTTP status, vendor code -1.
    Status(u16),
    /// That HTTP status with that vendor code.
    Code(u16, i64),
    /// HTTP 200, `application/json`, this exact body.
    Body(&'static str),
    /// HTTP 200 with a body one byte over 1 MiB.
    Huge,
    Hang,
    CutOff,
}

/// What one caller gets.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A response with this HTTP status.
    Status(u16),
    /// `Error::Rejected` with this exchange, HTTP status and vendor code.
    Rejected(Exchange, u16, i64),
    /// `Error::InvalidResponse` with this exchange, the reason containing the text.
    Invalid(Exchange, &'static str),
    Transport(Exchange),
    /// `Error::Timeout` after this many seconds.
    Timeout(Exchange, u64),
    MissingCredentials,
}

/// How long a caller waited on the paused clock.
#[derive(Debug, Clone, Copy)]
enum Waits {
    /// Not at all: answered at the instant it called.
    Not,
    /// Exactly this many milliseconds.
    Ms(u64),
}

/// An expected count: exact, or a range where the backoff jitter makes a range honest.
#[derive(Debug, Clone, Copy)]
enum Count {
    Is(u64),
    Within(u64, u64),
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Let this many milliseconds pass.
    Sleep(u64),
    /// One caller, awaited: what it gets and how long it waited.
    Call(Expect, Waits),
    /// One caller that gives up (is dropped) after this many milliseconds, unanswered.
    GiveUp(u64),
    /// This many callers, each called at once (token chosen now) and left to run.
    Launch(usize),
    /// Awaits every launched caller; each must get this.
    Land(Expect),
    /// `mock.revoke_all()`.
    Revoke,
    /// Queue a fault for the next `n` token requests.
    Fail(F, usize),
    ClearFaults,
    /// Latency of `/v1/execute` requests, in milliseconds (keeps requests in flight).
    QueryLatency(u64),
    /// Logins and refreshes since the steps began, exactly, at this point.
    Counts(u64, u64),
}

struct Row {
    name: &'static str,
    auth: Auth,
    /// Token lifetime, seconds (both what the mock issues and an initial token's).
    lifetime: u64,
    refresh_at: f64,
    /// `TokenRefreshLayer::refresh_timeout`, seconds.
    timeout: u64,
    /// The mock reports authentication failures as HTTP 200 + vendor code.
    in_band: bool,
    start: Start,
    /// Token request latency once the steps begin, milliseconds.
    latency: u64,
    /// Faults queued once the steps begin.
    faults: &'static [(F, usize)],
    steps: &'static [Step],
    /// Token requests from the steps on (setup excluded), once they are done.
    logins: Count,
    refreshes: Count,
    /// Queries refused as carrying a revoked or unknown token (-1205); a query refused as
    /// carrying an *expired* token (-1208) always fails the row.
    refused: u64,
}

const DEFAULT: Row = Row {
    name: "",
    auth: Auth::Credentials,
    lifetime: 100,
    refresh_at: 0.5,
    timeout: 30,
    in_band: false,
    start: Start::NoToken,
    latency: 200,
    faults: &[],
    steps: &[],
    logins: Count::Is(0),
    refreshes: Count::Is(0),
    refused: 0,
};

use Count::{Is, Within};
use Expect::{Invalid, MissingCredentials, Rejected, Status, Timeout, Transport};
use Step::{Call, ClearFaults, Counts, Fail, GiveUp, Land, Launch, QueryLatency, Revoke, Sleep};
use Waits::{Ms, Not};

const OK: Expect = Status(200);

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

const ROWS: &[Row] = &[
    // --- No token yet: the caller waits for the one login. ---
    Row {
        name: "no token: login ok, caller waits for it",
        steps: &[Call(OK, Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: 50 concurrent callers share one login",
        steps: &[Launch(50), Land(OK)],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: login 503 -> Rejected(login, 503)",
        faults: &[(F::Status(503), 1)],
        steps: &[Call(Rejected(Login, 503, -1), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: login 503, second caller inside the backoff fails fast, recovery after it",
        faults: &[(F::Status(503), 1)],
        steps: &[
            Call(Rejected(Login, 503, -1), Ms(200)),
            Sleep(500),
            Call(Rejected(Login, 503, -1), Not),
            Counts(1, 0),
            Sleep(1_000),
            Call(OK, Ms(200)),
        ],
        logins: Is(2),
        ..DEFAULT
    },
    Row {
        name: "no token: two login failures, the backoff doubles (1 s then 2 s, +-25%)",
        faults: &[(F::Status(500), 2)],
        steps: &[
            Call(Rejected(Login, 500, -1), Ms(200)),
            // 1.5 s: past the first backoff (<= 1.45 s).
            Sleep(1_300),
            Call(Rejected(Login, 500, -1), Ms(200)),
            // 2.7 s: inside the second backoff (>= 3.2 s).
            Sleep(1_000),
            Call(Rejected(Login, 500, -1), Not),
            Counts(2, 0),
            // 4.3 s: past the second backoff (<= 4.2 s).
            Sleep(1_600),
            Call(OK, Ms(200)),
        ],
        logins: Is(3),
        ..DEFAULT
    },
    Row {
        name: "no token: login -304 as HTTP 401",
        faults: &[(F::Code(401, -304), 1)],
        steps: &[Call(Rejected(Login, 401, -304), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: login -304 in band (HTTP 200)",
        in_band: true,
        faults: &[(F::Code(200, -304), 1)],
        steps: &[Call(Rejected(Login, 200, -304), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: login answer is not JSON",
        faults: &[(F::Body("<html>gateway says hi</html>"), 1)],
        steps: &[Call(Invalid(Login, "not a token answer"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: login answer lacks access_token",
        faults: &[(
            F::Body(
                r#"{"expires_in":60,"status":{"reason":"ok","sql_state":"00000","vendor_code":0}}"#,
            ),
            1,
        )],
        steps: &[Call(Invalid(Login, "access_token is missing"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: access_token with CR/LF (header injection)",
        faults: &[(
            F::Body(r#"{"access_token":"abc\r\nX-Evil: 1","expires_in":60}"#),
            1,
        )],
        steps: &[Call(Invalid(Login, "access_token refused"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: access_token with a space",
        faults: &[(F::Body(r#"{"access_token":"abc def","expires_in":60}"#), 1)],
        steps: &[Call(Invalid(Login, "access_token refused"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: access_token with non-ASCII",
        faults: &[(F::Body(r#"{"access_token":"tök","expires_in":60}"#), 1)],
        steps: &[Call(Invalid(Login, "access_token refused"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: expires_in 0",
        faults: &[(F::Body(r#"{"access_token":"abc","expires_in":0}"#), 1)],
        steps: &[Call(Invalid(Login, "expires_in is not positive"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: expires_in negative",
        faults: &[(F::Body(r#"{"access_token":"abc","expires_in":-60}"#), 1)],
        steps: &[Call(Invalid(Login, "expires_in is not positive"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: expires_in missing",
        faults: &[(F::Body(r#"{"access_token":"abc"}"#), 1)],
        steps: &[Call(Invalid(Login, "expires_in is missing"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: expires_in is a string",
        faults: &[(F::Body(r#"{"access_token":"abc","expires_in":"3600"}"#), 1)],
        steps: &[Call(Invalid(Login, "expires_in is not a number"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        // The token is not one the mock issued, so the query is refused (-1205) and the
        // 401 retires it: the next caller logs in again.
        name: "no token: expires_in 1e300 is accepted (clamped), no overflow",
        faults: &[(F::Body(r#"{"access_token":"huge-1e300","expires_in":1e300}"#), 1)],
        steps: &[Call(Status(401), Ms(200)), Call(OK, Ms(200))],
        logins: Is(2),
        refused: 1,
        ..DEFAULT
    },
    Row {
        name: "no token: expires_in i64::MAX is accepted (clamped), no overflow",
        faults: &[(
            F::Body(r#"{"access_token":"huge-i64","expires_in":9223372036854775807}"#),
            1,
        )],
        steps: &[Call(Status(401), Ms(200)), Call(OK, Ms(200))],
        logins: Is(2),
        refused: 1,
        ..DEFAULT
    },
    Row {
        name: "no token: login answer over 1 MiB",
        faults: &[(F::Huge, 1)],
        steps: &[Call(Invalid(Login, "larger than 1 MiB"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: login hangs -> Timeout after the 5 s refresh timeout",
        timeout: 5,
        faults: &[(F::Hang, 1)],
        steps: &[Call(Timeout(Login, 5), Ms(5_000))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: login latency 40 s > default 30 s timeout; next caller fails fast",
        latency: 40_000,
        steps: &[
            Call(Timeout(Login, 30), Ms(30_000)),
            Sleep(500),
            Call(Timeout(Login, 30), Not),
        ],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: login answer cut off mid-body -> Transport",
        faults: &[(F::CutOff, 1)],
        steps: &[Call(Transport(Login), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token, no credentials -> MissingCredentials at once",
        auth: Auth::Nothing,
        steps: &[Call(MissingCredentials, Not)],
        ..DEFAULT
    },
    Row {
        name: "no token: latency near the lifetime -> every token dead on arrival",
        // 10 s tokens (dead 9 s after sending), 9.5 s latency: three rounds, then an error.
        lifetime: 10,
        latency: 9_500,
        steps: &[Call(Invalid(Refresh, "dead on arrival"), Ms(28_500))],
        logins: Is(1),
        refreshes: Is(2),
        ..DEFAULT
    },
    Row {
        name: "no token: a caller that gives up does not strand the login",
        latency: 5_000,
        steps: &[
            GiveUp(1_000),
            Counts(1, 0),
            Sleep(4_100),
            Call(OK, Not),
        ],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "no token: two callers give up, a third joins the same login",
        latency: 5_000,
        steps: &[GiveUp(1_000), GiveUp(1_000), Call(OK, Ms(3_000))],
        logins: Is(1),
        ..DEFAULT
    },
    // --- Fresh token: sent at once, no token request even with faults queued. ---
    Row {
        name: "fresh: sent at once, a queued hang is never touched",
        start: Start::Fresh,
        faults: &[(F::Hang, 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        ..DEFAULT
    },
    // --- Due: the caller goes out at once and starts one background refresh. ---
    Row {
        name: "due: background refresh, callers never wait, one refresh",
        start: Start::Due,
        latency: 5_000,
        steps: &[
            Call(OK, Not),
            Call(OK, Not),
            Counts(0, 1),
            Sleep(5_001),
            Call(OK, Not),
        ],
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "due: refresh 503 keeps serving the valid token, retried after the backoff",
        start: Start::Due,
        faults: &[(F::Status(503), 1)],
        steps: &[
            Call(OK, Not),
            Sleep(500),
            Call(OK, Not),
            Counts(0, 1),
            Sleep(1_500),
            Call(OK, Not),
        ],
        refreshes: Is(2),
        ..DEFAULT
    },
    Row {
        name: "due: refresh hangs (5 s timeout), valid token kept, retried",
        start: Start::Due,
        timeout: 5,
        faults: &[(F::Hang, 1)],
        steps: &[
            Call(OK, Not),
            Sleep(3_000),
            Call(OK, Not),
            Counts(0, 1),
            Sleep(4_000),
            Call(OK, Not),
        ],
        refreshes: Is(2),
        ..DEFAULT
    },
    Row {
        name: "due: refresh cut off, valid token kept, retried",
        start: Start::Due,
        faults: &[(F::CutOff, 1)],
        steps: &[Call(OK, Not), Counts(0, 1), Sleep(2_000), Call(OK, Not)],
        refreshes: Is(2),
        ..DEFAULT
    },
    Row {
        name: "due: refresh answer not JSON, valid token kept, retried",
        start: Start::Due,
        faults: &[(F::Body("not json at all"), 1)],
        steps: &[Call(OK, Not), Counts(0, 1), Sleep(2_000), Call(OK, Not)],
        refreshes: Is(2),
        ..DEFAULT
    },
    Row {
        name: "due: refresh answer over 1 MiB, valid token kept, retried",
        start: Start::Due,
        faults: &[(F::Huge, 1)],
        steps: &[Call(OK, Not), Counts(0, 1), Sleep(2_000), Call(OK, Not)],
        refreshes: Is(2),
        ..DEFAULT
    },
    Row {
        name: "due: refresh -733 in band (HTTP 200) -> log in again",
        start: Start::Due,
        in_band: true,
        faults: &[(F::Code(200, -733), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "due: refresh -733 as HTTP 401 -> log in again",
        start: Start::Due,
        faults: &[(F::Code(401, -733), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "due: refresh -1208 in band -> log in again",
        start: Start::Due,
        faults: &[(F::Code(200, -1208), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "due: refresh -304 as HTTP 401 -> log in again",
        start: Start::Due,
        faults: &[(F::Code(401, -304), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "due: refresh HTTP 403 -> log in again",
        start: Start::Due,
        faults: &[(F::Status(403), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "due: refresh vendor -42 (not a token error) -> no login, retried",
        start: Start::Due,
        faults: &[(F::Code(200, -42), 1)],
        steps: &[Call(OK, Not), Counts(0, 1), Sleep(2_000), Call(OK, Not)],
        refreshes: Is(2),
        ..DEFAULT
    },
    Row {
        name: "due: initial token, no credentials, refreshed in the background",
        auth: Auth::InitialToken,
        start: Start::Due,
        steps: &[Call(OK, Not), Sleep(300), Call(OK, Not)],
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        // Background attempts at 61, +1, +2, +4, +8, +16 s (+-25%), never later than the
        // dead point 95: 6 or 7 attempts depending on the jitter, the last one at 95.
        name: "due: initial token, every refresh refused, no latency: retried until dead, then fail fast",
        auth: Auth::InitialToken,
        start: Start::Due,
        latency: 0,
        faults: &[(F::Code(401, -1208), 1_000)],
        steps: &[
            Call(OK, Not),
            Sleep(35_000),
            Call(Rejected(Refresh, 401, -1208), Not),
        ],
        refreshes: Within(6, 7),
        ..DEFAULT
    },
    Row {
        name: "due: every refresh 503 until dead: valid token served, then cached error, then login after the backoff",
        start: Start::Due,
        faults: &[(F::Status(503), 1_000)],
        steps: &[
            Call(OK, Not),
            Sleep(20_000),
            Call(OK, Not),
            // 96 s: dead; the last attempt failed at 95.2 s, its backoff is >= 22.5 s.
            Sleep(15_000),
            Call(Rejected(Refresh, 503, -1), Not),
            ClearFaults,
            // 136 s: past any 30 s +25% backoff; the token expired: log in.
            Sleep(40_000),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Within(6, 7),
        ..DEFAULT
    },
    Row {
        name: "due: 503 then revoked during the backoff: the 401 cuts the backoff short",
        start: Start::Due,
        faults: &[(F::Status(503), 1)],
        steps: &[
            Call(OK, Not),
            Sleep(300),
            Revoke,
            Call(Status(401), Not),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        refused: 1,
        ..DEFAULT
    },
    // --- Dead in the margin: valid on the server, but never sent; callers wait. ---
    Row {
        name: "dead in margin: caller waits for one refresh",
        start: Start::DeadInMargin,
        steps: &[Call(OK, Ms(200))],
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "dead in margin: 20 callers share one refresh",
        start: Start::DeadInMargin,
        steps: &[Launch(20), Land(OK)],
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "dead in margin: refresh 503 -> waiter gets it, next caller fails fast, recovery after the backoff",
        start: Start::DeadInMargin,
        faults: &[(F::Status(503), 1)],
        steps: &[
            Call(Rejected(Refresh, 503, -1), Ms(200)),
            Sleep(500),
            Call(Rejected(Refresh, 503, -1), Not),
            Counts(0, 1),
            Sleep(1_000),
            Call(OK, Ms(200)),
        ],
        refreshes: Is(2),
        ..DEFAULT
    },
    Row {
        name: "dead in margin: refresh -1208 (401) -> login, caller waits for both",
        start: Start::DeadInMargin,
        faults: &[(F::Code(401, -1208), 1)],
        steps: &[Call(OK, Ms(400))],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "dead in margin: refresh refused, then the login 502s -> the login's error",
        start: Start::DeadInMargin,
        faults: &[(F::Code(401, -1208), 1), (F::Status(502), 1)],
        steps: &[Call(Rejected(Login, 502, -1), Ms(400))],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "dead in margin: refresh vendor -42 in band -> error, no login",
        start: Start::DeadInMargin,
        faults: &[(F::Code(200, -42), 1)],
        steps: &[Call(Rejected(Refresh, 200, -42), Ms(200))],
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "dead in margin: refresh hangs -> Timeout at 5 s; after the backoff, expired: login",
        start: Start::DeadInMargin,
        timeout: 5,
        faults: &[(F::Hang, 1)],
        steps: &[
            Call(Timeout(Refresh, 5), Ms(5_000)),
            Sleep(1_500),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    // --- Expired: log in directly, no refresh that would only be refused. ---
    Row {
        name: "expired: log in directly",
        start: Start::Expired,
        steps: &[Call(OK, Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "expired: 30 callers share one login, none sends the expired token",
        start: Start::Expired,
        steps: &[Launch(30), Land(OK)],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "expired: initial token, no credentials -> refresh refused -1208, then fail fast",
        auth: Auth::InitialToken,
        start: Start::Expired,
        steps: &[
            Call(Rejected(Refresh, 401, -1208), Ms(200)),
            Sleep(500),
            Call(Rejected(Refresh, 401, -1208), Not),
        ],
        refreshes: Is(1),
        ..DEFAULT
    },
    // --- Revoked: a 401 retired the token. ---
    Row {
        name: "revoked: log in directly",
        start: Start::Revoked,
        steps: &[Call(OK, Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    Row {
        name: "revoked: initial token, no credentials -> refresh refused -1205",
        auth: Auth::InitialToken,
        start: Start::Revoked,
        steps: &[Call(Rejected(Refresh, 401, -1205), Ms(200))],
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "fresh, revoked on the server: 10 queries in flight get 401 -> exactly one new token",
        start: Start::Fresh,
        steps: &[
            Revoke,
            QueryLatency(1_000),
            Launch(10),
            Sleep(1_001),
            QueryLatency(0),
            Call(OK, Ms(200)),
            Land(Status(401)),
        ],
        logins: Is(1),
        refused: 10,
        ..DEFAULT
    },
    Row {
        name: "fresh, revoked: a 401 landing after the new token does not retire the new token",
        start: Start::Fresh,
        steps: &[
            Revoke,
            QueryLatency(1_000),
            Launch(1),
            Sleep(500),
            Launch(4),
            Sleep(501),
            QueryLatency(0),
            Call(OK, Ms(200)),
            Sleep(400),
            Call(OK, Not),
            Land(Status(401)),
        ],
        logins: Is(1),
        refused: 5,
        ..DEFAULT
    },
    Row {
        // Setup retired the token with a 401 while no flight ran. That revocation is
        // handled by the login below; it must not also cut short a later flight's backoff.
        name: "revoked then recovered: a later refresh failure still waits out its backoff",
        start: Start::Revoked,
        steps: &[
            Call(OK, Ms(200)),
            // 70.2 s: the new token (sent at 10 s) is due.
            Sleep(60_000),
            Fail(F::Status(503), 1),
            Call(OK, Not),
            Sleep(500),
            Counts(1, 1),
            Sleep(1_500),
        ],
        logins: Is(1),
        refreshes: Is(2),
        ..DEFAULT
    },
    // --- Timing knobs. ---
    Row {
        name: "lifetime counts from when the login was sent, not answered",
        // Sent at 0, answered at 3: dead at 95, not 98. refresh_at 0: no due phase.
        refresh_at: 0.0,
        latency: 3_000,
        steps: &[
            Call(OK, Ms(3_000)),
            Sleep(91_900),
            Call(OK, Not),
            Sleep(101),
            Call(OK, Ms(3_000)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "refresh_at 0.8: not due at 19.2 s, due by 30.1 s",
        refresh_at: 0.8,
        steps: &[
            Call(OK, Ms(200)),
            Sleep(19_000),
            Call(OK, Not),
            Counts(1, 0),
            Sleep(10_900),
            Call(OK, Not),
            Sleep(300),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "refresh_at 0.9: not due at 9.9 s, due by 20.1 s",
        refresh_at: 0.9,
        steps: &[
            Call(OK, Ms(200)),
            Sleep(9_700),
            Call(OK, Not),
            Counts(1, 0),
            Sleep(10_200),
            Call(OK, Not),
            Sleep(300),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "20 s token: the margin is 2 s (a tenth), not 5 s",
        lifetime: 20,
        refresh_at: 0.0,
        steps: &[
            Call(OK, Ms(200)),
            Sleep(17_799),
            Call(OK, Not),
            Sleep(2),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    Row {
        name: "1 s token: the margin is 100 ms",
        lifetime: 1,
        refresh_at: 0.0,
        steps: &[
            Call(OK, Ms(200)),
            Sleep(600),
            Call(OK, Not),
            Sleep(101),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
];

// ---------------------------------------------------------------------------
// The inner service: the mock, with query latency and a tally of refusals
// ---------------------------------------------------------------------------

type Body = BoxBody<Bytes, BoxError>;

/// The mock behind an optional `/v1/execute` latency, counting refused queries by cause.
#[derive(Clone)]
struct Server {
    mock: MockOcient,
    query_latency_ms: Arc<AtomicU64>,
    /// Queries answered -1208: sent with an expired token.
    expired: Arc<AtomicU64>,
    /// Queries answered with any other non-zero vendor code (-1205: revoked or unknown).
    refused: Arc<AtomicU64>,
}

impl Server {
    fn new(mock: MockOcient) -> Self {
        Server {
            mock,
            query_latency_ms: Arc::default(),
            expired: Arc::default(),
            refused: Arc::default(),
        }
    }
}

impl Service<Request<Full<Bytes>>> for Server {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let is_query = request.uri().path().starts_with("/v1/execute/");
        let latency = Duration::from_millis(self.query_latency_ms.load(Ordering::Relaxed));
        let this = self.clone();
        Box::pin(async move {
            if is_query && !latency.is_zero() {
                sleep(latency).await;
            }
            let mut mock = this.mock.clone();
            let response = match mock.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if !is_query {
                return Ok(response.map(BodyExt::boxed));
            }
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let answer: serde_json::Value = serde_json::from_slice(&bytes)?;
            match answer["status"]["vendor_code"].as_i64() {
                Some(0) => {}
                Some(-1208) => {
                    this.expired.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    this.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            let body = Full::new(bytes).map_err(|never: Infallible| match never {});
            Ok(Response::from_parts(parts, body.boxed()))
        })
    }
}

// ---------------------------------------------------------------------------
// Running a row
// ---------------------------------------------------------------------------

const HOUR: Duration = Duration::from_secs(3600);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fault(f: F) -> Fault {
    let code = |n: u16| StatusCode::from_u16(n).expect("a valid HTTP status");
    match f {
        F::Status(status) => Fault::Status(code(status)),
        F::Code(status, vendor_code) => Fault::VendorCode {
            http: code(status),
            vendor_code,
            sql_state: match vendor_code {
                -733 => "42502",
                -1204 => "08003",
                -304 | -1208..=-1205 => "08004",
                _ => "XX000",
            },
        },
        F::Body(body) => Fault::Body {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from_static(body.as_bytes()),
        },
        F::Huge => Fault::Body {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from(vec![b' '; 1024 * 1024 + 1]),
        },
        F::Hang => Fault::Hang,
        F::CutOff => Fault::CutOff,
    }
}

/// Logs in on the mock directly, as whoever hands the layer its initial token would.
async fn seed_token(mock: &MockOcient) -> String {
    let login = Request::post(format!("{BASE}/v1/login"))
        .header("content-type", "application/json")
        .body(Full::<Bytes>::from(
            r#"{"username":"jdoe","password":"secret","database":"retail_analytics"}"#,
        ))
        .unwrap();
    let response = mock.clone().oneshot(login).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

/// Lets spawned work (a background refresh just started, a landed query) run, without
/// moving the clock.
async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

fn describe(got: &Result<Response<Body>, BoxError>) -> String {
    match got {
        Ok(response) => format!("HTTP {}", response.status()),
        Err(error) => match error.downcast_ref::<Error>() {
            Some(error) => format!("{error:?}"),
            None => format!("a foreign error: {error}"),
        },
    }
}

fn matches(expect: Expect, got: &Result<Response<Body>, BoxError>) -> bool {
    let error = match got {
        Ok(response) => return matches!(expect, Status(s) if response.status().as_u16() == s),
        Err(error) => match error.downcast_ref::<Error>() {
            Some(error) => error,
            None => return false,
        },
    };
    match (expect, error) {
        (
            Rejected(x, s, v),
            Error::Rejected {
                exchange,
                status,
                vendor_code,
                ..
            },
        ) => *exchange == x && status.as_u16() == s && *vendor_code == v,
        (Invalid(x, text), Error::InvalidResponse { exchange, reason }) => {
            *exchange == x && reason.contains(text)
        }
        (Transport(x), Error::Transport { exchange, .. }) => *exchange == x,
        (Timeout(x, secs), Error::Timeout { exchange, after }) => {
            *exchange == x && *after == Duration::from_secs(secs)
        }
        (MissingCredentials, Error::MissingCredentials) => true,
        _ => false,
    }
}

fn count_ok(count: Count, actual: u64) -> bool {
    match count {
        Is(n) => actual == n,
        Within(low, high) => (low..=high).contains(&actual),
    }
}

struct Rig {
    mock: MockOcient,
    server: Server,
    service: TokenRefresh<Server>,
}

impl Rig {
    async fn call(&self) -> Result<Result<Response<Body>, BoxError>, String> {
        timeout(HOUR, send(&self.service, query()))
            .await
            .map_err(|_| "a caller waited an hour".to_owned())
    }
}

/// A fresh mock and layer, brought to the row's start state.
async fn rig(row: &Row) -> Result<Rig, String> {
    let lifetime = Duration::from_secs(row.lifetime);
    let mock = MockOcient::new()
        .token_lifetime(lifetime)
        .errors_in_band(row.in_band);
    let server = Server::new(mock.clone());
    let ocient = match row.auth {
        Auth::Credentials => auth(),
        Auth::InitialToken => OcientAuth::new(BASE.parse().unwrap())
            .database("retail_analytics")
            .initial_token(seed_token(&mock).await, lifetime),
        Auth::Nothing => OcientAuth::new(BASE.parse().unwrap()).database("retail_analytics"),
    };
    let layer = TokenRefreshLayer::new(ocient)
        .refresh_at(row.refresh_at)
        .refresh_timeout(Duration::from_secs(row.timeout));
    let rig = Rig {
        service: layer.layer(server.clone()),
        mock,
        server,
    };
    let margin = (lifetime / 10).min(Duration::from_secs(5));
    let at = match row.start {
        Start::NoToken => return Ok(rig),
        Start::Fresh | Start::Revoked => lifetime / 10,
        Start::Due => lifetime.mul_f64(0.61),
        Start::DeadInMargin => lifetime - margin + margin / 5,
        Start::Expired => lifetime.mul_f64(1.1),
    };
    let first = rig.call().await?;
    if !matches(OK, &first) {
        return Err(format!("setup: first call got {}", describe(&first)));
    }
    sleep(at).await;
    if let Start::Revoked = row.start {
        rig.mock.revoke_all();
        let refused = rig.call().await?;
        if !matches(Status(401), &refused) {
            return Err(format!("setup: revoked call got {}", describe(&refused)));
        }
    }
    Ok(rig)
}

struct Tally {
    counters: Counters,
    expired: u64,
    refused: u64,
}

fn tally(rig: &Rig) -> Tally {
    Tally {
        counters: rig.mock.counters(),
        expired: rig.server.expired.load(Ordering::Relaxed),
        refused: rig.server.refused.load(Ordering::Relaxed),
    }
}

async fn run(row: &Row) -> Result<(), String> {
    let rig = rig(row).await?;
    rig.mock.set_latency(ms(row.latency));
    for &(f, times) in row.faults {
        rig.mock.fail_token_requests(fault(f), times);
    }
    let base = tally(&rig);
    let since = |rig: &Rig| {
        let now = tally(rig);
        (
            now.counters.logins - base.counters.logins,
            now.counters.refreshes - base.counters.refreshes,
        )
    };
    let mut launched = JoinSet::new();
    for (i, &step) in row.steps.iter().enumerate() {
        let at = format!("step {i} ({step:?})");
        match step {
            Sleep(n) => sleep(ms(n)).await,
            Call(expect, waits) => {
                let before = Instant::now();
                let got = rig.call().await.map_err(|e| format!("{at}: {e}"))?;
                let waited = before.elapsed();
                if !matches(expect, &got) {
                    return Err(format!("{at}: got {}", describe(&got)));
                }
                let expected = match waits {
                    Not => Duration::ZERO,
                    Ms(n) => ms(n),
                };
                if waited != expected {
                    return Err(format!("{at}: waited {waited:?}, expected {expected:?}"));
                }
            }
            GiveUp(n) => {
                let before = Instant::now();
                if let Ok(got) = timeout(ms(n), send(&rig.service, query())).await {
                    return Err(format!(
                        "{at}: answered before giving up: {}",
                        describe(&got)
                    ));
                }
                if before.elapsed() != ms(n) {
                    return Err(format!("{at}: gave up after {:?}", before.elapsed()));
                }
            }
            Launch(n) => {
                for _ in 0..n {
                    let mut service = rig.service.clone();
                    let ready = service.ready().await.map_err(|e| format!("{at}: {e}"))?;
                    launched.spawn(timeout(HOUR, ready.call(query())));
                }
            }
            Land(expect) => {
                while let Some(joined) = launched.join_next().await {
                    let got = joined
                        .map_err(|e| format!("{at}: a caller panicked: {e}"))?
                        .map_err(|_| format!("{at}: a caller waited an hour"))?;
                    if !matches(expect, &got) {
                        return Err(format!("{at}: a caller got {}", describe(&got)));
                    }
                }
            }
            Revoke => rig.mock.revoke_all(),
            Fail(f, times) => rig.mock.fail_token_requests(fault(f), times),
            ClearFaults => rig.mock.clear_faults(),
            QueryLatency(n) => rig.server.query_latency_ms.store(n, Ordering::Relaxed),
            Counts(logins, refreshes) => {
                settle().await;
                let actual = since(&rig);
                if actual != (logins, refreshes) {
                    return Err(format!(
                        "{at}: (logins, refreshes) = {actual:?}, expected ({logins}, {refreshes})"
                    ));
                }
            }
        }
    }
    if !launched.is_empty() {
        return Err("launched callers never landed: add a Land step".to_owned());
    }
    settle().await;
    let (logins, refreshes) = since(&rig);
    let now = tally(&rig);
    let mut wrong = Vec::new();
    if !count_ok(row.logins, logins) {
        wrong.push(format!("logins {logins}, expected {:?}", row.logins));
    }
    if !count_ok(row.refreshes, refreshes) {
        wrong.push(format!(
            "refreshes {refreshes}, expected {:?}",
            row.refreshes
        ));
    }
    let expired = now.expired - base.expired;
    if expired != 0 {
        wrong.push(format!("{expired} queries went out with an expired token"));
    }
    let refused = now.refused - base.refused;
    if refused != row.refused {
        wrong.push(format!(
            "{refused} queries refused as revoked/unknown, expected {}",
            row.refused
        ));
    }
    let no_token = now.counters.queries_no_token - base.counters.queries_no_token;
    if no_token != 0 {
        wrong.push(format!("{no_token} queries went out without a token"));
    }
    let bad = now.counters.queries_bad_token - base.counters.queries_bad_token;
    if bad != expired + refused {
        wrong.push(format!(
            "the mock counted {bad} bad-token queries, the tally {}",
            expired + refused
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

#[tokio::test(start_paused = true)]
async fn scenario_table() {
    assert!(ROWS.len() >= 30, "the table has {} rows", ROWS.len());
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for row in ROWS {
        assert!(names.insert(row.name), "two rows named {:?}", row.name);
        if let Err(why) = run(row).await {
            failures.push(format!("  row {:?}: {why}", row.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n")
    );
}
