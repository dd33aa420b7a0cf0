//! Memory on the hot path: allocations per request, and no growth over a million requests
//! (measured twice in a row: a one-off growth, such as a runtime buffer reaching its working
//! size, shows in the first run only; a leak shows in both).
//!
//! Not a criterion bench: a counting global allocator wraps the system allocator and this
//! `main` prints a table. It still runs under `cargo bench` (`harness = false`).
//!
//! Same three stacks as `hot_path` (bare inner service, tower-http `AddAuthorization`, this
//! crate's `TokenRefresh` holding a fresh token), same request, on a current-thread runtime,
//! plus `TokenRefresh` shared by 64 tasks on a 2-worker runtime.
//!
//! A token per identity (`PerIdentityLayer`, identity a `UserId(u32)` in the request's
//! extensions): the live bytes each of 10,000 held identities costs, with its token handed
//! in (`initial_token`, so nothing is sent), and the allocations per request with those
//! 10,000 held and the requests cycling over them, next to the single-token layer given the
//! same requests (the identity in their extensions, ignored).

mod common;

use common::{answer, auth_for, auth_with, call_n, call_n_as, request, request_as, runtimes};
use common::{token, Body, UserId, QUERY, TASKS};

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use http::{Request, Response, Uri};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service};
use tower_http::auth::AddAuthorizationLayer;
use tower_token_refresh::{PerIdentityLayer, TokenRefreshLayer};

// ---------------------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------------------

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
/// Live allocations by size (the last slot: every size from `SIZES - 1` up), to say what
/// a held identity is made of.
const SIZES: usize = 1025;
static LIVE_BY_SIZE: [AtomicI64; SIZES] = [const { AtomicI64::new(0) }; SIZES];

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted(size: usize) {
    ALLOCATIONS.fetch_add(1, Relaxed);
    ALLOCATED_BYTES.fetch_add(size as u64, Relaxed);
    LIVE_BYTES.fetch_add(size as i64, Relaxed);
    LIVE_BY_SIZE[size.min(SIZES - 1)].fetch_add(1, Relaxed);
}

fn freed(size: usize) {
    LIVE_BYTES.fetch_sub(size as i64, Relaxed);
    LIVE_BY_SIZE[size.min(SIZES - 1)].fetch_sub(1, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            counted(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            counted(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        freed(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            freed(layout.size());
            counted(new_size);
        }
        new
    }
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    allocations: u64,
    bytes: u64,
    live: i64,
}

fn snapshot() -> Snapshot {
    Snapshot {
        allocations: ALLOCATIONS.load(Relaxed),
        bytes: ALLOCATED_BYTES.load(Relaxed),
        live: LIVE_BYTES.load(Relaxed),
    }
}

/// Live allocations by size now.
fn live_by_size() -> Vec<i64> {
    LIVE_BY_SIZE
        .iter()
        .map(|count| count.load(Relaxed))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The stacks (as in `hot_path`)
// ---------------------------------------------------------------------------------------

/// Requests counted for the per-request figures, after as many again to warm up.
const PER_REQUEST: u64 = 100_000;
/// Requests over which live bytes must not grow.
const GROWTH: u64 = 1_000_000;
/// Identities held by the per-identity layer (its default cap).
const MANY: u32 = 10_000;

/// `n` requests on the current thread.
fn run_here<S>(rt: &Runtime, service: &S, n: u64)
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone,
    S::Error: Debug,
{
    let uri = Uri::from_static(QUERY);
    let mut service = service.clone();
    rt.block_on(call_n(&mut service, &uri, n));
}

/// `n` requests spread over 64 tasks sharing clones of `service`.
fn run_shared<S>(rt: &Runtime, service: &S, n: u64)
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Debug,
{
    let uri = Uri::from_static(QUERY);
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let mut service = service.clone();
                let uri = uri.clone();
                let n = n / TASKS + u64::from(t < n % TASKS);
                tokio::spawn(async move { call_n(&mut service, &uri, n).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("caller task");
        }
    });
}

/// `n` requests on the current thread, for the users `0..users` in turn from `*next` on.
fn run_here_as<S>(rt: &Runtime, service: &S, users: u32, next: &Cell<u32>, n: u64)
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone,
    S::Error: Debug,
{
    let uri = Uri::from_static(QUERY);
    let mut service = service.clone();
    let mut user = next.get();
    rt.block_on(call_n_as(&mut service, &uri, users, &mut user, n));
    next.set(user);
}

/// `n` requests spread over 64 tasks sharing clones of `service`, task `t` taking the users
/// `0..users` in turn from `t / 64` of the way round.
fn run_shared_as<S>(rt: &Runtime, service: &S, users: u32, n: u64)
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Debug,
{
    let uri = Uri::from_static(QUERY);
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let mut service = service.clone();
                let uri = uri.clone();
                let n = n / TASKS + u64::from(t < n % TASKS);
                let mut user = (t * u64::from(users) / TASKS) as u32;
                tokio::spawn(
                    async move { call_n_as(&mut service, &uri, users, &mut user, n).await },
                )
            })
            .collect();
        for task in tasks {
            task.await.expect("caller task");
        }
    });
}

