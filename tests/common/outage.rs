//! An inner service that a test takes down and brings back, as a node whose port closes
//! and opens again: while down, every request fails in transport and reaches nobody.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{BoxError, Service};

/// `inner` behind a switch; clones share it.
#[derive(Clone, Debug)]
pub struct Switch<S> {
    inner: S,
    down: Arc<AtomicBool>,
    refused_token_requests: Arc<AtomicU64>,
}

impl<S> Switch<S> {
    pub fn new(inner: S) -> Self {
        Switch {
            inner,
            down: Arc::default(),
            refused_token_requests: Arc::default(),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Logins and refreshes that met a closed port.
    pub fn refused_token_requests(&self) -> u64 {
        self.refused_token_requests.load(Ordering::SeqCst)
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S> Service<Request<Full<Bytes>>> for Switch<S>
where
    S: Service<Request<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        if !self.down.load(Ordering::SeqCst) {
            let answer = self.inner.call(request);
            return Box::pin(async move { answer.await.map_err(Into::into) });
        }
        let path = request.uri().path();
        if path == "/v1/login" || path == "/v1/token_refresh" {
            self.refused_token_requests.fetch_add(1, Ordering::SeqCst);
        }
        Box::pin(async { Err("connection refused".into()) })
    }
}
