//! What the benches share: the request every stack gets, the trivial inner service, the
//! token, and the inner future of the benches' simulated SQL node.
#![allow(dead_code)]

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use std::time::Duration;
use tokio::runtime::{Builder, Runtime};
use tower::{Service, ServiceExt};
use tower_token_refresh::OcientAuth;

pub const BASE: &str = "https://sql-node.test:9443";
pub const QUERY: &str = "https://sql-node.test:9443/v1/execute/retail_analytics";
pub const STATEMENT: &[u8] = br#"{"statement":"SELECT 1"}"#;

/// Tasks sharing one service on the multi-thread runtime.
pub const TASKS: u64 = 64;
/// Calls a task makes between yields.
pub const CHUNK: u64 = 64;

pub type Body = Full<Bytes>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A 200-character token, about the size of a real JWT access token.
pub fn token() -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut token = String::from("eyJ");
    let mut i = 7usize;
    while token.len() < 200 {
        token.push(alphabet[i % alphabet.len()] as char);
        i = i.wrapping_mul(31).wrapping_add(17);
    }
    token
}

/// The same request for every stack: a query with a body and a content type.
pub fn request(uri: &Uri) -> Request<Body> {
    let mut request = Request::new(Full::new(Bytes::from_static(STATEMENT)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    request
}

/// Whose request it is, for the benches of a token per identity: a number, cheap to hash,
/// copied without allocating (`Copy`), as a user id would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub u32);

/// A 200-character token of its own for `user`: `token()` with its last characters the
/// user's number, so each identity's header differs and is the size of a real one.
pub fn token_of(user: UserId) -> String {
    let mut token = token();
    let id = format!("{:08}", user.0);
    token.replace_range(token.len() - id.len().., &id);
    token
}

/// `request(uri)` with `user` in its extensions, as an application's middleware puts it.
pub fn request_as(uri: &Uri, user: UserId) -> Request<Body> {
    let mut request = request(uri);
    request.extensions_mut().insert(user);
    request
}

/// `n` requests through `service` as in `call_n`, each with an identity in its extensions:
/// the users `0..users` in turn, from `*next` on (left where the next call goes on).
pub async fn call_n_as<S>(service: &mut S, uri: &Uri, users: u32, next: &mut u32, n: u64)
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Debug,
{
    for _ in 0..n {
        let user = UserId(*next);
        *next += 1;
        if *next == users {
            *next = 0;
        }
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request_as(uri, user))
            .await
            .expect("call");
        black_box(response);
    }
}

/// The trivial inner service: a ready, empty `200`.
pub fn answer(_: Request<Body>) -> Ready<Result<Response<Body>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::new()))))
}

/// `n` requests through `service`, each readied first, as a client would send them.
pub async fn call_n<S>(service: &mut S, uri: &Uri, n: u64)
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Debug,
{
    for _ in 0..n {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request(uri))
            .await
            .expect("call");
        black_box(response);
    }
}

/// A current-thread runtime and a 2-worker one, as every hot-path figure is taken on both.
pub fn runtimes() -> (Runtime, Runtime) {
    let current = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let two_workers = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    (current, two_workers)
}

/// An hour-long token handed in, so the layer needs no login to start.
pub fn auth_with(token: &str) -> OcientAuth {
    OcientAuth::new(BASE.parse().expect("base URI")).initial_token(token, Duration::from_secs(3600))
}

/// `auth_with` for `user`: its own hour-long token handed in, so it needs no login.
pub fn auth_for(user: &UserId) -> OcientAuth {
    auth_with(&token_of(*user))
}

/// A simulated SQL node's answer: ready at once (a query), or later (a token request).
pub enum NodeFuture {
    Ready(Option<Response<Body>>),
    Token(BoxFuture<Response<Body>>),
}

impl Future for NodeFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            NodeFuture::Ready(response) => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            NodeFuture::Token(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// The inner service of the sanity checks: echoes the `Authorization` it received.
pub fn echo(request: Request<Body>) -> Ready<Result<Response<Body>, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    if let Some(value) = request.headers().get(http::header::AUTHORIZATION) {
        response
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.clone());
    }
    ready(Ok(response))
}
