//! Drives concurrent queries through hyper-util's Client and `TokenRefreshLayer` for a
//! while, and shows the token being refreshed underneath them; with `--users N`, through
//! `PerIdentityLayer`, a token per user.
//!
//! ```text
//! cargo run --example demo                      # against an embedded mock Ocient, 4 s tokens
//! cargo run --example demo -- --tls             # the same, over HTTPS
//! OCIENT_PASSWORD=... cargo run --example demo -- --url https://sql-node --user jdoe \
//!     --database retail_analytics               # against a real SQL node: SELECT 1
//! cargo run --example demo -- --plot FILE.svg   # and a chart: p50/p99 per second, tokens marked
//! cargo run --example demo -- --users 100       # 100 users of the mock, a token each
//! cargo run --example demo --features metrics -- --metrics 127.0.0.1:9000
//!                                               # and the layer's metrics, for Prometheus
//! ```
//!
//! The client is hyper-util's over hyper-rustls: server certificates are verified against
//! the system's roots, plus `--ca-cert FILE` (PEM) for a private CA. Other flags:
//! `--password P` (else `OCIENT_PASSWORD`), `--seconds N` (default 10), `--concurrency N`
//! (default 32), `--refresh-when-idle` (the layer refreshes on its own at each refresh
//! point), `--allow-plain-http` (an `http://` node that is not loopback).
//!
//! `--plot FILE.svg` writes a chart of each second's p50 and p99 latency, with a line where
//! each new token was installed (`demo/plot.rs`). `--metrics ADDR`, with the `metrics`
//! feature, serves the layer's metrics in the Prometheus text format at `http://ADDR/metrics`
//! while the demo runs, and prints its `token_*` lines at the end (`demo/metrics_page.rs`).
//! The tests in `demo/tests.rs` run the demo and read both back.
//!
//! `--users N` (embedded mock only) queries as N users in turn through `PerIdentityLayer`
//! (`demo/users.rs`), and exits 1 unless each user logged in once and no query went out
//! with another user's token.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use ocient_mock::{MockOcient, MockServer};
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder};
use tower_token_refresh::{TokenEvent, TokenRefresh, TokenRefreshLayer};
use users::Users;

#[path = "demo/flags.rs"]
mod flags;
#[path = "demo/latency.rs"]
mod latency;
#[cfg(all(test, feature = "metrics"))]
#[path = "../tests/common/metrics_contract.rs"]
mod metrics_contract;
#[cfg(feature = "metrics")]
#[path = "demo/metrics_page.rs"]
mod metrics_page;
#[path = "demo/plot.rs"]
mod plot;
mod support;
#[cfg(test)]
#[path = "demo/tests.rs"]
mod tests;
#[path = "demo/traffic.rs"]
mod traffic;
#[path = "demo/users.rs"]
mod users;

use flags::{exit_2, parse, Run};
use latency::{Latencies, SecondLatency};
use plot::Install;
use support::{Node, NodeFlags};
use traffic::{drive, generation, CountTokenRequests, Stats};

type Body = Full<Bytes>;
/// The client beneath the layer, counting the token requests the layer sends.
type Counted = CountTokenRequests<support::tls::HttpsClient<Body>>;
/// Makes each query a worker sends: who it is from, with `--users`, is the maker's business.
type Query = Arc<dyn Fn() -> Request<Body> + Send + Sync>;

/// How long the embedded mock's tokens live: short, to show several refreshes in a run.
const TOKEN_LIFETIME: Duration = Duration::from_secs(4);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (flags, run) = parse(std::env::args().skip(1)).unwrap_or_else(|refused| exit_2(refused));
    let report = demo(&flags, &run).await?;
    if report.failed() {
        std::process::exit(1);
    }
    Ok(())
}

/// What a run saw: `main` reads whether it failed, the tests read the rest.
struct Report {
    stats: Arc<Stats>,
    /// Every token the layer reported obtained, in the order it did (one token's only).
    installs: Vec<Install>,
    /// The latencies of each second in which a request completed.
    by_second: Vec<SecondLatency>,
    /// With `--users`: their summary.
    users: Option<users::Summary>,
}

impl Report {
    /// A request failed, or (with `--users`) the run broke a rule of a token per user.
    fn failed(&self) -> bool {
        let failed = self.stats.failed.load(Ordering::Relaxed) > 0;
        failed || self.users.as_ref().is_some_and(|users| !users.held_up())
    }
}

