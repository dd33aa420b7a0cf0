//! The in-process mock as an inner service that reads the answer to every query and counts
//! the refusals by cause, and can hold queries back: for the harnesses that check no query
//! ever went out with an expired token.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use ocient_mock::MockOcient;
use tokio::time::sleep;
use tower::{BoxError, Service};

pub type Body = BoxBody<Bytes, BoxError>;

/// The mock behind an optional `/v1/execute` latency, counting refused queries by cause.
#[derive(Clone)]
pub struct TalliedMock {
    mock: MockOcient,
    /// Added before each query reaches the mock, in milliseconds.
    pub query_latency_ms: Arc<AtomicU64>,
    /// Queries answered -1208: sent with an expired token.
    pub expired: Arc<AtomicU64>,
    /// Queries answered -1205: a revoked or unknown token (legitimate for a query in flight
    /// when its token was revoked).
    pub revoked: Arc<AtomicU64>,
    /// Queries answered with any other non-zero vendor code.
    pub other: Arc<AtomicU64>,
}

impl TalliedMock {
    pub fn new(mock: MockOcient) -> Self {
        TalliedMock {
            mock,
            query_latency_ms: Arc::default(),
            expired: Arc::default(),
            revoked: Arc::default(),
            other: Arc::default(),
        }
    }
}

impl Service<Request<Full<Bytes>>> for TalliedMock {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let is_query = request.uri().path().starts_with("/v1/execute/");
        let latency = Duration::from_millis(self.query_latency_ms.load(Ordering::Relaxed));
        let this = self.clone();
        Box::pin(async move {
            if is_query && !latency.is_zero() {
                sleep(latency).await;
            }
            let mut mock = this.mock.clone();
            let response = match mock.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if !is_query {
                return Ok(response.map(BodyExt::boxed));
            }
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let answer: serde_json::Value = serde_json::from_slice(&bytes)?;
            let tally = match answer["status"]["vendor_code"].as_i64() {
                Some(0) => None,
                Some(-1208) => Some(&this.expired),
                Some(-1205) => Some(&this.revoked),
                _ => Some(&this.other),
            };
            if let Some(tally) = tally {
                tally.fetch_add(1, Ordering::Relaxed);
            }
            let body = Full::new(bytes).map_err(|never: Infallible| match never {});
            Ok(Response::from_parts(parts, body.boxed()))
        })
    }
}
