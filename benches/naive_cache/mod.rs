//! The baseline: a naive token cache that holds its lock across the refresh, as most token
//! caches do.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use tower::{BoxError, Service, ServiceExt};

use crate::common::{Body, BoxFuture};

/// Where the naive cache refreshes.
const REFRESH: &str = "https://sql-node.test:9443/v1/token_refresh";

/// The token and when it is due for a refresh.
type NaiveToken = Option<(String, Instant)>;

#[derive(Clone)]
pub struct NaiveAuth<S> {
    inner: S,
    token: Arc<tokio::sync::Mutex<NaiveToken>>,
}

impl<S> NaiveAuth<S> {
    /// A cache over `inner` holding `token`, due for a refresh at `due_at`.
    pub fn new(inner: S, token: &str, due_at: Instant) -> Self {
        let token = Some((token.to_owned(), due_at));
        NaiveAuth {
            inner,
            token: Arc::new(tokio::sync::Mutex::new(token)),
        }
    }
}

/// Calls the token endpoint: `POST /v1/token_refresh` with the current token.
async fn naive_refresh<S>(inner: S, current: Option<&str>) -> Result<(String, Duration), BoxError>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Into<BoxError>,
{
    let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static(REFRESH);
    if let Some(current) = current {
        let value = HeaderValue::from_str(&format!("Bearer {current}"))?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let response = inner.oneshot(request).await.map_err(Into::into)?;
    let body = response.into_body().collect().await?.to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    let token = answer["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned();
    let lifetime = answer["expires_in"].as_f64().ok_or("no expires_in")?;
    Ok((token, Duration::from_secs_f64(lifetime)))
}

impl<S> Service<Request<Body>> for NaiveAuth<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        let token = Arc::clone(&self.token);
        Box::pin(async move {
            let header = {
                let mut token = token.lock().await;
                let due = token.as_ref().is_none_or(|(_, due)| Instant::now() >= *due);
                if due {
                    // The lock stays held for the whole exchange.
                    let current = token.as_ref().map(|(t, _)| t.as_str());
                    let (fresh, lifetime) = naive_refresh(inner.clone(), current).await?;
                    *token = Some((fresh, Instant::now() + lifetime / 2));
                }
                let (current, _) = token.as_ref().ok_or("no token")?;
                let mut value = HeaderValue::from_str(&format!("Bearer {current}"))?;
                value.set_sensitive(true);
                value
            };
            request.headers_mut().insert(AUTHORIZATION, header);
            inner.oneshot(request).await.map_err(Into::into)
        })
    }
}
