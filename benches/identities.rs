//! A token per identity: what finding the request's identity's token costs on the hot path.
//!
//! The stacks, over the same trivial inner service as `hot_path` (a `service_fn` answering a
//! ready, empty `200`), each measured as `ready().await` + `call(request).await`, with the
//! request built inside every iteration the same way for all of them: `hot_path`'s request
//! plus a `UserId` (a `u32` newtype, `Copy`, hashed by papaya's default SipHash) in its
//! extensions, the users taken in turn.
//!
//! * `bare`: the inner service alone (the identity ignored);
//! * `token_refresh`: the single-token `TokenRefreshLayer` holding a fresh token (the
//!   identity ignored: the request costs the same as for the others);
//! * `per_identity_1`: `PerIdentityLayer` holding one identity, every request that user's;
//! * `per_identity_10000`: `PerIdentityLayer` holding 10,000 identities, the requests
//!   cycling over all of them;
//! * `per_identity_10000_one_user` and `per_identity_10000_cycling_1000` (diagnostics): the
//!   same 10,000 held, every request user 0's, or the requests cycling over users 0 to 999.
//!   Against `per_identity_1` they show what the size of the map costs; against
//!   `per_identity_10000`, what touching every identity's token in turn costs (cache and TLB
//!   misses: the working set outgrows the caches).
//!
//! Every identity's endpoint is an `OcientAuth` with a 200-character token of its own handed
//! in, valid for an hour (`common::auth_for`), and every identity is used once before
//! measuring, so no login and no refresh happens.
//!
//! Run on one thread (current-thread runtime) and on a 2-worker multi-thread runtime where
//! 64 tasks share clones of one service (a batch of N calls spread over the 64 tasks, the
//! time reported per call), as `hot_path` does.

mod common;

use common::{answer, auth_for, auth_with, call_n_as, runtimes, token, token_of, Body, UserId};
use common::{echo, request_as, CHUNK, QUERY, TASKS};

use std::cell::Cell;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode, Uri};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_token_refresh::{PerIdentityLayer, TokenRefreshLayer};

/// Identities held by the large registry (the layer's default cap).
const MANY: u32 = 10_000;
/// Identities the second diagnostic cycles over, of the `MANY` held.
const FEW: u32 = 1_000;

/// Correctness, not timing: each identity's request carries its own token, sensitive.
fn check_headers(rt: &Runtime) {
    let uri = Uri::from_static(QUERY);
    rt.block_on(async {
        let service = PerIdentityLayer::new(auth_for).layer(service_fn(echo));
        for user in [UserId(0), UserId(1), UserId(MANY - 1), UserId(0)] {
            let response = service
                .clone()
                .oneshot(request_as(&uri, user))
                .await
                .expect("per identity");
            assert_eq!(response.status(), StatusCode::OK);
            let value = &response.headers()[AUTHORIZATION];
            let expected = format!("Bearer {}", token_of(user));
            assert_eq!(value.as_bytes(), expected.as_bytes());
            assert!(value.is_sensitive());
        }
    });
}

/// A `PerIdentityLayer` over the trivial service, each of `users` identities used once.
fn per_identity(
    rt: &Runtime,
    users: u32,
) -> impl Service<Request<Body>, Response = Response<Body>, Error: Debug + Send, Future: Send>
       + Clone
       + Send
       + 'static {
    let layer = PerIdentityLayer::new(auth_for);
    let mut service = layer.layer(service_fn(answer));
    let uri = Uri::from_static(QUERY);
    rt.block_on(call_n_as(
        &mut service,
        &uri,
        users,
        &mut 0,
        u64::from(users),
    ));
    let status = layer.status();
    assert_eq!(status.held, users as usize, "every identity held");
    assert_eq!(
        status.usable, users as usize,
        "every identity's token handed in"
    );
    service
}

fn one_thread<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    service: S,
    users: u32,
) where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + 'static,
    S::Error: Debug,
{
    let uri = Uri::from_static(QUERY);
    // Where the next sample goes on in the users' cycle.
    let next = Cell::new(0);
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let mut service = service.clone();
            let (uri, next) = (uri.clone(), &next);
            async move {
                let mut user = next.get();
                let start = Instant::now();
                call_n_as(&mut service, &uri, users, &mut user, iters).await;
                let elapsed = start.elapsed();
                next.set(user);
                elapsed
            }
        })
    });
}

fn shared_by_tasks<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    service: S,
    users: u32,
) where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Debug,
{
    let uri = Uri::from_static(QUERY);
    // Where the next sample's tasks start in the users' cycle: task `t` starts `t / 64` of
    // the way round from it, so tasks that run at once use different identities.
    let base = Cell::new(0u64);
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let users64 = u64::from(users);
            // Each task gets its own clone of the one service, made before the clock starts.
            let clones: Vec<(S, u64, u32)> = (0..TASKS)
                .map(|t| {
                    let n = iters / TASKS + u64::from(t < iters % TASKS);
                    let first = (base.get() + t * users64 / TASKS) % users64;
                    (service.clone(), n, first as u32)
                })
                .collect();
            base.set((base.get() + iters / TASKS) % users64);
            let uri = uri.clone();
            async move {
                let start = Instant::now();
                let tasks: Vec<_> = clones
                    .into_iter()
                    .map(|(mut service, n, mut user)| {
                        let uri = uri.clone();
                        tokio::spawn(async move {
                            // Yield now and then, so both workers always have tasks to run.
                            for chunk in (0..n).step_by(CHUNK as usize) {
                                let calls = CHUNK.min(n - chunk);
                                call_n_as(&mut service, &uri, users, &mut user, calls).await;
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

fn identities(c: &mut Criterion) {
    let token = token();
    let (current, two_workers) = runtimes();
    check_headers(&current);

    let bare = service_fn(answer);
    let single = TokenRefreshLayer::new(auth_with(&token)).layer(service_fn(answer));
    // Install the single token (its first request takes the slow path once).
    current.block_on(call_n_as(
        &mut single.clone(),
        &Uri::from_static(QUERY),
        1,
        &mut 0,
        1,
    ));
    let one = per_identity(&current, 1);
    let many = per_identity(&current, MANY);

    let mut group = c.benchmark_group("identities/one_thread");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    let rt = &current;
    one_thread(&mut group, rt, "bare", bare, MANY);
    one_thread(&mut group, rt, "token_refresh", single.clone(), MANY);
    one_thread(&mut group, rt, "per_identity_1", one.clone(), 1);
    one_thread(&mut group, rt, "per_identity_10000", many.clone(), MANY);
    let name = "per_identity_10000_one_user";
    one_thread(&mut group, rt, name, many.clone(), 1);
    let name = "per_identity_10000_cycling_1000";
    one_thread(&mut group, rt, name, many.clone(), FEW);
    group.finish();

    let mut group = c.benchmark_group("identities/two_workers_64_tasks");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50);
    let rt = &two_workers;
    shared_by_tasks(&mut group, rt, "bare", bare, MANY);
    shared_by_tasks(&mut group, rt, "token_refresh", single, MANY);
    shared_by_tasks(&mut group, rt, "per_identity_1", one, 1);
    shared_by_tasks(&mut group, rt, "per_identity_10000", many.clone(), MANY);
    let name = "per_identity_10000_one_user";
    shared_by_tasks(&mut group, rt, name, many.clone(), 1);
    let name = "per_identity_10000_cycling_1000";
    shared_by_tasks(&mut group, rt, name, many, FEW);
    group.finish();
}

criterion_group!(benches, identities);
criterion_main!(benches);
