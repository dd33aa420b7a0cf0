//! Refresh storm: 10,000 callers arrive together at a dead token while the token endpoint
//! takes 20 ms.
//!
//! The inner service is an in-process `MockOcient` (latency 20 ms) behind a thin wrapper
//! that records the moment the login answer is produced and answers every other request
//! (the callers' queries) itself with a ready `200`, so what is measured after the answer
//! is the layer releasing its waiters, not the mock executing queries. The wrapper also
//! holds the login until all 10,000 callers have arrived (the 20 ms start from there), so
//! every caller is waiting on the dead token when the answer comes, however slowly the
//! 10,000 tasks get spawned on a busy 2-core machine.
//!
//! Per storm: the token requests made (must be exactly 1: checked with a panic, a
//! correctness check and not a timing assertion), and the time from the endpoint's answer
//! until the last caller is released (its response returned). Criterion reports the
//! release time; a one-line summary over every storm run goes to stderr for the README.

mod common;

use common::{request, Body, NodeFuture, BASE, QUERY};

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use ocient_mock::MockOcient;
use tokio::runtime::Builder;
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceExt};
use tower_token_refresh::{OcientAuth, TokenRefreshLayer};

const CALLERS: usize = 10_000;
const LATENCY: Duration = Duration::from_millis(20);

/// Holds the login until every caller has arrived, so that all of them are waiting on the
/// dead token when the answer comes (spawning 10,000 tasks on 2 busy cores can take longer
/// than the 20 ms login); the mock's 20 ms start from there.
#[derive(Default)]
struct Gate {
    arrived: AtomicUsize,
    all_in: Notify,
}

impl Gate {
    fn arrive(&self) -> Instant {
        let now = Instant::now();
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == CALLERS {
            self.all_in.notify_one();
        }
        now
    }

    async fn all_arrived(&self) {
        if self.arrived.load(Ordering::Acquire) < CALLERS {
            // `notify_one` leaves a permit when nobody waits yet: no lost wake-up.
            self.all_in.notified().await;
        }
    }
}

/// The SQL node as the layer sees it: token requests go to the mock (and the moment the
/// answer is produced is recorded), queries are answered at once.
#[derive(Clone)]
struct Node {
    mock: MockOcient,
    answered: Arc<Mutex<Option<Instant>>>,
    queries_without_token: Arc<AtomicU64>,
    gate: Arc<Gate>,
}

impl Service<Request<Body>> for Node {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = NodeFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> NodeFuture {
        match request.uri().path() {
            "/v1/login" | "/v1/token_refresh" => {
                let mock = self.mock.clone();
                let answered = Arc::clone(&self.answered);
                let gate = Arc::clone(&self.gate);
                NodeFuture::Token(Box::pin(async move {
                    gate.all_arrived().await;
                    let response = match mock.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    let at = Instant::now();
                    answered.lock().expect("answered").get_or_insert(at);
                    let (parts, body) = response.into_parts();
                    let body = body.collect().await.expect("mock body").to_bytes();
                    Response::from_parts(parts, Full::new(body))
                }))
            }
            _ => {
                if !request.headers().contains_key(AUTHORIZATION) {
                    self.queries_without_token.fetch_add(1, Ordering::Relaxed);
                }
                NodeFuture::Ready(Some(Response::new(Full::new(Bytes::new()))))
            }
        }
    }
}

/// What one storm showed.
#[derive(Debug, Clone, Copy)]
struct Storm {
    token_requests: u64,
    /// From the endpoint's answer to the last caller's response.
    release: Duration,
    /// From the endpoint's answer to the median caller's response.
    median_release: Duration,
    /// From the first caller's arrival to the last caller's response.
    total: Duration,
    /// Callers that arrived (were about to first poll their response) before the answer.
    arrived_before_answer: usize,
}

async fn storm() -> Storm {
    let mock = MockOcient::new().latency(LATENCY);
    let node = Node {
        mock: mock.clone(),
        answered: Arc::default(),
        queries_without_token: Arc::default(),
        gate: Arc::default(),
    };
    // A dead token and the credentials to replace it: every caller must wait for a login.
    let auth = OcientAuth::new(BASE.parse().expect("base URI"))
        .credentials("jdoe", "secret")
        .database("retail_analytics")
        .initial_token("x", Duration::ZERO);
    let service = TokenRefreshLayer::new(auth).layer(node.clone());
    let uri = Uri::from_static(QUERY);

    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let mut service = service.clone();
            let uri = uri.clone();
            let gate = Arc::clone(&node.gate);
            tokio::spawn(async move {
                let response = service.ready().await.expect("ready").call(request(&uri));
                // Arrives: the first poll below finds the dead token and waits for the login.
                let arrived = gate.arrive();
                let response = response.await.expect("every caller gets through");
                let done = Instant::now();
                assert_eq!(response.status(), StatusCode::OK);
                (arrived, done)
            })
        })
        .collect();
    drop(service);
    let mut times = Vec::with_capacity(CALLERS);
    for caller in callers {
        times.push(caller.await.expect("caller task"));
    }

    let token_requests = mock.counters().token_requests();
    if token_requests != 1 {
        panic!("{CALLERS} callers at a dead token made {token_requests} token requests, not 1");
    }
    let without = node.queries_without_token.load(Ordering::Relaxed);
    assert_eq!(without, 0, "{without} queries went out without a token");
    let answered = node
        .answered
        .lock()
        .expect("answered")
        .expect("the token endpoint answered");
    let first_arrival = times.iter().map(|t| t.0).min().expect("callers");
    let mut done: Vec<Instant> = times.iter().map(|t| t.1).collect();
    done.sort_unstable();
    let last = *done.last().expect("callers");
    Storm {
        token_requests,
        release: last.saturating_duration_since(answered),
        median_release: done[done.len() / 2].saturating_duration_since(answered),
        total: last - first_arrival,
        arrived_before_answer: times.iter().filter(|t| t.0 < answered).count(),
    }
}

