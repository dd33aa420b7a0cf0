//! [`TokenRefresh`]: puts the current token on requests to the API's origin.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, Uri};
use http_body::Body;
use tower_service::Service;

use crate::cache::{Cache, Fetch, Lookup, Token};
use crate::endpoint::TokenEndpoint;
use crate::fetch::Fetcher;
use crate::future::{ResponseFuture, Slow};
use crate::layer::TokenRefreshLayer;
use crate::BoxError;

/// Middleware that keeps a token fresh and puts `Authorization: Bearer <token>` on every
/// request to the token service's origin.
///
/// Made by [`TokenRefreshLayer`]; see the [crate docs](crate) for how it behaves. Clones
/// share one token.
pub struct TokenRefresh<S> {
    inner: S,
    cache: Arc<Cache>,
    config: Arc<Config>,
    /// This clone's copy of the current token, so a request need not load the shared one.
    seen: Option<Arc<Token>>,
}

/// What every clone of a service shares besides the token.
pub(crate) struct Config {
    pub(crate) endpoint: Arc<dyn TokenEndpoint>,
    pub(crate) origins: Vec<Origin>,
    pub(crate) refresh_timeout: Duration,
}

impl<S> TokenRefresh<S> {
    pub(crate) fn new(inner: S, cache: Arc<Cache>, config: Arc<Config>) -> Self {
        TokenRefresh {
            inner,
            cache,
            config,
            seen: None,
        }
    }

    /// A [`TokenRefreshLayer`] for `endpoint`, as tower-http spells it.
    pub fn layer(endpoint: impl TokenEndpoint) -> TokenRefreshLayer {
        TokenRefreshLayer::new(endpoint)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for TokenRefresh<S> {
    fn clone(&self) -> Self {
        TokenRefresh {
            inner: self.inner.clone(),
            cache: Arc::clone(&self.cache),
            config: Arc::clone(&self.config),
            seen: self.seen.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for TokenRefresh<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRefresh")
            .field("inner", &self.inner)
            .field("endpoint", &self.config.endpoint)
            .field("token", &self.cache)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for TokenRefresh<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: From<Bytes> + Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if !self.config.authorizes(request.uri()) {
            return ResponseFuture::passed_through(self.inner.call(request));
        }
        match self.cache.lookup(&mut self.seen) {
            Lookup::Send {
                header,
                generation,
                due,
            } => {
                if due {
                    let fetcher = || {
                        Box::new(Fetcher::<S, B>::new(self.inner.clone(), &self.config))
                            as Box<dyn Fetch>
                    };
                    self.cache.refresh_in_background(fetcher);
                }
                request.headers_mut().insert(AUTHORIZATION, header);
                ResponseFuture::sent(self.inner.call(request), self.cache.id(), generation)
            }
            Lookup::Wait => {
                // Give back the readiness we were granted: held while waiting, it could
                // starve the refresh of the very slot it needs (ConcurrencyLimit(1),
                // Buffer(1)). The request readies its own clone once a token exists.
                let unready = self.inner.clone();
                let readied = mem::replace(&mut self.inner, unready);
                let service = readied.clone();
                drop(readied);
                let (cache, config) = (Arc::clone(&self.cache), Arc::clone(&self.config));
                Slow::start(service, request, cache, config)
            }
        }
    }
}

/// An origin the token may go to: scheme, host and port, compared as RFC 6454 does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
    /// `host:port`, as most requests spell their authority: matched without parsing.
    authority: String,
    /// Whether `port` is the scheme's default, so a bare `host` names this origin too.
    default_port: bool,
}

impl Origin {
    /// The origin of `uri`, when it has a scheme and a host.
    pub(crate) fn of(uri: &Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let host = uri.host()?.to_ascii_lowercase();
        let port = uri.port_u16().or_else(|| default_port(&scheme))?;
        Some(Origin {
            authority: format!("{host}:{port}"),
            default_port: default_port(&scheme) == Some(port),
            scheme,
            host,
            port,
        })
    }

    fn matches(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(&self.scheme) {
            return false;
        }
        // Every request takes this path: compare the authority as written (most often
        // byte for byte as configured) before paying for parsing out its host and port.
        let written = authority.as_str();
        if written == self.authority
            || written.eq_ignore_ascii_case(&self.authority)
            || (self.default_port && written.eq_ignore_ascii_case(&self.host))
        {
            return true;
        }
        uri.host()
            .is_some_and(|host| host.eq_ignore_ascii_case(&self.host))
            && uri.port_u16().or_else(|| default_port(&self.scheme)) == Some(self.port)
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

impl Config {
    /// Whether a request for `uri` may carry the token: it names one of our origins, or
    /// none at all (origin-form, as a client bound to one connection sends it).
    pub(crate) fn authorizes(&self, uri: &Uri) -> bool {
        uri.authority().is_none() || self.origins.iter().any(|o| o.matches(uri))
    }
}
