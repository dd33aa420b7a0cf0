//! A per-identity layer stays bounded: with a cap of 100 identities and 1,000 cycling
//! through it, the live heap is flat over 100,000 requests, and nothing runs for a dropped
//! identity. A binary of its own, with one test, so that its counting allocator counts
//! nothing else.
//!
//! The inner service is a stateless stand-in for Ocient (the mock keeps every token it
//! issued, which would grow the heap it shares with the layer): a login answers a token
//! that names its user, and a query counts a token of another user than `x-user` names.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_token_refresh::{OcientAuth, PerIdentityLayer};

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

#[global_allocator]
static GLOBAL: Counting = Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counter is a plain atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as i64, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        }
        new
    }
}

const CAP: usize = 100;
const USERS: usize = 1000;
const REQUESTS: usize = 100_000;
const IDLE: Duration = Duration::from_secs(600);

#[derive(Default)]
struct Seen {
    logins: AtomicU64,
    queries: AtomicU64,
    wrong_identity: AtomicU64,
}

type Body = Full<Bytes>;

/// Ocient's login and execute, as far as this test needs, remembering nothing.
async fn stateless_ocient(seen: Arc<Seen>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    if parts.uri.path() == "/v1/login" {
        seen.logins.fetch_add(1, Relaxed);
        let body = body.collect().await.unwrap().to_bytes();
        let login: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let user = login["username"].as_str().unwrap();
        let answer =
            serde_json::json!({"access_token": format!("{user}~token"), "expires_in": 3600});
        return Response::new(Full::from(answer.to_string()));
    }
    seen.queries.fetch_add(1, Relaxed);
    let token = parts.headers[http::header::AUTHORIZATION].to_str().unwrap();
    let user = parts.headers["x-user"].to_str().unwrap();
    if token != format!("Bearer {user}~token") {
        seen.wrong_identity.fetch_add(1, Relaxed);
        let mut refused = Response::new(Full::default());
        *refused.status_mut() = StatusCode::FORBIDDEN;
        return refused;
    }
    Response::new(Full::from("{}"))
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct User(u32);

fn query_as(user: u32) -> Request<Body> {
    let mut request = Request::post("http://127.0.0.1:4050/v1/execute/system")
        .header("content-type", "application/json")
        .header("x-user", format!("user-{user}"))
        .body(Full::from(r#"{"statement":"SELECT 1"}"#))
        .unwrap();
    request.extensions_mut().insert(User(user));
    request
}

fn live() -> i64 {
    LIVE_BYTES.load(Relaxed)
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn a_thousand_users_through_a_cap_of_a_hundred_leave_a_flat_heap_and_no_task_behind() {
    let seen = Arc::new(Seen::default());
    let ocient = {
        let seen = Arc::clone(&seen);
        service_fn(move |request| {
            let seen = Arc::clone(&seen);
            async move { Ok::<_, Infallible>(stateless_ocient(seen, request).await) }
        })
    };
    let layer = PerIdentityLayer::new(|user: &User| {
        let name = format!("user-{}", user.0);
        OcientAuth::new(http::Uri::from_static("http://127.0.0.1:4050")).credentials(name, "secret")
    })
    .max_identities(CAP)
    .idle_timeout(IDLE)
    .refresh_when_idle(true);
    let service = ServiceBuilder::new().layer(layer).service(ocient);
    let baseline_tasks = alive_tasks();

    let mut after_warm_up = 0;
    for request in 0..REQUESTS {
        if request == REQUESTS / 10 {
            after_warm_up = live();
        }
        let user = (request % USERS) as u32;
        let response = service.clone().oneshot(query_as(user)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let growth = live() - after_warm_up;
    println!("live heap grew {growth} bytes over the last 90,000 requests");

    assert_eq!(
        seen.wrong_identity.load(Relaxed),
        0,
        "never another's token"
    );
    assert_eq!(seen.queries.load(Relaxed), REQUESTS as u64);
    // Round robin over ten times the cap: every user was dropped before coming back.
    assert_eq!(
        seen.logins.load(Relaxed),
        REQUESTS as u64,
        "a login each time"
    );
    assert_eq!(service.status().held, CAP);
    // A leak of a few bytes per request (or per dropped identity) would show as megabytes.
    assert!(growth < 256 * 1024, "the heap grew {growth} bytes");
    // A timer for each identity held, and the sweeper: nothing for the 99,900 dropped.
    let tasks = alive_tasks() - baseline_tasks;
    assert!(tasks <= CAP + 1, "{tasks} tasks for {CAP} identities");

    // Idle for longer than the idle timeout: every identity goes, and what ran for it.
    let logins = seen.logins.load(Relaxed);
    tokio::time::sleep(IDLE + Duration::from_secs(2)).await;
    assert_eq!(service.status().held, 0);
    assert_eq!(alive_tasks(), baseline_tasks, "no timer, no sweeper");
    assert_eq!(
        seen.logins.load(Relaxed),
        logins,
        "no idle refresh for them"
    );
}
