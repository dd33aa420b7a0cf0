//! [`ResponseFuture`]: one request's way through the layer.
//!
//! With a usable token the request is sent at once, and the future only watches the answer
//! for a 401: that variant is unboxed, since every request takes it. Without a usable token
//! the request waits for the shared attempt (or leads it), then readies its own clone of the
//! inner service and sends: an `async fn`, boxed, since that path allocates anyway.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::config::Config;
use crate::error::{BoxError, Error};
use crate::fetch::Fetcher;
use crate::inner::{HttpResponse, InnerService};
use crate::record::Transition;
use crate::revoker::Revoker;
use crate::state::{BoxFuture, Joined, Lookup, Settlement, TokenState};

pin_project! {
    /// Response future of [`TokenRefresh`](crate::TokenRefresh).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        kind: Kind<S::Future, S::Response>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, R> {
        // Sent; `sent` names the token it carries, if any, so a 401 can revoke it.
        Called {
            #[pin]
            future: F,
            sent: Option<Sent>,
        },
        // No usable token when called: waits, then sends.
        Waiting {
            future: BoxFuture<Result<R, BoxError>>,
        },
    }
}

/// The token a request went out with.
struct Sent {
    revoker: Arc<Revoker>,
    generation: u64,
}

impl Sent {
    /// A 401 says the token is no good: revoke exactly that generation, so N rejections of
    /// one token cause one new token.
    fn answered(self, status: StatusCode) {
        if status == StatusCode::UNAUTHORIZED {
            self.revoker.revoke(self.generation);
        }
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// A request that carries no token.
    pub(crate) fn passed_through(future: S::Future) -> Self {
        let kind = Kind::Called { future, sent: None };
        ResponseFuture { kind }
    }

    /// A request that carries the token of `generation`, revoked through `revoker` on a 401.
    pub(crate) fn sent(future: S::Future, revoker: Arc<Revoker>, generation: u64) -> Self {
        let sent = Some(Sent {
            revoker,
            generation,
        });
        let kind = Kind::Called { future, sent };
        ResponseFuture { kind }
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    /// A request that is not sent at all.
    pub(crate) fn failed(error: Error) -> Self {
        let future = Box::pin(std::future::ready(Err(error.into())));
        ResponseFuture {
            kind: Kind::Waiting { future },
        }
    }

    /// A request with no usable token; `service` must be an unready clone, so that no
    /// waiting request holds a slot of the inner service that the refresh may need.
    ///
    /// It joins the attempt at once, as the call happens: a flight it leads starts now, and
    /// a call outside a runtime fails now, whenever the future is polled.
    pub(crate) fn waiting(
        service: S,
        request: Request<B>,
        state: Arc<TokenState>,
        config: Arc<Config>,
    ) -> Self {
        let called = tokio::time::Instant::now();
        let joined = join(&state, &service, &config, 0);
        let future = Box::pin(wait_then_send(
            joined, service, request, state, config, called,
        ));
        ResponseFuture {
            kind: Kind::Waiting { future },
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: InnerService<B>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called { future, sent } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                if let Some(sent) = sent.take() {
                    sent.answered(response.status());
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

/// Joins the wait for a usable token after waiting for `rounds` attempts, leading the
/// attempt if nobody else is trying; the settlement to wait for, if a token has to be
/// waited for.
fn join<S, B>(
    state: &Arc<TokenState>,
    service: &S,
    config: &Arc<Config>,
    rounds: u8,
) -> Result<Option<Settlement>, Error>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    Ok(match state.join_after(rounds)? {
        Joined::Usable => None,
        Joined::Follow(settlement) => Some(settlement),
        Joined::Lead(flight, settlement) => {
            flight.launch(Fetcher::<S, B>::boxed(service.clone(), config));
            Some(settlement)
        }
    })
}

/// Waits for attempts, starting with the one `joined`, until one leaves a usable token;
/// `rounds` counts the attempts waited for, so tokens that die faster than they arrive end
/// in an error rather than a loop.
async fn wait_for_token<S, B>(
    mut joined: Result<Option<Settlement>, Error>,
    state: &Arc<TokenState>,
    service: &mut S,
    config: &Arc<Config>,
    rounds: &mut u8,
) -> Result<(), Error>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    while let Some(settlement) = joined? {
        *rounds += 1;
        settlement.wait().await?;
        joined = join(state, service, config, *rounds);
    }
    Ok(())
}

/// Waits for the attempt `joined` and any after it until a token is usable, then readies
/// `service` and sends; waits again if the token died meanwhile. The request was `called`
/// then: how long it waited for a token, and whether it was turned away, is recorded.
async fn wait_then_send<S, B>(
    mut joined: Result<Option<Settlement>, Error>,
    mut service: S,
    mut request: Request<B>,
    state: Arc<TokenState>,
    config: Arc<Config>,
    called: tokio::time::Instant,
) -> Result<S::Response, BoxError>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    // Dropped with the future if the caller gives up: the wait is recorded all the same.
    let mut wait = config.record.wait(called);
    loop {
        let waited = wait_for_token(joined, &state, &mut service, &config, &mut wait.rounds);
        let waited = waited.await;
        wait.over();
        if let Err(error) = waited {
            config.record.emit(Transition::TurnedAway { error: &error });
            return Err(error.into());
        }
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        // Read the token again: readiness can take a while, and the request must never
        // leave with a token that died meanwhile.
        if let Lookup::Send {
            header, generation, ..
        } = state.lookup_now()
        {
            request.headers_mut().insert(AUTHORIZATION, header);
            let response = service.call(request).await.map_err(Into::into)?;
            let revoker = config.revoker(0);
            Sent {
                revoker,
                generation,
            }
            .answered(response.status());
            return Ok(response);
        }
        // Give the readiness back before waiting again.
        service = service.clone();
        joined = join(&state, &service, &config, wait.rounds);
    }
}

/// Obtains a usable token, sharing the attempt with any concurrent caller; sends nothing
/// while one exists. See [`TokenRefresh::warm_up`](crate::TokenRefresh::warm_up).
pub(crate) async fn warm_up<S, B>(
    mut service: S,
    state: Arc<TokenState>,
    config: Arc<Config>,
) -> Result<(), Error>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    let joined = join(&state, &service, &config, 0);
    wait_for_token(joined, &state, &mut service, &config, &mut 0).await
}

/// Starts a new token now, or joins the attempt under way, and waits for its outcome. See
/// [`TokenRefresh::refresh_now`](crate::TokenRefresh::refresh_now).
pub(crate) async fn refresh_now<S, B>(
    service: S,
    state: Arc<TokenState>,
    config: Arc<Config>,
) -> Result<(), Error>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    let (settlement, flight) = state.refresh_now()?;
    if let Some(flight) = flight {
        flight.launch(Fetcher::<S, B>::boxed(service, &config));
    }
    settlement.wait().await
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Called { .. } => "Called",
            Kind::Waiting { .. } => "Waiting",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
