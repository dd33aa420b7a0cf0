//! The hot path: what putting a fresh token on a request costs.
//!
//! Three stacks over the same trivial inner service (a `service_fn` answering a ready,
//! empty `200`), each measured as `ready().await` + `call(request).await`, with the request
//! built the same way inside every iteration:
//!
//! * `bare`: the inner service alone;
//! * `add_authorization`: tower-http's `AddAuthorizationLayer::bearer(..).as_sensitive(true)`,
//!   a static header and the floor for any bearer middleware;
//! * `token_refresh`: this crate's layer, holding a fresh token (an `initial_token` valid for
//!   an hour, installed before measuring, so no login and no refresh happens).
//!
//! Run on one thread (current-thread runtime) and on a 2-worker multi-thread runtime where
//! 64 tasks share clones of one service; there a batch of N calls is spread over the 64
//! tasks and the time is reported per call.
//!
//! Next to them, `add_authorization_watching_401` adds tower's `MapResponse` looking at
//! each response's status: the floor for any layer that must notice a 401, as this one does.
//!
//! A separate group repeats the one-thread measurement of the two bearer layers with an
//! origin-form request URI (`/v1/...`), which this crate authorizes without parsing a host
//! and port: the difference isolates the cost of its origin check.

mod common;

use common::{
    answer, auth_with, call_n, echo, request, runtimes, token, Body, CHUNK, QUERY, TASKS,
};

use std::fmt::Debug;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode, Uri};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_http::auth::AddAuthorizationLayer;
use tower_token_refresh::TokenRefreshLayer;

/// The same query in origin-form (no scheme or authority), as a client bound to one
/// connection sends it: the layer's origin check has nothing to parse.
const QUERY_ORIGIN_FORM: &str = "/v1/execute/retail_analytics";

/// Correctness, not timing: both bearer layers put the same sensitive header on.
fn check_headers(rt: &Runtime, token: &str) {
    let uri = Uri::from_static(QUERY);
    let expected = format!("Bearer {token}");
    rt.block_on(async {
        let tower_http = AddAuthorizationLayer::bearer(token)
            .as_sensitive(true)
            .layer(service_fn(echo));
        let ours = TokenRefreshLayer::new(auth_with(token)).layer(service_fn(echo));
        let a = tower_http.oneshot(request(&uri)).await.expect("tower-http");
        let b = ours.oneshot(request(&uri)).await.expect("token refresh");
        for response in [a, b] {
            assert_eq!(response.status(), StatusCode::OK);
            let value = &response.headers()[AUTHORIZATION];
            assert_eq!(value.as_bytes(), expected.as_bytes());
            assert!(value.is_sensitive());
        }
    });
}

fn one_thread<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    service: S,
    uri: &'static str,
) where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + 'static,
    S::Error: Debug,
{
    let uri = Uri::from_static(uri);
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let mut service = service.clone();
            let uri = uri.clone();
            async move {
                let start = Instant::now();
                call_n(&mut service, &uri, iters).await;
                start.elapsed()
            }
        })
    });
}

fn shared_by_tasks<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    service: S,
) where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Debug,
{
    let uri = Uri::from_static(QUERY);
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            // Each task gets its own clone of the one service, made before the clock starts.
            let clones: Vec<(S, u64)> = (0..TASKS)
                .map(|t| {
                    (
                        service.clone(),
                        iters / TASKS + u64::from(t < iters % TASKS),
                    )
                })
                .collect();
            let uri = uri.clone();
            async move {
                let start = Instant::now();
                let tasks: Vec<_> = clones
                    .into_iter()
                    .map(|(mut service, n)| {
                        let uri = uri.clone();
                        tokio::spawn(async move {
                            // Yield now and then, so both workers always have tasks to run
                            // (a task that never yields can leave one worker idle, and the
                            // figure would measure the scheduler's luck).
                            for chunk in (0..n).step_by(CHUNK as usize) {
                                call_n(&mut service, &uri, CHUNK.min(n - chunk)).await;
                                tokio::task::yield_now().await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("caller task");
                }
                start.elapsed()
            }
        })
    });
}

/// What a 401-aware layer does with each response: look at its status.
fn notice_401(response: Response<Body>) -> Response<Body> {
    if response.status() == StatusCode::UNAUTHORIZED {
        std::hint::black_box(&response);
    }
    response
}

fn hot_path(c: &mut Criterion) {
    let token = token();
    assert_eq!(token.len(), 200);
    let (current, two_workers) = runtimes();
    check_headers(&current, &token);

    let bare = service_fn(answer);
    let tower_http = AddAuthorizationLayer::bearer(&token)
        .as_sensitive(true)
        .layer(service_fn(answer));
    // The floor for any layer that must notice a 401: the same header, plus a look at
    // every response's status through a wrapping future.
    let watching_401 = tower::util::MapResponseLayer::new(notice_401).layer(tower_http.clone());
    let ours = TokenRefreshLayer::new(auth_with(&token)).layer(service_fn(answer));
    // Install the initial token (its first request takes the slow path once), so every
    // measured request finds a fresh token.
    current.block_on(call_n(&mut ours.clone(), &Uri::from_static(QUERY), 1));

    let mut group = c.benchmark_group("hot_path/one_thread");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    let (rt, uri) = (&current, QUERY);
    one_thread(&mut group, rt, "bare", bare, uri);
    one_thread(&mut group, rt, "add_authorization", tower_http.clone(), uri);
    let watching = watching_401.clone();
    one_thread(
        &mut group,
        rt,
        "add_authorization_watching_401",
        watching,
        uri,
    );
    one_thread(&mut group, rt, "token_refresh", ours.clone(), uri);
    group.finish();

    // Diagnostic: the same on one thread with an origin-form URI, which the layer
    // authorizes without parsing a host and port. The gap to `one_thread/token_refresh`
    // is what checking the request's origin costs.
    let mut group = c.benchmark_group("hot_path/one_thread_origin_form");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    let (rt, uri) = (&current, QUERY_ORIGIN_FORM);
    one_thread(&mut group, rt, "add_authorization", tower_http.clone(), uri);
    one_thread(&mut group, rt, "token_refresh", ours.clone(), uri);
    group.finish();

    let mut group = c.benchmark_group("hot_path/two_workers_64_tasks");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50);
    shared_by_tasks(&mut group, &two_workers, "bare", bare);
    shared_by_tasks(&mut group, &two_workers, "add_authorization", tower_http);
    let watching = watching_401;
    shared_by_tasks(
        &mut group,
        &two_workers,
        "add_authorization_watching_401",
        watching,
    );
    shared_by_tasks(&mut group, &two_workers, "token_refresh", ours);
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
