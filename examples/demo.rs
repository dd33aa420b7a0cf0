//! Drives concurrent queries through hyper-util's Client and `TokenRefreshLayer` for a
//! while, and shows the token being refreshed underneath them.
//!
//! ```text
//! cargo run --example demo                      # against an embedded mock Ocient, 4 s tokens
//! cargo run --example demo -- --tls             # the same, over HTTPS
//! OCIENT_PASSWORD=... cargo run --example demo -- --url https://sql-node --user jdoe \
//!     --database retail_analytics               # against a real SQL node: SELECT 1
//! ```
//!
//! The client is hyper-util's over hyper-rustls: server certificates are verified against
//! the system's roots, plus `--ca-cert FILE` (PEM) for a private CA. Other flags:
//! `--password P` (else `OCIENT_PASSWORD`), `--seconds N` (default 10), `--concurrency N`
//! (default 32), `--refresh-when-idle` (the layer refreshes on its own at each refresh
//! point), `--allow-plain-http` (an `http://` node that is not loopback).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::Request;
use http_body_util::{BodyExt, Full};
use ocient_mock::{MockOcient, MockServer};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_token_refresh::TokenRefreshLayer;

mod support;

use support::{NodeFlags, NODE_USAGE};

type Body = Full<Bytes>;

/// The demo's own flags; the node's come from `support::NodeFlags`.
struct Run {
    seconds: u64,
    concurrency: usize,
    refresh_when_idle: bool,
}

fn parse_run(rest: Vec<String>) -> Result<Run, String> {
    let mut run = Run {
        seconds: 10,
        concurrency: 32,
        refresh_when_idle: false,
    };
    let mut rest = rest.into_iter();
    while let Some(flag) = rest.next() {
        if flag == "--refresh-when-idle" {
            run.refresh_when_idle = true;
            continue;
        }
        let value = rest.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => run.seconds = value?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--concurrency" => {
                run.concurrency = value?.parse().map_err(|e| format!("--concurrency: {e}"))?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(run)
}

/// Counts the token requests the layer sends through the client beneath it.
#[derive(Clone)]
struct CountTokenRequests<S> {
    inner: S,
    stats: Arc<Stats>,
}

impl<S> Service<Request<Body>> for CountTokenRequests<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> S::Future {
        match request.uri().path() {
            "/v1/login" => self.stats.logins.fetch_add(1, Ordering::Relaxed),
            "/v1/token_refresh" => self.stats.refreshes.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        self.inner.call(request)
    }
}

#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    failed: AtomicU64,
    logins: AtomicU64,
    refreshes: AtomicU64,
    /// Bumped by the printer shortly before each progress tick: every worker then hands
    /// over the latencies it recorded since the last time. Workers only read it.
    asks: AtomicU64,
}

impl Stats {
    fn line(&self, generation: Option<u64>, latencies: &Latencies) -> String {
        let [p50, p99] = latencies.percentiles();
        format!(
            "ok {:>7}  failed {:>3}  logins {}  refreshes {:>2}  token gen {:>2}  p50 {p50:>7}  p99 {p99:>7}",
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.logins.load(Ordering::Relaxed),
            self.refreshes.load(Ordering::Relaxed),
            generation.map_or("-".to_string(), |g| g.to_string()),
        )
    }
}

/// Latencies in nanoseconds, 3 significant figures, growing to the slowest one recorded.
fn recorder() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures are within hdrhistogram's range")
}

/// The printer's side of the latencies: every worker records into a recorder of its own,
/// with nothing shared per request, and hands it over here when asked (`Stats::asks`)
/// and when it stops; the printer merges what was handed over at each progress tick.
struct Latencies {
    merged: Histogram<u64>,
    handed_over: mpsc::UnboundedReceiver<Histogram<u64>>,
}

impl Latencies {
    fn new() -> (Self, mpsc::UnboundedSender<Histogram<u64>>) {
        let (hand_over, handed_over) = mpsc::unbounded_channel();
        let latencies = Latencies {
            merged: recorder(),
            handed_over,
        };
        (latencies, hand_over)
    }

    /// Merges every recorder handed over so far, without waiting for more.
    fn merge(&mut self) {
        while let Ok(part) = self.handed_over.try_recv() {
            self.merged
                .add(&part)
                .expect("an auto-resizing histogram takes any other");
        }
    }

