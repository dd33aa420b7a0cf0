//! A login that takes more than one request: what the answer to each leads to.

use std::fmt;
use std::time::Duration;

use super::{Answer, LoginFuture};
use crate::error::Error;
use crate::grant::Grant;

/// What the answer to a login request leads to: the end of the login, or another request.
/// See [`TokenEndpoint::read_login_answer`](super::TokenEndpoint::read_login_answer).
///
/// A login that answers a challenge, say: the first answer holds a nonce, the second
/// request sends it back, and the answer to that is the token.
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use tower_token_refresh::{Answer, Error, Grant, LoginStep};
///
/// fn after_the_challenge(challenge: Answer<'_>) -> LoginStep<'static> {
///     let nonce = Bytes::copy_from_slice(challenge.body);
///     let reply = Box::pin(async move {
///         Ok(Request::post("https://api.example/login").body(nonce).unwrap())
///     });
///     // `sent` is the answer to the reply, or why there is none (a transport error, the
///     // refresh timeout): a login that polls may ask again rather than give up.
///     LoginStep::then(reply, |sent| LoginStep::done(sent.and_then(read_token)))
/// }
/// # fn read_token(_: Answer<'_>) -> Result<Grant, Error> { Err(Error::MissingCredentials) }
/// ```
pub struct LoginStep<'a>(Step<'a>);

enum Step<'a> {
    Done(Result<Grant, Error>),
    Continue(Continuation<'a>),
}

/// The next request of a login, as the layer runs it.
pub(crate) struct Continuation<'a> {
    /// How long to wait before building it (a poll interval): outside its timeout.
    pub(crate) wait: Duration,
    pub(crate) next: LoginFuture<'a>,
    pub(crate) read: Reader<'a>,
}

/// Reads what came of a request: its answer, or why there is none.
pub(crate) type Reader<'a> =
    Box<dyn FnOnce(Result<Answer<'_>, Error>) -> LoginStep<'a> + Send + 'a>;

impl<'a> LoginStep<'a> {
    /// The login is over: a grant, or why not.
    pub fn done(outcome: Result<Grant, Error>) -> Self {
        LoginStep(Step::Done(outcome))
    }

    /// The login goes on: send the request `next` builds (when polled), and give `read` its
    /// answer, or the error that stood in for one (the request could not be built or sent,
    /// or its answer did not come whole within the refresh timeout).
    pub fn then<F>(next: LoginFuture<'a>, read: F) -> Self
    where
        F: FnOnce(Result<Answer<'_>, Error>) -> LoginStep<'a> + Send + 'a,
    {
        LoginStep(Step::Continue(Continuation {
            wait: Duration::ZERO,
            next,
            read: Box::new(read),
        }))
    }

    /// Builds the next request only `wait` from now (a poll interval), a wait that does not
    /// count against the request's timeout. A login that is over is left as it is.
    #[must_use]
    pub fn after(mut self, wait: Duration) -> Self {
        if let Step::Continue(next) = &mut self.0 {
            next.wait = wait;
        }
        self
    }

    /// Whether the login is over.
    pub fn is_done(&self) -> bool {
        matches!(self.0, Step::Done(_))
    }

    /// The outcome, or what comes next.
    pub(crate) fn into_parts(self) -> Result<Result<Grant, Error>, Continuation<'a>> {
        match self.0 {
            Step::Done(outcome) => Ok(outcome),
            Step::Continue(next) => Err(next),
        }
    }
}

impl fmt::Debug for LoginStep<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Step::Done(outcome) => f.debug_tuple("Done").field(outcome).finish(),
            Step::Continue(next) => f
                .debug_struct("Continue")
                .field("wait", &next.wait)
                .finish_non_exhaustive(),
        }
    }
}
