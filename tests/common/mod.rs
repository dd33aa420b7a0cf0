//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod capture;
pub mod https;
pub mod metrics_contract;
pub mod outage;
pub mod tally;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use ocient_mock::{MockBody, MockOcient};
use tower::{BoxError, Service, ServiceExt};
use tower_token_refresh::{OcientAuth, TokenRefresh, TokenRefreshLayer};

/// `n` seconds.
pub fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

/// `n` milliseconds.
pub fn millis(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

/// The request type every test sends.
pub type QueryRequest = http::Request<Full<Bytes>>;

/// The origin the in-process tests pretend the SQL node has.
pub const BASE: &str = "https://sql-node.test:9443";

pub fn auth() -> OcientAuth {
    OcientAuth::new(BASE.parse().unwrap())
        .credentials("jdoe", "secret")
        .database("retail_analytics")
}

pub fn query() -> Request<Full<Bytes>> {
    query_to(&format!("{BASE}/v1/execute/retail_analytics"))
}

pub fn query_to(uri: &str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::from(r#"{"statement":"SELECT 1"}"#))
        .unwrap()
}

/// One request through `service`, readied first as the tower contract asks.
pub async fn send<S>(service: &S, request: Request<Full<Bytes>>) -> Result<S::Response, BoxError>
where
    S: Service<Request<Full<Bytes>>, Error = BoxError> + Clone,
{
    service.clone().oneshot(request).await
}

/// What an inner service saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An in-process Ocient that also keeps every request it was sent.
#[derive(Clone, Debug)]
pub struct Recorder {
    pub mock: MockOcient,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub fn new(mock: MockOcient) -> Self {
        Recorder {
            mock,
            seen: Arc::default(),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Service<Request<Full<Bytes>>> for Recorder {
    type Response = Response<MockBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let mut mock = self.mock.clone();
        let seen = Arc::clone(&self.seen);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            seen.lock().unwrap().push(Seen {
                path: parts.uri.path().to_owned(),
                headers: parts.headers.clone(),
                body: body.clone(),
            });
            mock.call(Request::from_parts(parts, Full::new(body))).await
        })
    }
}

/// The layer over an in-process recorder, as a user would stack it.
pub fn layered(mock: MockOcient, layer: TokenRefreshLayer) -> (TokenRefresh<Recorder>, Recorder) {
    let recorder = Recorder::new(mock);
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(recorder.clone());
    (service, recorder)
}

/// The layer over an in-process recorder behind a [`Switch`](outage::Switch) that takes
/// the node down and up.
pub fn switched(
    mock: MockOcient,
    layer: TokenRefreshLayer,
) -> (
    TokenRefresh<outage::Switch<Recorder>>,
    outage::Switch<Recorder>,
) {
    let switch = outage::Switch::new(Recorder::new(mock));
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service(switch.clone());
    (service, switch)
}

/// Once the layer and its services are gone: no task, no clone of the inner service (whose
/// clones all share `shared`), and no token request ever again, as `token_requests` counts
/// them.
pub async fn assert_nothing_left<T>(
    baseline: usize,
    shared: &Arc<T>,
    token_requests: impl Fn() -> u64,
) {
    tokio::time::sleep(millis(1)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_alive_tasks(), baseline, "no task or timer left");
    let clones = Arc::strong_count(shared);
    assert_eq!(clones, 1, "no clone of the inner service left");
    let after = token_requests();
    tokio::time::sleep(secs(3600)).await;
    assert_eq!(token_requests(), after, "and no token request");
}

/// `callers` queries sent through `service` at once, each on a task of its own; every one
/// must be answered 200.
pub async fn all_ok_at_once<S>(service: &S, callers: usize)
where
    S: Service<Request<Full<Bytes>>, Response = Response<MockBody>, Error = BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let service = service.clone();
        tasks.spawn(async move { send(&service, query()).await.map(|r| r.status()) });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap().unwrap(), http::StatusCode::OK);
    }
}

/// A query answered 200, every token revoked on `mock`, the next query answered 401 (which
/// revokes the layer's token), and the one after it 200 again, with whatever new token the
/// layer obtained.
pub async fn through_a_revocation<S>(service: &S, mock: &MockOcient)
where
    S: Service<Request<Full<Bytes>>, Response = Response<MockBody>, Error = BoxError> + Clone,
{
    let status = |response: Response<MockBody>| response.status();
    assert_eq!(
        status(send(service, query()).await.unwrap()),
        http::StatusCode::OK
    );
    mock.revoke_all();
    let revoked = status(send(service, query()).await.unwrap());
    assert_eq!(revoked, http::StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(send(service, query()).await.unwrap()),
        http::StatusCode::OK
    );
}

/// The `Error` a failed call carries, which must be the crate's own.
pub fn token_error(error: &BoxError) -> &tower_token_refresh::Error {
    error
        .downcast_ref::<tower_token_refresh::Error>()
        .unwrap_or_else(|| panic!("not a token error: {error}"))
}

/// A token the mock issued to `jdoe`, as if obtained elsewhere and handed over.
pub async fn login_token(mock: &MockOcient) -> String {
    let login = Request::post(format!("{BASE}/v1/login"))
        .header("content-type", "application/json")
        .body(Full::<Bytes>::from(
            r#"{"username":"jdoe","password":"secret"}"#,
        ))
        .unwrap();
    let response = mock.clone().oneshot(login).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}
