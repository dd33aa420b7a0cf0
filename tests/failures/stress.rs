//! A seeded, reproducible storm on tokio's paused clock: over 100,000 requests across
//! hundreds of short-lived tokens, with failing, hanging and refused token requests,
//! random latency, revocations and callers that give up.
//!
//! `STRESS_SEED=<n> cargo test --all-features --test failures stress -- --nocapture` replays a
//! run.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Response, StatusCode};
use ocient_mock::{Fault, MockOcient};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, Instant};
use tower::{BoxError, Layer};
use tower_token_refresh::{Error, TokenRefreshLayer};

use crate::common::tally::{Body, TalliedMock};
use crate::common::{auth, query, send};

const DEFAULT_SEED: u64 = 0x5EED_0F70_CE00_u64;
/// Requests to issue, at least.
const REQUESTS: u64 = 100_000;
/// Token generations the run must see, at least.
const GENERATIONS: u64 = 500;
/// Login and refresh timeout: a hung token request fails after this.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a caller that does not give up may wait: three rounds of a refused refresh
/// plus a login, each bounded by the refresh timeout, fit with a wide margin.
const CALLER_LIMIT: Duration = Duration::from_secs(120);
/// The whole run, on the paused clock (about four virtual hours are expected).
const RUN_LIMIT: Duration = Duration::from_secs(10 * 24 * 3600);

// ---------------------------------------------------------------------------
// A small, seeded RNG
// ---------------------------------------------------------------------------

/// splitmix64: tiny, fast, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