/// The floor under any layer: 10,000 tasks parked on one `watch` channel, released by a
/// single send, each noting when it ran again. Nothing of this crate is involved.
async fn tokio_floor(send: bool) -> Duration {
    let node = Node {
        mock: MockOcient::new(),
        answered: Arc::default(),
        queries_without_token: Arc::default(),
        gate: Arc::default(),
    };
    let uri = Uri::from_static(QUERY);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let parked = Arc::new(AtomicUsize::new(0));
    let all_parked = Arc::new(Notify::new());
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let mut rx = rx.clone();
            let (parked, all_parked) = (Arc::clone(&parked), Arc::clone(&all_parked));
            let (node, uri) = (node.clone(), uri.clone());
            tokio::spawn(async move {
                let changed = rx.changed();
                if parked.fetch_add(1, Ordering::AcqRel) + 1 == CALLERS {
                    all_parked.notify_one();
                }
                changed.await.expect("sender alive");
                if send {
                    // What any released caller does next: send its request.
                    let response = node.oneshot(request(&uri)).await.expect("node");
                    assert_eq!(response.status(), StatusCode::OK);
                }
                Instant::now()
            })
        })
        .collect();
    all_parked.notified().await;
    // Every task has created its wait; give the last ones a moment to register it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let sent = Instant::now();
    tx.send_replace(true);
    let mut last = sent;
    for task in tasks {
        last = last.max(task.await.expect("task"));
    }
    last - sent
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn refresh_storm(c: &mut Criterion) {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let storms: Arc<Mutex<Vec<Storm>>> = Arc::default();

    let mut group = c.benchmark_group("refresh_storm");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function(
        "10k_callers_dead_token_20ms_login/release_after_answer",
        |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let storms = Arc::clone(&storms);
                async move {
                    let mut release = Duration::ZERO;
                    for _ in 0..iters {
                        let storm = storm().await;
                        release += storm.release;
                        storms.lock().expect("storms").push(storm);
                    }
                    release
                }
            })
        },
    );
    let mut floors = Vec::new();
    for (name, send) in [
        ("tokio_floor_10k_tasks_released_by_one_send", false),
        ("tokio_floor_10k_tasks_released_then_each_sends", true),
    ] {
        let runs: Arc<Mutex<Vec<Duration>>> = Arc::default();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let runs = Arc::clone(&runs);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let floor = tokio_floor(send).await;
                        total += floor;
                        runs.lock().expect("floors").push(floor);
                    }
                    total
                }
            })
        });
        let mut runs = runs.lock().expect("floors").clone();
        runs.sort_unstable();
        floors.push((send, runs[runs.len() / 2], runs.len()));
    }
    group.finish();

    for (send, median, n) in floors {
        let then = if send {
            ", then sent its request to the same inner service"
        } else {
            ""
        };
        eprintln!(
            "refresh_storm: tokio floor, {CALLERS} tasks parked on one watch channel, 2 workers: \
             last task ran{then} {:.2} ms after the send (median of {n} runs)",
            ms(median),
        );
    }

    let storms = storms.lock().expect("storms");
    let n = storms.len();
    let mut release: Vec<Duration> = storms.iter().map(|s| s.release).collect();
    release.sort_unstable();
    let mut median_release: Vec<Duration> = storms.iter().map(|s| s.median_release).collect();
    median_release.sort_unstable();
    let mut total: Vec<Duration> = storms.iter().map(|s| s.total).collect();
    total.sort_unstable();
    let max_requests = storms.iter().map(|s| s.token_requests).max().unwrap_or(0);
    let min_arrived = storms
        .iter()
        .map(|s| s.arrived_before_answer)
        .min()
        .unwrap_or(0);
    eprintln!(
        "refresh_storm: {CALLERS} callers, dead token, {} ms login, 2 workers, {n} storms: \
         token requests per storm = {max_requests} (max); last caller released {:.2} ms after \
         the answer (median of storms; min {:.2}, max {:.2}); median caller {:.2} ms; \
         arrival-to-last-release {:.1} ms; callers arrived before the answer >= {min_arrived}",
        LATENCY.as_millis(),
        ms(release[n / 2]),
        ms(release[0]),
        ms(release[n - 1]),
        ms(median_release[n / 2]),
        ms(total[n / 2]),
    );
}

criterion_group!(benches, refresh_storm);
criterion_main!(benches);
