//! [`RetryUnauthorized`]: a retry policy that gives a request one more try after a 401.

use std::future::{ready, Ready};

use http::{Request, Response, StatusCode};
use tower::retry::Policy;

/// Retries a request once when it is answered `401 Unauthorized`.
///
/// A 401 tells [`TokenRefresh`](crate::TokenRefresh) that the token the request carried is
/// no good (revoked on the server, say); the retry then goes out with a new one. Put the
/// retry **outside** the token layer, so the retried request passes through it again:
///
/// ```no_run
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper_rustls::HttpsConnectorBuilder;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tower::retry::RetryLayer;
/// use tower::ServiceBuilder;
/// use tower_token_refresh::{OcientAuth, RetryUnauthorized, TokenRefreshLayer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials("jdoe", "secret");
/// let https = HttpsConnectorBuilder::new()
///     .with_native_roots()
///     .unwrap()
///     .https_only()
///     .enable_http1()
///     .build();
/// let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https);
/// let service = ServiceBuilder::new()
///     .layer(RetryLayer::new(RetryUnauthorized::default()))
///     .layer(TokenRefreshLayer::new(auth))
///     .service(client);
/// # let _ = service;
/// # }
/// ```
///
/// Only requests whose body can be cloned (`B: Clone`, as `Full<Bytes>`, `Bytes` and
/// `Vec<u8>` are) are retried. A client whose own body is not `Clone` (reqwest's: tower-reqwest's
/// `HttpClientLayer` takes `http::Request<reqwest::Body>`) is given one under the token layer:
/// build requests with a `Bytes` body and turn it into the client's below, with
/// `ServiceBuilder::map_request`:
///
/// ```no_run
/// use bytes::Bytes;
/// use http::Request;
/// use tower::retry::RetryLayer;
/// use tower::ServiceBuilder;
/// use tower_reqwest::HttpClientLayer;
/// use tower_token_refresh::{OcientAuth, RetryUnauthorized, TokenRefreshLayer};
///
/// let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials("jdoe", "secret");
/// let service = ServiceBuilder::new()
///     .layer(RetryLayer::new(RetryUnauthorized::default())) // clones Request<Bytes>
///     .layer(TokenRefreshLayer::new(auth))
///     .map_request(|request: Request<Bytes>| request.map(reqwest::Body::from))
///     .layer(HttpClientLayer)
///     .service(reqwest::Client::new());
/// # let _ = service;
/// ```
#[derive(Debug, Clone, Default)]
pub struct RetryUnauthorized {
    retried: bool,
}

impl<B, ResBody, E> Policy<Request<B>, Response<ResBody>, E> for RetryUnauthorized
where
    B: Clone,
{
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _request: &mut Request<B>,
        result: &mut Result<Response<ResBody>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !self.retried => {
                self.retried = true;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        let mut clone = Request::new(request.body().clone());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.version_mut() = request.version();
        *clone.headers_mut() = request.headers().clone();
        *clone.extensions_mut() = request.extensions().clone();
        Some(clone)
    }
}
