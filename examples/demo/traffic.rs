//! The traffic: workers sending queries one after another until the run's end, the
//! progress line they feed, and the counts they keep (with the token requests the layer
//! sends beneath them).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hdrhistogram::Histogram;
use http::Request;
use http_body_util::BodyExt;
use ocient_mock::MockServer;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tower::{BoxError, Service, ServiceExt};

use crate::flags::Run;
use crate::latency::{recorder, BySecond, Latencies, SecondLatency};
use crate::{Body, Query};

/// Counts the token requests the layer sends through the client beneath it.
#[derive(Clone)]
pub struct CountTokenRequests<S> {
    pub inner: S,
    pub stats: Arc<Stats>,
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
pub struct Stats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub logins: AtomicU64,
    pub refreshes: AtomicU64,
    /// Bumped by the printer shortly before each progress tick: every worker then hands
    /// over the latencies it recorded since the last time. Workers only read it.
    asks: AtomicU64,
}

impl Stats {
    pub fn line(&self, generation: Option<u64>, latencies: &Latencies) -> String {
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

/// Runs the workers, each sending `query`'s queries through `service` one after another
/// until `run.seconds` after `start`, and shows their progress (with the token generation
/// of `mock`, if given); their latencies, in all and per second.
pub async fn drive<S>(
    service: &S,
    query: Query,
    stats: &Arc<Stats>,
    run: &Run,
    start: Instant,
    mock: Option<&MockServer>,
) -> Result<(Latencies, Vec<SecondLatency>), BoxError>
where
    S: Service<Request<Body>, Response = http::Response<hyper::body::Incoming>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let (mut latencies, hand_over) = Latencies::new();
    let until = start + Duration::from_secs(run.seconds);
    let spawn = |_| {
        let (service, query, stats) = (service.clone(), Arc::clone(&query), Arc::clone(stats));
        let hand_over = hand_over.clone();
        tokio::spawn(worker(service, query, stats, hand_over, start, run.seconds))
    };
    let workers: Vec<_> = (0..run.concurrency).map(spawn).collect();
    drop(hand_over);

    show_progress(stats, &mut latencies, mock, until).await?;
    let mut by_second = BySecond::new(start, run.seconds);
    for worker in workers {
        by_second.add(&worker.await?);
    }
    latencies.merge();
    Ok((latencies, by_second.percentiles()))
}

/// The mock's current token generation; none for a real node.
pub fn generation(mock: Option<&MockServer>) -> Option<u64> {
    mock.map(|m| m.mock().current_generation())
}

/// Prints a progress line at each tick until `until`: in place on a terminal, a line a
/// second otherwise.
async fn show_progress(
    stats: &Stats,
    latencies: &mut Latencies,
    mock: Option<&MockServer>,
    until: Instant,
) -> std::io::Result<()> {
    let live = std::io::stdout().is_terminal();
    let period = Duration::from_millis(if live { 250 } else { 1000 });
    // Workers are asked for their latencies this long before a tick, so that a worker
    // in the middle of a request has answered it and handed over by the tick.
    let lead = period / 5;
    let mut tick = tokio::time::interval(period);
    while Instant::now() < until {
        let at = tick.tick().await;
        latencies.merge();
        let line = stats.line(generation(mock), latencies);
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
    Ok(())
}

async fn worker<S>(
    service: S,
    query: Query,
    stats: Arc<Stats>,
    hand_over: mpsc::UnboundedSender<Histogram<u64>>,
    start: Instant,
    seconds: u64,
) -> BySecond
where
    S: Service<Request<Body>, Response = http::Response<hyper::body::Incoming>, Error = BoxError>
        + Clone,
{
    let mut recorded = recorder();
    // The chart's latencies: handed over once, when the worker stops.
    let mut by_second = BySecond::new(start, seconds);
    let until = start + Duration::from_secs(seconds);
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
        let request = query();
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
                let completed = Instant::now();
                let took = completed - started;
                let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                recorded
                    .record(nanos)
                    .expect("an auto-resizing histogram takes any latency");
                by_second.record(completed, nanos);
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
    by_second
}
