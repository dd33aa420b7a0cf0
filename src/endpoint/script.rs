//! A transport that answers from a script and keeps what was sent: a protocol's
//! conversations, tested with no server and no layer.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use tokio::time::Instant;

use super::{Answer, BoxFuture, Deadline, TokenClient, TokenEndpoint, Transport};
use crate::error::{Error, Exchange};
use crate::grant::Grant;

/// A scripted answer: held this long, then a status and body, or the error for one.
type Scripted = (Duration, Result<(u16, String), Error>);

/// Answers each request with the next scripted answer, and records the requests.
#[derive(Default)]
pub(crate) struct Script {
    answers: VecDeque<Scripted>,
    /// What the protocol sent, in order.
    pub(crate) sent: Vec<Request<Bytes>>,
    /// When each request was sent (by tokio's clock, paused in tests).
    pub(crate) sent_at: Vec<Instant>,
    /// The timeout each request was given.
    pub(crate) timeout: Option<Duration>,
}

impl Script {
    /// The next request is answered `status` with `body`.
    pub(crate) fn answer(self, status: u16, body: &str) -> Self {
        self.answer_after(Duration::ZERO, status, body)
    }

    /// The next request is answered `status` with `body` after `held` (a long poll).
    pub(crate) fn answer_after(mut self, held: Duration, status: u16, body: &str) -> Self {
        self.answers
            .push_back((held, Ok((status, body.to_owned()))));
        self
    }

    /// The next request fails with `error`.
    #[cfg_attr(not(feature = "ocient"), allow(dead_code))]
    pub(crate) fn fail(mut self, error: Error) -> Self {
        self.answers.push_back((Duration::ZERO, Err(error)));
        self
    }

    /// Runs `endpoint`'s login, each request given `timeout`.
    pub(crate) async fn login(
        &mut self,
        endpoint: &impl TokenEndpoint,
        timeout: Duration,
    ) -> Result<Grant, Error> {
        let deadline = Deadline::new(timeout);
        let mut client = TokenClient::new(self, Exchange::Login, timeout, deadline);
        endpoint.login(&mut client).await
    }

    /// Runs `endpoint`'s refresh of `current`.
    #[cfg_attr(not(feature = "ocient"), allow(dead_code))]
    pub(crate) async fn refresh(
        &mut self,
        endpoint: &impl TokenEndpoint,
        current: &Grant,
    ) -> Result<Grant, Error> {
        let timeout = Duration::from_secs(30);
        let deadline = Deadline::new(timeout);
        let mut client = TokenClient::new(self, Exchange::Refresh, timeout, deadline);
        endpoint.refresh(&mut client, current).await
    }

    /// The JSON body of the `n`th request sent.
    #[cfg_attr(not(feature = "ocient"), allow(dead_code))]
    pub(crate) fn body(&self, n: usize) -> serde_json::Value {
        serde_json::from_slice(self.sent[n].body()).unwrap()
    }
}

/// A transport that is never asked to send: for what a protocol does before it sends.
pub(crate) struct Unused;

impl Transport for Unused {
    fn send(
        &mut self,
        _: Exchange,
        _: Request<Bytes>,
        _: Duration,
    ) -> BoxFuture<'_, Result<Answer, Error>> {
        unreachable!("never asked")
    }
}

impl Transport for Script {
    fn send(
        &mut self,
        exchange: Exchange,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Answer, Error>> {
        self.sent.push(request);
        self.sent_at.push(Instant::now());
        self.timeout = Some(timeout);
        let next = self.answers.pop_front();
        Box::pin(async move {
            let (held, next) = next.unwrap_or_else(|| {
                let none = Error::transport(exchange, "nothing scripted");
                (Duration::ZERO, Err(none))
            });
            tokio::time::sleep(held).await;
            let (status, body) = next?;
            let status = StatusCode::from_u16(status).unwrap();
            Ok(Answer::new(exchange, status, HeaderMap::new(), body))
        })
    }
}
