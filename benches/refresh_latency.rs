//! Latency of requests issued while a proactive refresh runs.
//!
//! The token endpoint takes 50 ms. In each refresh window, ten requests are issued 5 ms
//! apart (at 0, 5, ..., 45 ms); the first one finds the token due and starts the refresh.
//! Each request's latency (`ready().await` + `call(request).await`) is measured.
//!
//! * `token_refresh`: this crate's layer; the refresh runs in the background and every
//!   request goes out at once with the current, still valid token.
//! * `naive_mutex_cache`: the baseline, written here: a
//!   `tokio::sync::Mutex<Option<(String, Instant)>>` held while the token endpoint is
//!   called when the token is due, which is what most token caches do. Requests issued
//!   during the refresh queue behind the lock.
//!
//! * `token_refresh_no_refresh`: the control, the same windows through this crate's layer
//!   with a fresh token, so no refresh runs: what a request costs here when nothing is due.
//!
//! All wrap the same inner service: a router that answers `/v1/token_refresh` after 50 ms
//! and every other request at once with a ready `200`. Criterion reports the mean latency
//! per request over all requests of the windows; a one-line summary per stack goes to
//! stderr, over the requests issued while the refresh was in flight (from the first
//! request of the window, which starts it, to the endpoint's answer).

mod common;
mod naive_cache;

use common::{request, Body, NodeFuture, BASE, QUERY};
use naive_cache::NaiveAuth;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use tokio::runtime::{Builder, Runtime};
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_token_refresh::{OcientAuth, TokenRefreshLayer};

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.initial.token";

/// How long the token endpoint takes.
const REFRESH_LATENCY: Duration = Duration::from_millis(50);
/// Requests issued per refresh window, `GAP` apart from the start of the refresh.
const PER_WINDOW: u32 = 10;
const GAP: Duration = Duration::from_millis(5);
/// The initial token's lifetime for our layer: with `refresh_at(0.9)` it is due between
/// 10% and 20% of it (50-100 ms) and dead at 90% (450 ms), far after the window ends.
const LIFETIME: Duration = Duration::from_millis(500);
const DUE_AFTER: Duration = Duration::from_millis(110);

// ---------------------------------------------------------------------------------------
// The inner service
// ---------------------------------------------------------------------------------------

/// Answers token refreshes after `REFRESH_LATENCY`, everything else at once.
#[derive(Clone, Default)]
struct Node {
    token_requests: Arc<AtomicU64>,
    /// When each token request arrived and when it was answered.
    flights: Arc<Mutex<Vec<Flight>>>,
    queries_without_token: Arc<AtomicU64>,
}

/// When a token request arrived, and when it was answered.
type Flight = (Instant, Option<Instant>);

impl Node {
    /// When the (one) refresh was answered.
    fn answered_at(&self) -> Option<Instant> {
        let flights = self.flights.lock().expect("flights");
        flights.first().and_then(|f| f.1)
    }

