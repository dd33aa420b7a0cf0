//! The table's vocabulary: who the layer is, where the token starts, what the server
//! answers, what the caller does and what it must get.

use tower_token_refresh::Exchange;

pub use Exchange::{Login, Refresh};

/// Who the layer is.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    /// `jdoe` / `secret`: can log in.
    Credentials,
    /// A token the mock issued at 0, handed over with no credentials.
    InitialToken,
    /// Neither credentials nor a token.
    Nothing,
}

/// Where the token is when the steps begin (reached with a login at 0, no latency).
#[derive(Debug, Clone, Copy)]
pub enum Start {
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
pub enum F {
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
pub enum Expect {
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
pub enum Waits {
    /// Not at all: answered at the instant it called.
    Not,
    /// Exactly this many milliseconds.
    Ms(u64),
}

/// An expected count: exact, or a range where the backoff jitter makes a range honest.
#[derive(Debug, Clone, Copy)]
pub enum Count {
    Is(u64),
    Within(u64, u64),
}

#[derive(Debug, Clone, Copy)]
pub enum Step {
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

pub struct Row {
    pub name: &'static str,
    pub auth: Auth,
    /// Token lifetime, seconds (both what the mock issues and an initial token's).
    pub lifetime: u64,
    pub refresh_at: f64,
    /// `TokenRefreshLayer::refresh_timeout`, seconds.
    pub timeout: u64,
    /// The mock reports authentication failures as HTTP 200 + vendor code.
    pub in_band: bool,
    pub start: Start,
    /// Token request latency once the steps begin, milliseconds.
    pub latency: u64,
    /// Faults queued once the steps begin.
    pub faults: &'static [(F, usize)],
    pub steps: &'static [Step],
    /// Token requests from the steps on (setup excluded), once they are done.
    pub logins: Count,
    pub refreshes: Count,
    /// Queries refused as carrying a revoked or unknown token (-1205); a query refused as
    /// carrying an *expired* token (-1208) always fails the row.
    pub refused: u64,
}

pub const DEFAULT: Row = Row {
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

pub use Count::{Is, Within};
pub use Expect::{Invalid, MissingCredentials, Rejected, Status, Timeout, Transport};
pub use Step::{
    Call, ClearFaults, Counts, Fail, GiveUp, Land, Launch, QueryLatency, Revoke, Sleep,
};
pub use Waits::{Ms, Not};

pub const OK: Expect = Status(200);