/// The demo, as `main` runs it after reading the command line.
async fn demo(flags: &NodeFlags, run: &Run) -> Result<Report, BoxError> {
    let short_tokens = MockOcient::new()
        .token_lifetime(TOKEN_LIFETIME)
        .latency(Duration::from_millis(30));
    let users = run.users.map(Users::new);
    let node = match &users {
        None => flags.node(short_tokens).await?,
        Some(users) => flags.node(users.register(short_tokens)).await?,
    };
    #[cfg(feature = "metrics")]
    if let Some(addr) = run.metrics {
        // Before the layer makes its service: that is when it registers its metrics, with
        // the recorder in force then.
        metrics_page::serve(addr)?;
    }
    let client = CountTokenRequests {
        inner: node.client::<Body>()?,
        stats: Arc::default(),
    };
    let target = node.execute_uri();
    announce(run, &target, &node);
    let report = match users {
        None => one_token(&node, run, client, &target).await?,
        Some(users) => users.run(&node, run, client, &target).await?,
    };
    show_plot_and_metrics(run, &report).await?;
    Ok(report)
}

/// The run with one token, `TokenRefreshLayer`'s.
async fn one_token(
    node: &Node,
    run: &Run,
    client: Counted,
    target: &str,
) -> Result<Report, BoxError> {
    let mock = node.mock.as_ref();
    let start = Instant::now();
    let installs = Arc::new(Mutex::new(Vec::new()));
    let layer = TokenRefreshLayer::new(node.auth.clone())
        .refresh_when_idle(run.refresh_when_idle)
        .on_token(note_installs(start, Arc::clone(&installs)));
    let stats = Arc::clone(&client.stats);
    let service = ServiceBuilder::new().layer(layer).service(client);
    let target = target.to_owned();
    let query: Query = Arc::new(move || query(&target));
    let (latencies, by_second) = drive(&service, query, &stats, run, start, mock).await?;
    settle(&service).await;
    println!("\r{}", stats.line(generation(mock), &latencies));
    summarize(&stats, &latencies, mock);
    let installs = std::mem::take(&mut *installs.lock().expect("no panic while held"));
    Ok(Report {
        stats,
        installs,
        by_second,
        users: None,
    })
}

/// One `SELECT 1` to `target`.
fn query(target: &str) -> Request<Body> {
    Request::post(target)
        .header("content-type", "application/json")
        .body(Full::from(r#"{"statement":"SELECT 1"}"#))
        .expect("a valid request")
}

/// Waits, a second at most, for a refresh the last requests started, so that the summary,
/// the chart and the metrics page all count its token.
async fn settle<S>(service: &TokenRefresh<S>) {
    let settled = async {
        while service.status().refreshing {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), settled).await;
}

/// The first line: who runs against what.
fn announce(run: &Run, target: &str, node: &Node) {
    let users = match run.users {
        Some(users) => format!(", as {users} users in turn,"),
        None => String::new(),
    };
    println!(
        "{} concurrent clients for {} s{users} against {} over {} ({})",
        run.concurrency,
        run.seconds,
        target,
        node.transport(),
        if node.mock.is_some() {
            "embedded mock Ocient, 4 s tokens"
        } else {
            "real SQL node"
        },
    );
}

/// The chart, with `--plot`, and the metrics page's `token_*` lines, with `--metrics`.
async fn show_plot_and_metrics(run: &Run, report: &Report) -> Result<(), BoxError> {
    if let Some(path) = &run.plot {
        plot::write(path, &report.by_second, &report.installs)?;
        println!("\nlatency chart written to {}", path.display());
    }
    #[cfg(feature = "metrics")]
    if let Some(addr) = run.metrics {
        metrics_page::print(addr).await?;
    }
    Ok(())
}

/// An `on_token` hook that notes when each new token was installed, for the chart.
fn note_installs(
    start: Instant,
    installs: Arc<Mutex<Vec<Install>>>,
) -> impl Fn(&TokenEvent<'_>) + Send + Sync + 'static {
    move |event| {
        if let TokenEvent::Obtained { generation, .. } = event {
            let at = start.elapsed().as_secs_f64();
            let install = Install {
                generation: *generation,
                at,
            };
            installs.lock().expect("no panic while held").push(install);
        }
    }
}

fn summarize(stats: &Stats, latencies: &Latencies, mock: Option<&MockServer>) {
    let [p50, p99] = latencies.percentiles();
    println!("\nsummary");
    println!("  requests ok      {}", stats.ok.load(Ordering::Relaxed));
    println!(
        "  requests failed  {}",
        stats.failed.load(Ordering::Relaxed)
    );
    println!(
        "  logins           {}",
        stats.logins.load(Ordering::Relaxed)
    );
    println!(
        "  refreshes        {}",
        stats.refreshes.load(Ordering::Relaxed)
    );
    println!("  latency p50/p99  {p50} / {p99}");
    if let Some(server) = mock {
        println!("  token generations {}", server.mock().current_generation());
        let counters = server.mock().counters();
        println!(
            "  server saw       {} queries with a good token, {} with a bad one, {} without",
            counters.queries_ok, counters.queries_bad_token, counters.queries_no_token
        );
    }
}