fn seed() -> u64 {
    match std::env::var("STRESS_SEED") {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("STRESS_SEED={text:?} is not a u64"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

// ---------------------------------------------------------------------------
// What the callers got
// ---------------------------------------------------------------------------

enum Outcome {
    Ok,
    Unauthorized,
    OtherStatus,
    TokenError(&'static str),
    Foreign(String),
    Cancelled,
    Hung,
}

#[derive(Debug, Default)]
struct Stats {
    ok: u64,
    unauthorized: u64,
    other_status: u64,
    rejected: u64,
    invalid: u64,
    transport: u64,
    timeout: u64,
    other_token_error: u64,
    cancelled: u64,
    hung: u64,
    foreign: Vec<String>,
}

impl Stats {
    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Unauthorized => self.unauthorized += 1,
            Outcome::OtherStatus => self.other_status += 1,
            Outcome::TokenError("rejected") => self.rejected += 1,
            Outcome::TokenError("invalid") => self.invalid += 1,
            Outcome::TokenError("transport") => self.transport += 1,
            Outcome::TokenError("timeout") => self.timeout += 1,
            Outcome::TokenError(_) => self.other_token_error += 1,
            Outcome::Cancelled => self.cancelled += 1,
            Outcome::Hung => self.hung += 1,
            Outcome::Foreign(error) => self.foreign.push(error),
        }
    }

    fn total(&self) -> u64 {
        self.ok
            + self.unauthorized
            + self.other_status
            + self.rejected
            + self.invalid
            + self.transport
            + self.timeout
            + self.other_token_error
            + self.cancelled
            + self.hung
            + self.foreign.len() as u64
    }
}

fn classify(got: Result<Response<Body>, BoxError>) -> Outcome {
    match got {
        Ok(response) => match response.status() {
            StatusCode::OK => Outcome::Ok,
            StatusCode::UNAUTHORIZED => Outcome::Unauthorized,
            _ => Outcome::OtherStatus,
        },
        Err(error) => match error.downcast_ref::<Error>() {
            Some(Error::Rejected { .. }) => Outcome::TokenError("rejected"),
            Some(Error::InvalidResponse { .. }) => Outcome::TokenError("invalid"),
            Some(Error::Transport { .. }) => Outcome::TokenError("transport"),
            Some(Error::Timeout { .. }) => Outcome::TokenError("timeout"),
            Some(_) => Outcome::TokenError("other"),
            None => Outcome::Foreign(error.to_string()),
        },
    }
}

fn random_fault(rng: &mut Rng) -> (Fault, &'static str) {
    match rng.range(0, 4) {
        0 => (Fault::Status(StatusCode::SERVICE_UNAVAILABLE), "503"),
        1 => (Fault::Status(StatusCode::INTERNAL_SERVER_ERROR), "500"),
        2 => (Fault::Hang, "hang"),
        3 => (
            Fault::VendorCode {
                http: StatusCode::UNAUTHORIZED,
                vendor_code: -733,
                sql_state: "42502",
            },
            "-733/401",
        ),
        _ => (
            Fault::VendorCode {
                http: StatusCode::OK,
                vendor_code: -733,
                sql_state: "42502",
            },
            "-733/200",
        ),
    }
}

// ---------------------------------------------------------------------------
// The storm
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Knobs {
    ticks: u64,
    issued: u64,
    faults: u64,
    faulted_requests: u64,
    revocations: u64,
    latency_changes: u64,
    lifetime_changes: u64,
}

async fn storm(seed: u64, mock: MockOcient, server: TalliedMock) -> (Knobs, Stats) {
    let layer = TokenRefreshLayer::new(auth()).refresh_timeout(REFRESH_TIMEOUT);
    let service = layer.layer(server);
    let mut rng = Rng(seed);
    let mut knobs = Knobs::default();
    let mut stats = Stats::default();
    let mut callers = JoinSet::new();
    while knobs.issued < REQUESTS {
        knobs.ticks += 1;
        if rng.chance(15) {
            let (fault, _) = random_fault(&mut rng);
            let times = rng.range(1, 3);
            mock.fail_token_requests(fault, times as usize);
            knobs.faults += 1;
            knobs.faulted_requests += times;
        }
        if rng.chance(50) {
            // Mostly quick, sometimes slow, now and then over the refresh timeout.
            let latency = match rng.range(0, 9) {
                0..=5 => rng.range(0, 300),
                6..=8 => rng.range(300, 3_000),
                _ => rng.range(3_000, 6_000),
            };
            mock.set_latency(Duration::from_millis(latency));
            knobs.latency_changes += 1;
        }
        if rng.chance(20) {
            mock.revoke_all();
            knobs.revocations += 1;
        }
        if rng.chance(30) {
            mock.set_token_lifetime(Duration::from_secs(rng.range(10, 60)));
            knobs.lifetime_changes += 1;
        }
        for _ in 0..rng.range(10, 35) {
            let service = service.clone();
            let delay = Duration::from_millis(rng.range(0, 1_000));
            // One caller in five gives up after a random short while.
            let give_up = rng
                .chance(200)
                .then(|| Duration::from_millis(rng.range(0, 500)));
            callers.spawn(async move {
                sleep(delay).await;
                let limit = give_up.unwrap_or(CALLER_LIMIT);
                match timeout(limit, send(&service, query())).await {
                    Ok(got) => classify(got),
                    Err(_) if give_up.is_some() => Outcome::Cancelled,
                    Err(_) => Outcome::Hung,
                }
            });
            knobs.issued += 1;
        }
        sleep(Duration::from_millis(rng.range(0, 6_000))).await;
        while let Some(joined) = callers.try_join_next() {
            stats.record(joined.expect("a caller panicked"));
        }
    }
    while let Some(joined) = callers.join_next().await {
        stats.record(joined.expect("a caller panicked"));
    }
    (knobs, stats)
}

#[tokio::test(start_paused = true)]
async fn storm_of_requests_never_sends_an_expired_token() {
    let seed = seed();
    println!("STRESS_SEED={seed:#x}");
    let mock = MockOcient::new()
        .token_lifetime(Duration::from_secs(30))
        // Past this the mock forgets tokens, and an expired one would read -1205.
        .refresh_lifetime(Duration::from_secs(365 * 24 * 3600));
    let server = TalliedMock::new(mock.clone());
    let started = Instant::now();
    let (knobs, stats) = timeout(RUN_LIMIT, storm(seed, mock.clone(), server.clone()))
        .await
        .unwrap_or_else(|_| panic!("seed {seed:#x}: the run hung"));
    let virtual_time = started.elapsed();

    let counters = mock.counters();
    let generations = mock.current_generation();
    let expired = server.expired.load(Ordering::Relaxed);
    let revoked = server.revoked.load(Ordering::Relaxed);
    let other = server.other.load(Ordering::Relaxed);
    println!("virtual time {virtual_time:?}; {knobs:?}");
    println!("{stats:?}");
    println!(
        "{counters:?}; generations {generations}; queries refused: expired {expired}, revoked {revoked}, other {other}"
    );

    let context = format!("seed {seed:#x}");
    assert!(
        stats.foreign.is_empty(),
        "{context}: errors that are not the layer's: {:?}",
        &stats.foreign[..stats.foreign.len().min(5)]
    );
    assert_eq!(stats.hung, 0, "{context}: callers waited {CALLER_LIMIT:?}");
    assert_eq!(
        stats.other_status, 0,
        "{context}: queries answered neither 200 nor 401"
    );
    assert_eq!(
        stats.total(),
        knobs.issued,
        "{context}: every caller must end"
    );
    assert!(knobs.issued >= REQUESTS, "{context}: {}", knobs.issued);
    assert_eq!(
        expired, 0,
        "{context}: queries went out with an expired token"
    );
    assert_eq!(
        counters.queries_no_token, 0,
        "{context}: queries went out without a token"
    );
    assert_eq!(other, 0, "{context}: queries refused for another reason");
    assert_eq!(
        counters.queries_bad_token, revoked,
        "{context}: the mock and the tally disagree"
    );
    assert!(
        generations >= GENERATIONS,
        "{context}: only {generations} token generations"
    );
    assert!(
        counters.token_requests() <= 2 * generations,
        "{context}: {} token requests for {generations} generations",
        counters.token_requests()
    );
    assert_eq!(
        stats.ok + stats.unauthorized + stats.other_status,
        counters.queries_ok + counters.queries_bad_token,
        "{context}: answered callers and queries the mock saw disagree (cancelled callers excluded)"
    );
}
