//! [`PerIdentity`]: puts the token of the request's identity on it.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use tower_service::Service;

use super::registry::Registry;
use crate::authorize::{turned_away, unready_clone, Authorizer};
use crate::error::{BoxError, Error};
use crate::future::ResponseFuture;
use crate::inner::InnerService;
use crate::status::{IdentitiesStatus, TokenStatus};

/// Middleware that keeps a token per identity and puts the token of the request's identity
/// on every request to the API's origin.
///
/// Made by [`PerIdentityLayer`](super::PerIdentityLayer), whose docs say how it behaves.
/// Clones share the tokens.
pub struct PerIdentity<S, I> {
    inner: S,
    registry: Arc<Registry<I>>,
}

impl<S, I> PerIdentity<S, I>
where
    I: Hash + Eq + Clone + Send + Sync + 'static,
{
    pub(super) fn new(inner: S, registry: Arc<Registry<I>>) -> Self {
        PerIdentity { inner, registry }
    }

    /// The identities held: see [`IdentitiesStatus`]. Sends nothing.
    pub fn status(&self) -> IdentitiesStatus {
        IdentitiesStatus::of(self.registry.statuses())
    }

    /// Where `identity`'s token is, if the identity is held: see [`TokenStatus`]. Sends
    /// nothing, and does not count as a use.
    pub fn status_of(&self, identity: &I) -> Option<TokenStatus> {
        self.registry.status_of(identity)
    }

    /// Obtains a usable token for `identity` now (holding the identity from now): see
    /// [`TokenRefresh::warm_up`](crate::TokenRefresh::warm_up).
    pub fn warm_up<B>(
        &self,
        identity: I,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        self.with_token_of(identity, |token| token.warm_up(&self.inner))
    }

    /// Starts a new token for `identity` now (holding the identity from now): see
    /// [`TokenRefresh::refresh_now`](crate::TokenRefresh::refresh_now).
    pub fn refresh_now<B>(
        &self,
        identity: I,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        self.with_token_of(identity, |token| token.refresh_now(&self.inner))
    }

    /// `then` of `identity`'s token, the identity held from now.
    fn with_token_of<T>(&self, identity: I, then: impl FnOnce(Authorizer<'_>) -> T) -> T {
        let guard = self.registry.guard();
        let member = self.registry.hold(identity, &guard);
        then(member.authorizer(0))
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

impl<S: Clone, I> Clone for PerIdentity<S, I> {
    fn clone(&self) -> Self {
        PerIdentity {
            inner: self.inner.clone(),
            registry: Arc::clone(&self.registry),
        }
    }
}

impl<S: fmt::Debug, I> fmt::Debug for PerIdentity<S, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerIdentity")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, I> Service<Request<B>> for PerIdentity<S, I>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
    I: Hash + Eq + Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Where this clone lives picks the revoker, as for one token.
        let place = self as *const Self as usize;
        let registry = &self.registry;
        let (request, by_function) = registry.identify().by_function(request);
        let Some(identity) = registry.identify().of(&request, &by_function) else {
            drop(unready_clone(&mut self.inner));
            return turned_away(registry.record(), Error::NoIdentity);
        };
        let guard = registry.guard();
        let member = match registry.find(identity, &guard) {
            Some(member) => member,
            None => registry.hold(identity.clone(), &guard),
        };
        member.authorizer(place).call(&mut self.inner, request)
    }
}
