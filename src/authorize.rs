//! Putting one token on one request: what [`TokenRefresh`](crate::TokenRefresh) does with
//! its token, and [`PerIdentity`](crate::PerIdentity) with the token of the request's
//! identity.

use std::future::Future;
use std::mem;
use std::sync::Arc;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::Request;

use crate::config::{Config, Route};
use crate::error::Error;
use crate::fetch::Fetcher;
use crate::future::{self, ResponseFuture};
use crate::inner::InnerService;
use crate::record::{Record, Transition};
use crate::state::{Lookup, Token, TokenState};

/// One token, as a request finds it.
pub(crate) struct Authorizer<'a> {
    pub(crate) state: &'a Arc<TokenState>,
    pub(crate) config: &'a Arc<Config>,
    /// The calling service's copy of the current token, when it keeps one: while no newer
    /// token is published, the request reads nothing shared but one number.
    pub(crate) seen: Option<&'a mut Option<Arc<Token>>>,
    /// Where the caller lives (its address), to pick a revoker that other cores seldom use.
    pub(crate) place: usize,
}

impl Authorizer<'_> {
    /// Sends `request` through `inner` with the token if it goes to the API: at once with
    /// a usable token (starting a refresh when it is due), else once the shared attempt
    /// has obtained one. A request to another origin passes through untouched; one that
    /// would carry the token in the clear is not sent.
    pub(crate) fn call<S, B>(self, inner: &mut S, mut request: Request<B>) -> ResponseFuture<S, B>
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        match self.config.route(request.uri()) {
            Route::Api => {}
            Route::Elsewhere => return ResponseFuture::passed_through(inner.call(request)),
            Route::Insecure(origin) => {
                let error = origin.refused();
                drop(unready_clone(inner));
                return self.turn_away(error);
            }
        }
        self.hand_over_fetcher::<S, B>(inner);
        let lookup = match self.seen {
            Some(seen) => self.state.lookup(seen),
            None => self.state.lookup_loaded(),
        };
        match lookup {
            Lookup::Send {
                header,
                generation,
                due,
            } => {
                if due {
                    let fetcher = || Fetcher::<S, B>::boxed(inner.clone(), self.config);
                    self.state.refresh_in_background(fetcher);
                }
                request.headers_mut().insert(AUTHORIZATION, header);
                let revoker = self.config.revoker(self.place);
                ResponseFuture::sent(inner.call(request), revoker, generation)
            }
            Lookup::Wait => {
                // Give back the readiness we were granted: held while waiting, it could
                // starve the refresh of the very slot it needs (ConcurrencyLimit(1),
                // Buffer(1)). The request readies its own clone once a token exists.
                let service = unready_clone(inner);
                let (state, config) = (Arc::clone(self.state), Arc::clone(self.config));
                ResponseFuture::waiting(service, request, state, config)
            }
        }
    }

    /// A request answered with `error`, unsent.
    fn turn_away<S, B>(&self, error: Error) -> ResponseFuture<S, B>
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        turned_away(&self.config.record, error)
    }

    /// See [`TokenRefresh::warm_up`](crate::TokenRefresh::warm_up).
    pub(crate) fn warm_up<S, B>(
        &self,
        inner: &S,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        let (service, state, config) = self.detached(inner);
        future::warm_up(service, state, config)
    }

    /// See [`TokenRefresh::refresh_now`](crate::TokenRefresh::refresh_now).
    pub(crate) fn refresh_now<S, B>(
        &self,
        inner: &S,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        let (service, state, config) = self.detached(inner);
        future::refresh_now(service, state, config)
    }

    /// What a future that outlives this borrow needs: an unready clone of `inner`, the
    /// state and the configuration. Hands over a fetcher first, as a request would.
    fn detached<S, B>(&self, inner: &S) -> (S, Arc<TokenState>, Arc<Config>)
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        self.hand_over_fetcher::<S, B>(inner);
        let (state, config) = (Arc::clone(self.state), Arc::clone(self.config));
        (inner.clone(), state, config)
    }

    /// With `refresh_when_idle`, hands the state what it needs to refresh with no request
    /// (a token handed in, or a service made after the login, never launched a flight).
    fn hand_over_fetcher<S, B>(&self, inner: &S)
    where
        S: InnerService<B>,
        B: From<Bytes> + Send + 'static,
    {
        if self.state.wants_fetcher() {
            let fetcher = Fetcher::<S, B>::boxed(inner.clone(), self.config);
            self.state.keep_fetcher(fetcher);
        }
    }
}

/// A request answered with `error`, unsent, and told to `record`.
pub(crate) fn turned_away<S, B>(record: &Record, error: Error) -> ResponseFuture<S, B>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    record.emit(Transition::TurnedAway { error: &error });
    ResponseFuture::failed(error)
}

/// Gives back the readiness `inner` was granted (clone-and-swap, as tower's services do)
/// and returns an unready clone for the caller.
pub(crate) fn unready_clone<S: Clone>(inner: &mut S) -> S {
    let unready = inner.clone();
    let readied = mem::replace(inner, unready);
    readied.clone()
}
