//! [`IdentityProviderServer`]: a [`TestIdentityProvider`] on a loopback
//! port, with a token endpoint for the client credentials grant, its key set
//! and its discovery document.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Serialize;

use crate::body::{BoxError, MockBody};
use crate::idp::TestIdentityProvider;
use crate::jwks::TrustedIssuer;
use crate::loopback::{bind_loopback, serve_on, LoopbackServer};
use crate::wire::{json, respond_with};

/// How long the tokens `/token` hands out are valid, as `expires_in` says.
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// More than any form of client credentials needs.
const FORM_LIMIT: usize = 16 * 1024;
/// The subject of a token asked for by a client that did not say who it is.
const ANONYMOUS_CLIENT: &str = "test-client";

/// A [`TestIdentityProvider`] listening on a loopback port, from
/// [`TestIdentityProvider::serve`]. Its issuer is its own address,
/// `http://127.0.0.1:PORT`, and it serves:
///
/// - `POST /token`: the client credentials grant. A form
///   (`application/x-www-form-urlencoded`) with `grant_type=client_credentials`,
///   the client named by `client_id` in the form or by HTTP Basic; any client
///   and secret will do. It answers `{"access_token", "id_token",
///   "token_type": "Bearer", "expires_in": 300}`, both tokens JWTs for the
///   client's id (`test-client` when it names none). Another grant type is
///   HTTP 400 `{"error": "unsupported_grant_type"}`; no grant type, or no
///   form, is HTTP 400 `{"error": "invalid_request"}`.
/// - `GET /jwks`: its JSON Web Key Set.
/// - `GET /.well-known/openid-configuration`: `issuer`, `token_endpoint`,
///   `jwks_uri` and what it supports.
///
/// Dropping it (or calling [`shutdown`](IdentityProviderServer::shutdown))
/// stops it, as a [`LoopbackServer`] stops.
///
/// # Example
///
/// ```rust
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::{BodyExt, Full};
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use ocient_mock::{MockOcient, TestIdentityProvider};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let idp = TestIdentityProvider::serve().await?;
/// let mock = MockOcient::new().trust_issuer(idp.trusted_issuer());
///
/// // What the client under test does: fetch a token from the provider...
/// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
/// let form = "grant_type=client_credentials&client_id=reporting&client_secret=s3cret";
/// let request = Request::post(idp.token_endpoint())
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(Full::from(form))?;
/// let answer = client.request(request).await?.into_body().collect().await?;
/// let answer: serde_json::Value = serde_json::from_slice(&answer.to_bytes())?;
/// // ...and trade answer["id_token"] for an Ocient token at /v1/sso_token.
/// assert_eq!(answer["token_type"], "Bearer");
/// assert_eq!(idp.tokens_issued(), 1);
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "sso")))]
#[derive(Debug)]
#[must_use = "dropping the server stops it"]
pub struct IdentityProviderServer {
    server: LoopbackServer,
    endpoints: Endpoints,
}

/// The provider's HTTP side: what every connection's service holds.
#[derive(Debug, Clone)]
struct Endpoints {
    provider: TestIdentityProvider,
    issued: Arc<AtomicU64>,
}

#[derive(Serialize)]
struct Granted {
    access_token: String,
    id_token: String,
    token_type: &'static str,
    expires_in: u64,
}

impl TestIdentityProvider {
    /// Binds `127.0.0.1` on a free port and serves a provider there whose
    /// issuer is `http://127.0.0.1:PORT` and whose tokens are for the
    /// audience `ocient`. Must be awaited on a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the loopback socket cannot be bound.
    pub async fn serve() -> io::Result<IdentityProviderServer> {
        Self::serve_with(|provider| provider).await
    }

    /// [`serve`](TestIdentityProvider::serve), with tokens for `audience`.
    ///
    /// # Errors
    ///
    /// When the loopback socket cannot be bound.
    pub async fn serve_with_audience(
        audience: impl Into<String>,
    ) -> io::Result<IdentityProviderServer> {
        let audience = audience.into();
        Self::serve_with(move |provider| provider.audience(audience)).await
    }

    /// The issuer is the address, so the socket is bound before the
    /// provider is made.
    async fn serve_with(
        configure: impl FnOnce(Self) -> Self,
    ) -> io::Result<IdentityProviderServer> {
        let listener = bind_loopback().await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let endpoints = Endpoints {
            provider: configure(Self::new(issuer)),
            issued: Arc::default(),
        };
        let server = serve_on(listener, endpoints.clone())?;
        Ok(IdentityProviderServer { server, endpoints })
    }
}

