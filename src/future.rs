//! [`ResponseFuture`]: one request's way through the layer.
//!
//! With a usable token the request is sent at once and the future only watches for a 401.
//! Without one, it waits for the shared attempt, then readies its own clone of the inner
//! service and sends.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cache::{BoxFuture, Cache, Lookup};
use crate::Error;

use crate::BoxError;

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
        // No usable token: waiting for the shared attempt.
        Waiting {
            token: BoxFuture<Result<(), Error>>,
            slow: Option<Box<Slow<S, B>>>,
        },
        // A token exists: readying our own clone of the inner service.
        Readying {
            slow: Option<Box<Slow<S, B>>>,
        },
    }
}

/// The token a request went out with.
struct Sent {
    cache: Arc<Cache>,
    generation: u64,
}

/// Waits for a usable token: the shared attempt, or a new one if that one failed to land.
pub(crate) type TokenSource = Box<dyn Fn() -> BoxFuture<Result<(), Error>> + Send>;

/// What a request that found no usable token carries until it is sent.
struct Slow<S, B> {
    service: S,
    request: Request<B>,
    cache: Arc<Cache>,
    source: TokenSource,
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

    pub(crate) fn sent(future: S::Future, cache: Arc<Cache>, generation: u64) -> Self {
        ResponseFuture {
            state: State::Called {
                future,
                sent: Some(Sent { cache, generation }),
            },
        }
    }

    /// `service` is an unready clone; the request readies it once a token exists, so no
    /// waiting request holds a slot of the inner service that the refresh may need.
    pub(crate) fn waiting(
        service: S,
        request: Request<B>,
        cache: Arc<Cache>,
        source: TokenSource,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                token: source(),
                // Boxed: the slow path allocates anyway, and the hot path's future stays small.
                slow: Some(Box::new(Slow {
                    service,
                    request,
                    cache,
                    source,
                })),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
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
                            sent.cache.invalidate(sent.generation);
                        }
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Waiting { token, slow } => {
                    ready!(token.as_mut().poll(cx))?;
                    let slow = slow.take();
                    this.state.set(State::Readying { slow });
                }
                StateProj::Readying { slow } => {
                    match slow.as_mut().map(|waiting| waiting.service.poll_ready(cx)) {
                        None => {
                            return Poll::Ready(
                                Err("ResponseFuture polled after completion".into()),
                            )
                        }
                        Some(Poll::Pending) => return Poll::Pending,
                        Some(Poll::Ready(Err(error))) => return Poll::Ready(Err(error.into())),
                        Some(Poll::Ready(Ok(()))) => {}
                    }
                    if let Some(waiting) = slow.take() {
                        this.state.set(waiting.send_or_wait());
                    }
                }
            }
        }
    }
}

impl<S, B> Slow<S, B>
where
    S: Service<Request<B>> + Clone,
{
    /// Ready to send: reads the token again, since readiness can take a while and the
    /// request must never leave with a token that died meanwhile.
    fn send_or_wait(mut self: Box<Self>) -> State<S::Future, S, B> {
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
                    sent: Some(Sent { cache, generation }),
                }
            }
            Lookup::Wait => {
                // Give the readiness back before waiting again (see `waiting`).
                let unready = self.service.clone();
                drop(mem::replace(&mut self.service, unready));
                State::Waiting {
                    token: (self.source)(),
                    slow: Some(self),
                }
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
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