    /// p50 and p99 of what is merged, or "–" before any answer arrived.
    fn percentiles(&self) -> [String; 2] {
        [0.50, 0.99].map(|quantile| {
            if self.merged.is_empty() {
                "–".to_string()
            } else {
                let nanos = self.merged.value_at_quantile(quantile);
                format!("{:.2?}", Duration::from_nanos(nanos))
            }
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let parsed = NodeFlags::parse(std::env::args().skip(1))
        .and_then(|(node, rest)| Ok((node, parse_run(rest)?)));
    let (flags, run) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}\nusage: demo {NODE_USAGE} [--seconds N] [--concurrency N] [--refresh-when-idle]");
            std::process::exit(2);
        }
    };
    let short_tokens = MockOcient::new()
        .token_lifetime(Duration::from_secs(4))
        .latency(Duration::from_millis(30));
    let node = flags.node(short_tokens).await?;
    let mock = node.mock.as_ref();
    let stats = Arc::new(Stats::default());
    let (mut latencies, hand_over) = Latencies::new();
    let client = node.client::<Body>()?;
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(node.auth.clone()).refresh_when_idle(run.refresh_when_idle))
        .service(CountTokenRequests {
            inner: client,
            stats: Arc::clone(&stats),
        });

    let target = node.execute_uri();
    println!(
        "{} concurrent clients for {} s against {} over {} ({})",
        run.concurrency,
        run.seconds,
        target,
        node.transport(),
        if mock.is_some() {
            "embedded mock Ocient, 4 s tokens"
        } else {
            "real SQL node"
        },
    );
    let until = Instant::now() + Duration::from_secs(run.seconds);
    let workers: Vec<_> = (0..run.concurrency)
        .map(|_| {
            tokio::spawn(worker(
                service.clone(),
                target.clone(),
                Arc::clone(&stats),
                hand_over.clone(),
                until,
            ))
        })
        .collect();
    drop(hand_over);

    let live = std::io::stdout().is_terminal();
    let generation = || mock.map(|m| m.mock().current_generation());
    let period = Duration::from_millis(if live { 250 } else { 1000 });
    // Workers are asked for their latencies this long before a tick, so that a worker
    // in the middle of a request has answered it and handed over by the tick.
    let lead = period / 5;
    let mut tick = tokio::time::interval(period);
    while Instant::now() < until {
        let at = tick.tick().await;
        latencies.merge();
        let line = stats.line(generation(), &latencies);
        if live {
            print!("\r{line}");
            std::io::stdout().flush()?;
        } else {
            println!("{line}");
        }
        let ask_at = at + period - lead;
        if ask_at >= until {
            break;
        }
        sleep_until(ask_at).await;
        stats.asks.fetch_add(1, Ordering::Relaxed);
    }
    for worker in workers {
        worker.await?;
    }
    latencies.merge();
    println!("\r{}", stats.line(generation(), &latencies));
    summarize(&stats, &latencies, mock);
    if stats.failed.load(Ordering::Relaxed) > 0 {
        std::process::exit(1);
    }
    Ok(())
}

async fn worker<S>(
    service: S,
    target: String,
    stats: Arc<Stats>,
    hand_over: mpsc::UnboundedSender<Histogram<u64>>,
    until: Instant,
) where
    S: Service<Request<Body>, Response = http::Response<hyper::body::Incoming>, Error = BoxError>
        + Clone,
{
    let mut recorded = recorder();
    let mut answered = stats.asks.load(Ordering::Relaxed);
    // Hands the recorder over, if it holds anything, and starts an empty one.
    let hand_over = |recorded: &mut Histogram<u64>| {
        if !recorded.is_empty() {
            let empty = Histogram::new_from(recorded);
            let part = std::mem::replace(recorded, empty);
            // The printer only stops listening once every worker has stopped.
            let _ = hand_over.send(part);
        }
    };
    while Instant::now() < until {
        let request = Request::post(target.as_str())
            .header("content-type", "application/json")
            .body(Full::from(r#"{"statement":"SELECT 1"}"#))
            .expect("a valid request");
        let started = Instant::now();
        let outcome = match service.clone().oneshot(request).await {
            Ok(response) if response.status().is_success() => response
                .into_body()
                .collect()
                .await
                .map(|_| ())
                .map_err(BoxError::from),
            Ok(response) => Err(format!("HTTP {}", response.status()).into()),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                stats.ok.fetch_add(1, Ordering::Relaxed);
                let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                recorded
                    .record(nanos)
                    .expect("an auto-resizing histogram takes any latency");
            }
            Err(error) => {
                if stats.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("\nrequest failed: {error}");
                }
            }
        }
        let asks = stats.asks.load(Ordering::Relaxed);
        if asks != answered {
            answered = asks;
            hand_over(&mut recorded);
        }
    }
    hand_over(&mut recorded);
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
