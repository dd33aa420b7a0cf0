//! [`TokenRefresh`]: puts the current token on requests to the API's origin.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use tower_service::Service;

use crate::authorize::Authorizer;
use crate::config::Config;
use crate::endpoint::TokenEndpoint;
use crate::error::{BoxError, Error};
use crate::future::ResponseFuture;
use crate::inner::InnerService;
use crate::layer::TokenRefreshLayer;
use crate::state::{Token, TokenState};
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
        self.shared().warm_up(&self.inner)
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
        self.shared().refresh_now(&self.inner)
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
    /// The token, for a caller that keeps no copy of it (`warm_up`, `refresh_now`).
    fn shared(&self) -> Authorizer<'_> {
        Authorizer {
            state: &self.state,
            config: &self.config,
            seen: None,
            place: 0,
        }
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Where this clone lives picks the revoker, so cores seldom share one.
        let place = self as *const Self as usize;
        let authorizer = Authorizer {
            state: &self.state,
            config: &self.config,
            seen: Some(&mut self.seen),
            place,
        };
        authorizer.call(&mut self.inner, request)
    }
}
