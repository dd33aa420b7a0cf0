//! [`TokenRefresh`]: puts the current token on requests to the API's origin.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::Request;
use tower_service::Service;

use crate::config::{Config, Route};
use crate::endpoint::TokenEndpoint;
use crate::error::BoxError;
use crate::fetch::Fetcher;
use crate::future::ResponseFuture;
use crate::inner::InnerService;
use crate::layer::TokenRefreshLayer;
use crate::state::{Lookup, Token, TokenState};

/// Middleware that keeps a token fresh and puts `Authorization: Bearer <token>` on every
/// request to the token service's origin.
///
/// Made by [`TokenRefreshLayer`]; see the [crate docs](crate) for how it behaves. Clones
/// share one token.
pub struct TokenRefresh<S> {
    inner: S,
    state: Arc<TokenState>,
    config: Arc<Config>,
    /// This clone's copy of the current token, so a request need not load the shared one.
    seen: Option<Arc<Token>>,
}

impl<S> TokenRefresh<S> {
    pub(crate) fn new(inner: S, state: Arc<TokenState>, config: Arc<Config>) -> Self {
        TokenRefresh {
            inner,
            state,
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
            state: Arc::clone(&self.state),
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
            .field("token", &self.state)
            .finish()
    }
}

impl<S, B> Service<Request<B>> for TokenRefresh<S>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.config.route(request.uri()) {
            Route::Api => {}
            Route::Elsewhere => return ResponseFuture::passed_through(self.inner.call(request)),
            Route::Refused(origin) => return ResponseFuture::failed(origin.refused()),
        }
        match self.state.lookup(&mut self.seen) {
            Lookup::Send {
                header,
                generation,
                due,
            } => {
                if due {
                    let fetcher = || Fetcher::<S, B>::boxed(self.inner.clone(), &self.config);
                    self.state.refresh_in_background(fetcher);
                }
                request.headers_mut().insert(AUTHORIZATION, header);
                let sent = (Arc::clone(&self.state), generation);
                ResponseFuture::sent(self.inner.call(request), sent)
            }
            Lookup::Wait => {
                // Give back the readiness we were granted: held while waiting, it could
                // starve the refresh of the very slot it needs (ConcurrencyLimit(1),
                // Buffer(1)). The request readies its own clone once a token exists.
                let unready = self.inner.clone();
                let readied = mem::replace(&mut self.inner, unready);
                let service = readied.clone();
                drop(readied);
                let (state, config) = (Arc::clone(&self.state), Arc::clone(&self.config));
                ResponseFuture::waiting(service, request, state, config)
            }
        }
    }
}