    fn answered(&self) -> usize {
        let flights = self.flights.lock().expect("flights");
        flights.iter().filter(|f| f.1.is_some()).count()
    }
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
                let n = self.token_requests.fetch_add(1, Ordering::Relaxed) + 1;
                let flights = Arc::clone(&self.flights);
                let index = {
                    let mut flights = flights.lock().expect("flights");
                    flights.push((Instant::now(), None));
                    flights.len() - 1
                };
                NodeFuture::Token(Box::pin(async move {
                    tokio::time::sleep(REFRESH_LATENCY).await;
                    let body = format!(
                        r#"{{"access_token":"fresh.token.{n}","expires_in":3600,"status":{{"reason":"","sql_state":"00000","vendor_code":0}}}}"#
                    );
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    flights.lock().expect("flights")[index].1 = Some(Instant::now());
                    response
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

// ---------------------------------------------------------------------------------------
// Windows
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Sample {
    latency: Duration,
    /// Issued before the refresh was answered (every request of a window is issued at or
    /// after the first one, which starts the refresh).
    during_refresh: bool,
}

/// Issues `PER_WINDOW` requests `GAP` apart through `service`. With `refresh`, its token is
/// due and the first request starts the refresh; without, it is fresh (the control).
async fn window<S>(service: S, node: &Node, refresh: bool) -> Vec<Sample>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    let uri = Uri::from_static(QUERY);
    let start = tokio::time::Instant::now() + Duration::from_millis(1);
    let requests: Vec<_> = (0..PER_WINDOW)
        .map(|k| {
            let mut service = service.clone();
            let uri = uri.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start + GAP * k).await;
                let issued = Instant::now();
                let response = service
                    .ready()
                    .await
                    .map_err(Into::into)
                    .expect("ready")
                    .call(request(&uri))
                    .await
                    .map_err(Into::into)
                    .expect("call");
                let latency = issued.elapsed();
                assert_eq!(response.status(), StatusCode::OK);
                (issued, latency)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(PER_WINDOW as usize);
    for request in requests {
        let (issued, latency) = request.await.expect("request task");
        samples.push((issued, latency));
    }
    // Let the refresh land before the window is judged and the next one starts.
    while refresh && node.answered() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let token_requests = node.token_requests.load(Ordering::Relaxed);
    let expected = u64::from(refresh);
    if token_requests != expected {
        panic!("a window made {token_requests} token requests, not {expected}");
    }
    let answered_at = node.answered_at();
    let without = node.queries_without_token.load(Ordering::Relaxed);
    assert_eq!(without, 0, "{without} queries went out without a token");
    samples
        .into_iter()
        .map(|(issued, latency)| Sample {
            latency,
            during_refresh: answered_at.is_some_and(|answered| issued < answered),
        })
        .collect()
}

/// One window through this crate's layer: a token that is due, but far from dead.
async fn ours_window() -> Vec<Sample> {
    let node = Node::default();
    let auth = OcientAuth::new(BASE.parse().expect("base URI")).initial_token(TOKEN, LIFETIME);
    let service = TokenRefreshLayer::new(auth)
        .refresh_at(0.9)
        .layer(node.clone());
    tokio::time::sleep(DUE_AFTER).await;
    // Installs the initial token, already due; the first request after it starts the refresh.
    service
        .clone()
        .oneshot(request(&Uri::from_static(QUERY)))
        .await
        .expect("first request");
    assert_eq!(
        node.token_requests.load(Ordering::Relaxed),
        0,
        "installing the initial token must not refresh it"
    );
    window(service, &node, true).await
}

/// The control: the same window through this crate's layer with a fresh token, so no
/// refresh runs.
async fn control_window() -> Vec<Sample> {
    let node = Node::default();
    let auth = OcientAuth::new(BASE.parse().expect("base URI"))
        .initial_token(TOKEN, Duration::from_secs(3600));
    let service = TokenRefreshLayer::new(auth).layer(node.clone());
    service
        .clone()
        .oneshot(request(&Uri::from_static(QUERY)))
        .await
        .expect("first request");
    window(service, &node, false).await
}

/// One window through the naive cache: a token that is due.
async fn naive_window() -> Vec<Sample> {
    let node = Node::default();
    let service = NaiveAuth::new(node.clone(), TOKEN, Instant::now());
    window(service, &node, true).await
}

fn bench_stack<W, F>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    name: &str,
    make_window: W,
) -> Vec<Sample>
where
    W: Fn() -> F + Copy,
    F: Future<Output = Vec<Sample>>,
{
    let all: Arc<Mutex<Vec<Sample>>> = Arc::default();
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let all = Arc::clone(&all);
            async move {
                let mut samples = Vec::with_capacity(iters as usize);
                while (samples.len() as u64) < iters {
                    samples.extend(make_window().await);
                }
                samples.truncate(iters as usize);
                all.lock().expect("samples").extend_from_slice(&samples);
                samples.iter().map(|s| s.latency).sum()
            }
        })
    });
    let all = all.lock().expect("samples");
    all.clone()
}

fn summary(name: &str, samples: &[Sample], refresh: bool) {
    let mut picked: Vec<Duration> = samples
        .iter()
        .filter(|s| s.during_refresh || !refresh)
        .map(|s| s.latency)
        .collect();
    picked.sort_unstable();
    let n = picked.len();
    if n == 0 {
        eprintln!("refresh_latency: {name}: no request was issued during a refresh");
        return;
    }
    let mean = picked.iter().sum::<Duration>() / n as u32;
    let what = if refresh {
        format!(
            "requests issued during a {} ms refresh",
            REFRESH_LATENCY.as_millis()
        )
    } else {
        "same windows, no refresh (control)".to_owned()
    };
    eprintln!(
        "refresh_latency: {name}: {what}: mean {:.1} us, median {:.1} us, max {:.1} us \
         ({n} of {} requests)",
        us(mean),
        us(picked[n / 2]),
        us(picked[n - 1]),
        samples.len(),
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn refresh_latency(c: &mut Criterion) {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("refresh_latency/50ms_refresh");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let ours = bench_stack(&mut group, &rt, "token_refresh", ours_window);
    let naive = bench_stack(&mut group, &rt, "naive_mutex_cache", naive_window);
    let control = bench_stack(&mut group, &rt, "token_refresh_no_refresh", control_window);
    group.finish();
    summary("token_refresh", &ours, true);
    summary("naive_mutex_cache", &naive, true);
    summary("token_refresh_no_refresh", &control, false);
}

criterion_group!(benches, refresh_latency);
criterion_main!(benches);