/// What holding identities costs: live bytes before and after.
struct Held {
    /// Live bytes added by the layer holding `MANY` identities, each with its token.
    layer: i64,
    /// Of which the endpoints the user's function made (`MANY` `OcientAuth`s, measured
    /// apart: the same calls, kept in a `Vec`).
    endpoints: i64,
    /// Live allocations added, by size.
    by_size: Vec<i64>,
}

struct Row {
    name: &'static str,
    allocations: f64,
    bytes: f64,
    /// Live-bytes growth over `GROWTH` requests, then over `GROWTH` more.
    growth: Option<(i64, i64)>,
}

fn measure(name: &'static str, run: &dyn Fn(u64)) -> Row {
    run(PER_REQUEST); // warm up: thread-locals, first clones, runtime buffers
    let before = snapshot();
    run(PER_REQUEST);
    let after = snapshot();
    let per = |a: u64, b: u64| (b - a) as f64 / PER_REQUEST as f64;
    let allocations = per(before.allocations, after.allocations);
    let bytes = per(before.bytes, after.bytes);

    let start = snapshot();
    run(GROWTH);
    let middle = snapshot();
    run(GROWTH);
    let end = snapshot();
    Row {
        name,
        allocations,
        bytes,
        growth: Some((middle.live - start.live, end.live - middle.live)),
    }
}

/// The size of the future `service` returns for one request.
fn future_size<S: Service<Request<Body>>>(_: &S) -> usize {
    std::mem::size_of::<S::Future>()
}

