//! Running a row: a fresh mock and layer brought to the row's start state, its steps on
//! the paused clock, then the counts it must end with.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Response;
use ocient_mock::{Counters, MockOcient};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, Instant};
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_token_refresh::{Error, OcientAuth, TokenRefresh, TokenRefreshLayer};

use crate::common::tally::{Body, TalliedMock};
use crate::common::{auth, query, send, BASE};
use crate::server::{fault, seed_token};
use crate::table::*;

const HOUR: Duration = Duration::from_secs(3600);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
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
                exchange, status, ..
            },
        ) => *exchange == x && status.as_u16() == s && error.vendor_code() == Some(v),
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
    server: TalliedMock,
    service: TokenRefresh<TalliedMock>,
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
    let server = TalliedMock::new(mock.clone());
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
        refused: rig.server.revoked.load(Ordering::Relaxed)
            + rig.server.other.load(Ordering::Relaxed),
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

/// Runs one row and fails the test with the row's name and what went wrong.
pub async fn check(row: &Row) {
    if let Err(why) = run(row).await {
        panic!("row {:?}: {why}", row.name);
    }
}
