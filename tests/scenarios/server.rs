//! The inner service: the mock, with query latency and a tally of refusals; and the
//! mock's side of a row: its faults and a token handed over without the layer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use ocient_mock::{Fault, MockOcient};
use tokio::time::sleep;
use tower::{BoxError, Service, ServiceExt};

use crate::common::BASE;
use crate::table::F;

pub type Body = BoxBody<Bytes, BoxError>;

/// The mock behind an optional `/v1/execute` latency, counting refused queries by cause.
#[derive(Clone)]
pub struct Server {
    mock: MockOcient,
    pub query_latency_ms: Arc<AtomicU64>,
    /// Queries answered -1208: sent with an expired token.
    pub expired: Arc<AtomicU64>,
    /// Queries answered with any other non-zero vendor code (-1205: revoked or unknown).
    pub refused: Arc<AtomicU64>,
}

impl Server {
    pub fn new(mock: MockOcient) -> Self {
        Server {
            mock,
            query_latency_ms: Arc::default(),
            expired: Arc::default(),
            refused: Arc::default(),
        }
    }
}

impl Service<Request<Full<Bytes>>> for Server {
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
            match answer["status"]["vendor_code"].as_i64() {
                Some(0) => {}
                Some(-1208) => {
                    this.expired.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    this.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            let body = Full::new(bytes).map_err(|never: Infallible| match never {});
            Ok(Response::from_parts(parts, body.boxed()))
        })
    }
}

pub fn fault(f: F) -> Fault {
    let code = |n: u16| StatusCode::from_u16(n).expect("a valid HTTP status");
    match f {
        F::Status(status) => Fault::Status(code(status)),
        F::Code(status, vendor_code) => Fault::VendorCode {
            http: code(status),
            vendor_code,
            sql_state: match vendor_code {
                -733 => "42502",
                -1204 => "08003",
                -304 | -1208..=-1205 => "08004",
                _ => "XX000",
            },
        },
        F::Body(body) => Fault::Body {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from_static(body.as_bytes()),
        },
        F::Huge => Fault::Body {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from(vec![b' '; 1024 * 1024 + 1]),
        },
        F::Hang => Fault::Hang,
        F::CutOff => Fault::CutOff,
    }
}

/// Logs in on the mock directly, as whoever hands the layer its initial token would.
pub async fn seed_token(mock: &MockOcient) -> String {
    let login = Request::post(format!("{BASE}/v1/login"))
        .header("content-type", "application/json")
        .body(Full::<Bytes>::from(
            r#"{"username":"jdoe","password":"secret","database":"retail_analytics"}"#,
        ))
        .unwrap();
    let response = mock.clone().oneshot(login).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}