fn main() {
    let token = token();
    let (current, two_workers) = runtimes();

    let bare = service_fn(answer);
    let tower_http = AddAuthorizationLayer::bearer(&token)
        .as_sensitive(true)
        .layer(service_fn(answer));
    let ours = TokenRefreshLayer::new(auth_with(&token)).layer(service_fn(answer));

    let uri = Uri::from_static(QUERY);
    let mut rows = Vec::new();
    rows.push({
        let mut row = measure("request only (built, dropped)", &|n| {
            for _ in 0..n {
                black_box(request(&uri));
            }
        });
        row.growth = None;
        row
    });
    rows.push(measure("bare", &|n| run_here(&current, &bare, n)));
    rows.push(measure("add_authorization (tower-http)", &|n| {
        run_here(&current, &tower_http, n)
    }));
    rows.push(measure("token_refresh", &|n| run_here(&current, &ours, n)));
    rows.push(measure("bare, 2 workers x 64 tasks", &|n| {
        run_shared(&two_workers, &bare, n)
    }));
    rows.push(measure("add_authorization, 2 workers x 64 tasks", &|n| {
        run_shared(&two_workers, &tower_http, n)
    }));
    rows.push(measure("token_refresh, 2 workers x 64 tasks", &|n| {
        run_shared(&two_workers, &ours, n)
    }));

    // A token per identity. First what each held identity costs: 10,000 made and used once
    // each, their tokens handed in.
    let endpoints = {
        let before = snapshot();
        let endpoints: Vec<_> = (0..MANY).map(|user| auth_for(&UserId(user))).collect();
        let after = snapshot();
        drop(black_box(endpoints));
        after.live - before.live
    };
    let (before, sizes_before) = (snapshot(), live_by_size());
    let layer = PerIdentityLayer::new(auth_for);
    let many = layer.layer(service_fn(answer));
    run_here_as(&current, &many, MANY, &Cell::new(0), u64::from(MANY));
    // Let every timer task spawned for a token take its first turn.
    current.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    let (after, sizes_after) = (snapshot(), live_by_size());
    let status = layer.status();
    assert_eq!((status.held, status.usable), (MANY as usize, MANY as usize));
    let held = Held {
        layer: after.live - before.live,
        endpoints,
        by_size: sizes_after
            .iter()
            .zip(&sizes_before)
            .map(|(after, before)| after - before)
            .collect(),
    };

    // Then the hot path with 10,000 held, next to the single token given the same requests.
    rows.push({
        let mut row = measure("request with identity (built, dropped)", &|n| {
            let user = Cell::new(0);
            for _ in 0..n {
                let next = user.get();
                user.set(if next + 1 == MANY { 0 } else { next + 1 });
                black_box(request_as(&uri, UserId(next)));
            }
        });
        row.growth = None;
        row
    });
    let next = Cell::new(0);
    rows.push(measure("token_refresh, identity in request", &|n| {
        run_here_as(&current, &ours, MANY, &next, n)
    }));
    let next = Cell::new(0);
    rows.push(measure("per_identity, 10,000 held", &|n| {
        run_here_as(&current, &many, MANY, &next, n)
    }));
    rows.push(measure(
        "token_refresh, identity, 2 workers x 64 tasks",
        &|n| run_shared_as(&two_workers, &ours, MANY, n),
    ));
    rows.push(measure("per_identity, 10,000 held, 2 workers x 64", &|n| {
        run_shared_as(&two_workers, &many, MANY, n)
    }));
    let status = layer.status();
    assert_eq!((status.held, status.usable), (MANY as usize, MANY as usize));

    println!();
    println!(
        "memory: allocations per request ({PER_REQUEST} requests after {PER_REQUEST} to warm up), \
         and live-bytes growth over {GROWTH} more, then {GROWTH} more again"
    );
    println!(
        "{:<46} {:>12} {:>12} {:>16} {:>16}",
        "stack", "allocs/req", "bytes/req", "live growth 1st", "live growth 2nd"
    );
    for row in &rows {
        let (first, second) = row.growth.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |(a, b)| (format!("{a:+}"), format!("{b:+}")),
        );
        println!(
            "{:<46} {:>12.3} {:>12.1} {:>16} {:>16}",
            row.name, row.allocations, row.bytes, first, second
        );
    }
    println!(
        "response future size in bytes (moved, not allocated): bare {}, add_authorization {}, \
         token_refresh {}, per_identity {}; request {}",
        future_size(&bare),
        future_size(&tower_http),
        future_size(&ours),
        future_size(&many),
        std::mem::size_of::<Request<Body>>(),
    );
    let per = |bytes: i64| bytes as f64 / f64::from(MANY);
    println!(
        "per identity held ({MANY} held, each with its token): {:.0} bytes live, of which \
         {:.0} the endpoint (OcientAuth) the function made, {:.0} the layer's own",
        per(held.layer),
        per(held.endpoints),
        per(held.layer - held.endpoints),
    );
    // What they are made of: the sizes that hold at least 8 bytes per identity.
    let mut sizes: Vec<(usize, i64)> = (held.by_size.iter().copied().enumerate())
        .map(|(size, count)| (size, count * size as i64))
        .filter(|&(size, bytes)| size < SIZES - 1 && bytes >= 8 * i64::from(MANY))
        .collect();
    sizes.sort_by_key(|&(size, bytes)| (-bytes, size));
    let parts: Vec<String> = sizes
        .iter()
        .map(|&(size, _)| {
            let count = held.by_size[size] as f64 / f64::from(MANY);
            format!("{count:.0} x {size} B")
        })
        .collect();
    let counted: i64 = sizes.iter().map(|&(_, bytes)| bytes).sum();
    println!(
        "  live allocations per identity, by size: {}; the rest ({:.0} B: the map's tables, \
         allocations over {} B, smaller ones) besides",
        parts.join(", "),
        per(held.layer - counted),
        SIZES - 2,
    );
    // One line per stack, to copy into the README.
    for row in rows[1..4].iter().chain(&rows[8..10]) {
        eprintln!(
            "memory: {}: {:.3} allocations/request, {:.1} bytes/request, live bytes {:+} then {:+} \
             over two runs of {} requests",
            row.name,
            row.allocations,
            row.bytes,
            row.growth.map_or(0, |g| g.0),
            row.growth.map_or(0, |g| g.1),
            GROWTH
        );
    }
    eprintln!(
        "memory: per identity held: {:.0} bytes ({:.0} of them the endpoint), {MANY} held",
        per(held.layer),
        per(held.endpoints),
    );
}