impl IdentityProviderServer {
    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The base URI, `http://127.0.0.1:PORT/`.
    pub fn uri(&self) -> Uri {
        self.server.uri()
    }

    /// Its issuer, `http://127.0.0.1:PORT`: the `iss` of its tokens, and
    /// where its discovery document is found.
    pub fn issuer(&self) -> &str {
        self.endpoints.provider.issuer()
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn token_endpoint(&self) -> Uri {
        self.endpoints.at("/token")
    }

    /// `http://127.0.0.1:PORT/jwks`.
    pub fn jwks_uri(&self) -> Uri {
        self.endpoints.at("/jwks")
    }

    /// Its issuer, key and audience, for
    /// [`MockOcient::trust_issuer`](crate::MockOcient::trust_issuer).
    pub fn trusted_issuer(&self) -> TrustedIssuer {
        self.endpoints.provider.trusted_issuer()
    }

    /// The provider it serves, to issue tokens in process too, such as
    /// ones already expired.
    pub fn provider(&self) -> &TestIdentityProvider {
        &self.endpoints.provider
    }

    /// How many `/token` requests it granted; each answer carries an access
    /// token and an ID token.
    pub fn tokens_issued(&self) -> u64 {
        self.endpoints.issued.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes open connections; dropping does the same.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Endpoints {
    fn at(&self, path: &str) -> Uri {
        let uri = format!("{}{path}", self.provider.issuer());
        // The issuer is a socket address's URI, so this parses; the default keeps it panic-free.
        uri.parse().unwrap_or_default()
    }

    async fn respond<B>(self, request: Request<B>) -> Response<MockBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        match (path, &parts.method) {
            ("/token", &Method::POST) => self.token(&parts.headers, body).await,
            ("/jwks", &Method::GET) => {
                let jwks = self.provider.jwks();
                respond_with(
                    StatusCode::OK,
                    Some(json_type()),
                    MockBody::full(jwks.into()),
                )
            }
            ("/.well-known/openid-configuration", &Method::GET) => self.discovery(),
            ("/token" | "/jwks" | "/.well-known/openid-configuration", _) => {
                oauth_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            _ => oauth_error(StatusCode::NOT_FOUND, "not_found"),
        }
    }

    async fn token<B>(&self, headers: &HeaderMap, body: B) -> Response<MockBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let Some(form) = read_form(headers, body).await else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
        };
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {}
            Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        }
        let client = form
            .get("client_id")
            .cloned()
            .or_else(|| basic_client_id(headers))
            .unwrap_or_else(|| ANONYMOUS_CLIENT.to_owned());
        let granted = Granted {
            access_token: self.provider.issue(&client, TOKEN_LIFETIME),
            id_token: self.provider.issue(&client, TOKEN_LIFETIME),
            token_type: "Bearer",
            expires_in: TOKEN_LIFETIME.as_secs(),
        };
        self.issued.fetch_add(1, Ordering::Relaxed);
        let mut response = json(StatusCode::OK, &granted);
        // RFC 6749 §5.1: an answer carrying tokens is not to be cached.
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    fn discovery(&self) -> Response<MockBody> {
        let document = serde_json::json!({
            "issuer": self.provider.issuer(),
            "token_endpoint": self.at("/token").to_string(),
            "jwks_uri": self.at("/jwks").to_string(),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        });
        json(StatusCode::OK, &document)
    }
}

/// The form's fields, the first of each name; `None` when the body is not
/// a form or cannot be read.
async fn read_form<B>(headers: &HeaderMap, body: B) -> Option<HashMap<String, String>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return None;
    }
    let bytes = Limited::new(body, FORM_LIMIT)
        .collect()
        .await
        .ok()?
        .to_bytes();
    let mut form = HashMap::new();
    for (name, value) in form_urlencoded::parse(&bytes) {
        form.entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    Some(form)
}

/// The client id of `Authorization: Basic base64(id:secret)`, as sent.
fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, _secret) = decoded.split_once(':')?;
    Some(id.to_owned())
}

fn oauth_error(status: StatusCode, error: &'static str) -> Response<MockBody> {
    json(status, &serde_json::json!({ "error": error }))
}

fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

impl<B> tower_service::Service<Request<B>> for Endpoints
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<MockBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<MockBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let endpoints = self.clone();
        Box::pin(async move { Ok(endpoints.respond(request).await) })
    }
}

#[cfg(test)]
mod tests;
