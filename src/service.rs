//! [`TokenRefresh`]: puts the current token on requests to the API's origin.

use std::fmt;
use std::future::Future;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::Request;
use tower_service::Service;

use crate::config::{Config, Route};
use crate::endpoint::TokenEndpoint;
use crate::error::{BoxError, Error};
use crate::fetch::Fetcher;
use crate::future::{self, ResponseFuture};
use crate::inner::InnerService;
use crate::layer::TokenRefreshLayer;
use crate::record::Transition;
use crate::state::{Lookup, Token, TokenState};
use crate::status::TokenStatus;

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

    /// Where the token is, for a health check: see [`TokenStatus`]. Sends nothing.
    ///
    /// ```
    /// # fn check<S>(service: &tower_token_refresh::TokenRefresh<S>) -> Result<(), String> {
    /// let status = service.status();
    /// if !status.is_usable() {
    ///     let why = status.last_error.map(|e| e.to_string());
    ///     return Err(why.unwrap_or_else(|| "no token yet".into()));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn status(&self) -> TokenStatus {
        self.state.status()
    }

    /// Obtains a usable token now, and resolves once one is installed: for a startup check
    /// that fails before the service reports ready. With a usable token already there it
    /// resolves at once and sends nothing; concurrent callers and requests share one attempt.
    ///
    /// ```no_run
    /// # async fn start<S>(service: tower_token_refresh::TokenRefresh<S>) -> Result<(), tower_token_refresh::Error>
    /// # where S: tower_service::Service<http::Request<http_body_util::Full<bytes::Bytes>>, Response = http::Response<http_body_util::Full<bytes::Bytes>>> + Clone + Send + 'static,
    /// #     S::Error: Into<Box<dyn std::error::Error + Send + Sync>>, S::Future: Send,
    /// # {
    /// // A wrong password fails here, as `Error::Rejected` with vendor code -304.
    /// service.warm_up().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// The request body type `B` is the wrapped service's; it is inferred when the service
    /// takes one body type only, as hyper-util's `Client` does.
    pub fn warm_up<B>(&self) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        let (service, state, config) = self.detached::<B>();
        future::warm_up(service, state, config)
    }

    /// Starts a new token now, whatever the current one's phase and however long the
    /// backoff, and resolves with the outcome: after an operator rotated the password, or
    /// learned that the token was revoked elsewhere.
    ///
    /// ```no_run
    /// # async fn rotated<S>(service: tower_token_refresh::TokenRefresh<S>) -> Result<(), tower_token_refresh::Error>
    /// # where S: tower_service::Service<http::Request<http_body_util::Full<bytes::Bytes>>, Response = http::Response<http_body_util::Full<bytes::Bytes>>> + Clone + Send + 'static,
    /// #     S::Error: Into<Box<dyn std::error::Error + Send + Sync>>, S::Future: Send,
    /// # {
    /// // The password was rotated: a token obtained with the old one is refreshed (or, if the
    /// // server refuses it, replaced by a login) now rather than at its refresh point.
    /// service.refresh_now().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// It respects only the single flight: an attempt under way is joined (one request for
    /// every caller) and its outcome returned, and a flight waiting out a backoff is made
    /// to try now. An attempt that was already sending credentials read before a rotation
    /// may so fail; calling again then starts one with the new ones. While it runs, a
    /// usable token is still sent, so no request waits. A valid token refreshes; a token
    /// the server rejects as revoked leads to a login, as at any refresh.
    pub fn refresh_now<B>(&self) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        let (service, state, config) = self.detached::<B>();
        future::refresh_now(service, state, config)
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

impl<S> TokenRefresh<S> {
    /// What a future that outlives this borrow needs (`warm_up`, `refresh_now`): an unready
    /// clone of the wrapped service, the state and the configuration. Hands over a fetcher
    /// first, as a request would.
    fn detached<B>(&self) -> (S, Arc<TokenState>, Arc<Config>)
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        self.hand_over_fetcher::<B>();
        let (state, config) = (Arc::clone(&self.state), Arc::clone(&self.config));
        (self.inner.clone(), state, config)
    }

    /// With `refresh_when_idle`, hands the state what it needs to refresh with no request
    /// (a token handed in, or a service made after the login, never launched a flight).
    fn hand_over_fetcher<B>(&self)
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        if self.state.wants_fetcher() {
            let fetcher = Fetcher::<S, B>::boxed(self.inner.clone(), &self.config);
            self.state.keep_fetcher(fetcher);
        }
    }
}

impl<S: Clone> TokenRefresh<S> {
    /// Gives back the readiness this service was granted (clone-and-swap, as tower's
    /// services do) and returns an unready clone for the caller.
    fn unready_clone(&mut self) -> S {
        let unready = self.inner.clone();
        let readied = mem::replace(&mut self.inner, unready);
        readied.clone()
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
            Route::Insecure(origin) => {
                let error = origin.refused();
                let turned_away = Transition::TurnedAway { error: &error };
                self.config.record.emit(turned_away);
                // Nothing will be sent: the readiness we were granted goes back unused.
                drop(self.unready_clone());
                return ResponseFuture::failed(error);
            }
        }
        self.hand_over_fetcher::<B>();
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
                // Where this clone lives picks the revoker, so cores seldom share one.
                let revoker = self.config.revoker(self as *const Self as usize);
                ResponseFuture::sent(self.inner.call(request), revoker, generation)
            }
            Lookup::Wait => {
                // Give back the readiness we were granted: held while waiting, it could
                // starve the refresh of the very slot it needs (ConcurrencyLimit(1),
                // Buffer(1)). The request readies its own clone once a token exists.
                let service = self.unready_clone();
                let (state, config) = (Arc::clone(&self.state), Arc::clone(&self.config));
                ResponseFuture::waiting(service, request, state, config)
            }
        }
    }
}
