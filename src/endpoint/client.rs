//! [`TokenClient`]: the handle a protocol sends its token requests through.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use tokio::time::Instant;

use super::answer::Answer;
use crate::error::{Error, Exchange};

/// A boxed future on the cold path.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What sends a token request for a [`TokenClient`]: the wrapped service, in the layer.
pub(crate) trait Transport: Send {
    /// Sends `request` and reads its whole answer, within `timeout`.
    fn send(
        &mut self,
        exchange: Exchange,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Answer, Error>>;
}

/// Sends the requests of one login or refresh through the service the layer wraps: the same
/// connection pool, TLS, proxy and timeouts as every other request. The layer hands one to
/// [`TokenEndpoint::login`](super::TokenEndpoint::login) and
/// [`TokenEndpoint::refresh`](super::TokenEndpoint::refresh).
///
/// Every step is bounded by the layer's
/// [`refresh_timeout`](crate::TokenRefreshLayer::refresh_timeout): each request, answer body
/// included, and the protocol's own work between two requests (asking a credentials
/// provider, say). A wait asked for with [`sleep`](Self::sleep) does not count. A step
/// that takes longer ends the whole login or refresh with [`Error::Timeout`].
pub struct TokenClient<'a> {
    transport: &'a mut dyn Transport,
    exchange: Exchange,
    timeout: Duration,
    deadline: Deadline,
}

impl fmt::Debug for TokenClient<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("exchange", &self.exchange)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<'a> TokenClient<'a> {
    pub(crate) fn new(
        transport: &'a mut dyn Transport,
        exchange: Exchange,
        timeout: Duration,
        deadline: Deadline,
    ) -> Self {
        TokenClient {
            transport,
            exchange,
            timeout,
            deadline,
        }
    }

    /// Sends `request` and returns its whole answer (at most 1 MiB), or the error that stood
    /// in for one: [`Error::Transport`], [`Error::Timeout`], or
    /// [`Error::InsecureTransport`] for a request the layer would not send in the clear.
    /// A non-2xx answer is an answer: the protocol reads it.
    pub async fn send(&mut self, request: Request<Bytes>) -> Result<Answer, Error> {
        self.deadline.allow(self.timeout);
        let answer = self
            .transport
            .send(self.exchange, request, self.timeout)
            .await;
        self.deadline.allow(self.timeout);
        answer
    }

    /// Waits `wait` (a poll interval), a wait that no timeout counts.
    pub async fn sleep(&mut self, wait: Duration) {
        self.deadline.allow(wait.saturating_add(self.timeout));
        tokio::time::sleep(wait).await;
        self.deadline.allow(self.timeout);
    }

    /// Which exchange this is: a login, or a refresh.
    pub fn exchange(&self) -> Exchange {
        self.exchange
    }

    /// How long the layer gives each request, answer included: a request that asks the
    /// server to hold it (a long poll) asks for less.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Far enough ahead to stand for "never" (136 years), near enough for any `Instant`.
const NEVER: Duration = Duration::from_secs(u32::MAX as u64);

/// When a login or refresh that makes no progress is given up: it only moves later, as
/// requests are sent and answered and waits are asked for.
#[derive(Debug, Clone)]
pub(crate) struct Deadline(Arc<Mutex<Instant>>);

impl Deadline {
    /// A deadline `timeout` from now.
    pub(crate) fn new(timeout: Duration) -> Self {
        Deadline(Arc::new(Mutex::new(Instant::now() + timeout)))
    }

    /// Moves the deadline to `time` from now, unless it is later already. A time past
    /// what an `Instant` can hold is as good as never.
    fn allow(&self, time: Duration) {
        let now = Instant::now();
        let until = now.checked_add(time).unwrap_or_else(|| now + NEVER);
        let mut at = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        *at = (*at).max(until);
    }

    fn at(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Resolves once the deadline passes without having been moved.
    pub(crate) async fn passed(&self) {
        loop {
            let at = self.at();
            tokio::time::sleep_until(at).await;
            if self.at() <= Instant::now() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_passes_only_once_nothing_moved_it() {
        let deadline = Deadline::new(Duration::from_secs(2));
        let started = Instant::now();
        let watch = {
            let deadline = deadline.clone();
            tokio::spawn(async move { deadline.passed().await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        deadline.allow(Duration::from_secs(5));
        deadline.allow(Duration::from_secs(1)); // never earlier
        watch.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(6));
    }

    #[test]
    fn a_client_shows_its_exchange_and_timeout_only() {
        let timeout = Duration::from_secs(7);
        let deadline = Deadline::new(timeout);
        let mut unused = crate::endpoint::script::Unused;
        let client = TokenClient::new(&mut unused, Exchange::Refresh, timeout, deadline);
        assert_eq!(
            format!("{client:?}"),
            "TokenClient { exchange: Refresh, timeout: 7s, .. }"
        );
        assert_eq!(
            (client.exchange(), client.timeout()),
            (Exchange::Refresh, timeout)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_endless_wait_neither_overflows_nor_passes() {
        let deadline = Deadline::new(Duration::from_secs(1));
        deadline.allow(Duration::MAX);
        let passed = tokio::time::timeout(Duration::from_secs(3600), deadline.passed()).await;
        assert!(passed.is_err(), "still waiting an hour later");
    }
}
