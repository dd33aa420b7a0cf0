//! [`ResponseFuture`]: one request's way through the layer.
//!
//! With a usable token the request is sent at once and the future only watches for a 401.
//! Without one, it waits for the shared attempt (or leads it), then readies its own clone of
//! the inner service and sends.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cache::{BoxFuture, Cache, Joined, Lookup, MAX_WAIT_ROUNDS};
use crate::fetch::Fetcher;
use crate::registry::{self, CacheId};
use crate::service::Config;
use crate::{BoxError, Error, Exchange};

pin_project! {
    /// Response future of [`TokenRefresh`](crate::TokenRefresh).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, B> {
        // Sent; `sent` names the token it carries, if any, so a 401 can retire it.
        Called {
            #[pin]
            future: F,
            sent: Option<Sent>,
        },
        // No usable token: waiting for the shared attempt to settle.
        Waiting {
            settled: BoxFuture<Result<(), Error>>,
            slow: Option<Box<Slow<S, B>>>,
        },
        // A token may exist: readying our own clone of the inner service.
        Readying {
            slow: Option<Box<Slow<S, B>>>,
        },
        // No token could be had.
        Failed {
            error: Option<Error>,
        },
    }
}

/// The token a request went out with: its cache, by number (see `registry`), and generation.
struct Sent {
    cache: CacheId,
    generation: u64,
}

/// What a request that found no usable token carries until it is sent. Boxed: the slow
/// path allocates anyway, and the hot path's future stays small.
pub(crate) struct Slow<S, B> {
    /// An unready clone: readied only once a token exists, so no waiting request holds a
    /// slot of the inner service that the refresh may need.
    service: S,
    request: Request<B>,
    cache: Arc<Cache>,
    config: Arc<Config>,
    rounds: u8,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn passed_through(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Called { future, sent: None },
        }
    }

    pub(crate) fn sent(future: S::Future, cache: CacheId, generation: u64) -> Self {
        ResponseFuture {
            state: State::Called {
                future,
                sent: Some(Sent { cache, generation }),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: From<Bytes> + Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future, sent } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if response.status() == StatusCode::UNAUTHORIZED {
                        if let Some(sent) = sent.take() {
                            if let Some(cache) = registry::find(sent.cache) {
                                cache.invalidate(sent.generation);
                            }
                        }
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Waiting { settled, slow } => {
                    if let Err(error) = ready!(settled.as_mut().poll(cx)) {
                        this.state.set(State::Failed { error: Some(error) });
                        continue;
                    }
                    let slow = slow.take();
                    this.state.set(State::Readying { slow });
                }
                StateProj::Readying { slow } => {
                    match slow.as_mut().map(|waiting| waiting.service.poll_ready(cx)) {
                        None => return Poll::Ready(Err(polled_after_completion())),
                        Some(Poll::Pending) => return Poll::Pending,
                        Some(Poll::Ready(Err(error))) => return Poll::Ready(Err(error.into())),
                        Some(Poll::Ready(Ok(()))) => {}
                    }
                    if let Some(waiting) = slow.take() {
                        this.state.set(waiting.send_or_join());
                    }
                }
                StateProj::Failed { error } => {
                    let error = error.take().ok_or_else(polled_after_completion)?;
                    return Poll::Ready(Err(error.into()));
                }
            }
        }
    }
}

fn polled_after_completion() -> BoxError {
    "ResponseFuture polled after completion".into()
}

impl<S, B, ResBody> Slow<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: From<Bytes> + Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    /// A request with no usable token; `service` must be an unready clone.
    pub(crate) fn start(
        service: S,
        request: Request<B>,
        cache: Arc<Cache>,
        config: Arc<Config>,
    ) -> ResponseFuture<S, B> {
        let slow = Box::new(Slow {
            service,
            request,
            cache,
            config,
            rounds: 0,
        });
        ResponseFuture { state: slow.join() }
    }

    /// Joins the shared attempt, leading it if nobody else is trying.
    fn join(mut self: Box<Self>) -> State<S::Future, S, B> {
        if self.rounds == MAX_WAIT_ROUNDS {
            let error = Error::invalid(Exchange::Refresh, "every new token was dead on arrival");
            return State::Failed { error: Some(error) };
        }
        let settlement = match self.cache.join() {
            Ok(Joined::Usable) => return State::Readying { slow: Some(self) },
            // A round is an attempt waited for; finding a token needs none.
            Ok(Joined::Follow(settlement)) => {
                self.rounds += 1;
                settlement
            }
            Ok(Joined::Lead(flight, settlement)) => {
                self.rounds += 1;
                let fetcher = Fetcher::<S, B>::new(self.service.clone(), &self.config);
                flight.launch(Box::new(fetcher));
                settlement
            }
            Err(error) => return State::Failed { error: Some(error) },
        };
        State::Waiting {
            settled: Box::pin(settlement.wait()),
            slow: Some(self),
        }
    }

    /// Ready to send: reads the token again, since readiness can take a while and the
    /// request must never leave with a token that died meanwhile.
    fn send_or_join(mut self: Box<Self>) -> State<S::Future, S, B> {
        match self.cache.lookup_now() {
            Lookup::Send {
                header, generation, ..
            } => {
                let Slow {
                    mut service,
                    mut request,
                    cache,
                    ..
                } = *self;
                request.headers_mut().insert(AUTHORIZATION, header);
                State::Called {
                    future: service.call(request),
                    sent: Some(Sent {
                        cache: cache.id(),
                        generation,
                    }),
                }
            }
            Lookup::Wait => {
                // Give the readiness back before waiting again.
                let unready = self.service.clone();
                drop(mem::replace(&mut self.service, unready));
                self.join()
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Called { .. } => "Called",
            State::Waiting { .. } => "Waiting",
            State::Readying { .. } => "Readying",
            State::Failed { .. } => "Failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
