//! One attempt at a token, sent through the wrapped service.
//!
//! The attempt owns a clone of the inner service and drives it itself (ready, then call),
//! so it never borrows a caller's readiness. The endpoint's login or refresh runs over a
//! [`TokenClient`] whose every request, and the protocol's own work between two, is bounded
//! by the refresh timeout; every answer by a size cap.

use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::Request;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::config::Config;
use crate::endpoint::{Answer, Deadline, TokenClient, Transport};
use crate::error::{BoxError, Error, Exchange};
use crate::grant::Grant;
use crate::inner::{HttpResponse, InnerService};
use crate::record::Transition;
use crate::retry_after::server_wait;
use crate::state::{self, BoxFuture, Fetch, Plan, Setback};

/// The largest login or refresh answer read; anything longer is hostile.
const MAX_ANSWER: usize = 1024 * 1024;

/// Sends token requests, with bodies of type `B`, through a clone of the wrapped service.
pub(crate) struct Fetcher<S, B> {
    service: S,
    config: Arc<Config>,
    /// What the last answer's `Retry-After` asked for, if anything.
    server_wait: Option<Duration>,
    _body: PhantomData<fn(B)>,
}

// Not derived: a derive would ask for `B: Clone`.
impl<S: Clone, B> Clone for Fetcher<S, B> {
    fn clone(&self) -> Self {
        Fetcher {
            service: self.service.clone(),
            config: Arc::clone(&self.config),
            server_wait: None,
            _body: PhantomData,
        }
    }
}

impl<S, B> Fetch for Fetcher<S, B>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    fn fetch(&self, plan: Plan) -> BoxFuture<Result<Grant, Setback>> {
        // Each attempt drives a clone of its own, as `oneshot` would.
        let mut fetcher = self.clone();
        Box::pin(async move {
            let outcome = fetcher.run(plan).await;
            outcome.map_err(|error| fetcher.setback(error))
        })
    }

    fn clone_box(&self) -> Box<dyn Fetch> {
        Box::new(self.clone())
    }
}

impl<S, B> Transport for Fetcher<S, B>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    fn send(
        &mut self,
        exchange: Exchange,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> crate::endpoint::BoxFuture<'_, Result<Answer, Error>> {
        Box::pin(bounded(exchange, timeout, self.ask(exchange, request)))
    }
}

impl<S, B> Fetcher<S, B>
where
    S: InnerService<B>,
    B: From<Bytes> + Send + 'static,
{
    /// A fetcher for a flight: sends through `service`, to `config`'s endpoint.
    pub(crate) fn boxed(service: S, config: &Arc<Config>) -> Box<dyn Fetch> {
        Box::new(Fetcher::<S, B> {
            service,
            config: Arc::clone(config),
            server_wait: None,
            _body: PhantomData,
        })
    }

    /// `error`, with what the endpoint's classification of it says about the next attempt.
    fn setback(&self, error: Error) -> Setback {
        let cause = state::cause(self.config.endpoint.classify(&error));
        Setback {
            error,
            cause,
            server_wait: self.server_wait,
        }
    }

    /// Refreshes the current token; logs in when there is none, when it is past saving, or
    /// when the server rejects its refresh as revoked.
    async fn run(&mut self, plan: Plan) -> Result<Grant, Error> {
        let Plan {
            current,
            login_first,
        } = plan;
        let can_log_in = self.config.endpoint.can_log_in();
        let current = match current {
            Some(current) if state::refreshes_first(login_first, can_log_in) => current,
            _ => return self.exchange(None).await,
        };
        match self.exchange(Some(&current)).await {
            Err(error)
                if state::logs_in_after_refresh(
                    self.config.endpoint.classify(&error),
                    can_log_in,
                ) =>
            {
                tracing::debug!(%error, "refresh rejected as revoked; logging in again");
                self.exchange(None).await
            }
            other => other,
        }
    }

    /// One login (`current` is `None`) or refresh of `current`, failing over to the
    /// endpoint's other nodes while nodes fail.
    async fn exchange(&mut self, current: Option<&Grant>) -> Result<Grant, Error> {
        let mut failovers_left = self.config.endpoint.other_origins().len();
        loop {
            let error = match self.exchange_once(current).await {
                Err(error) if failovers_left > 0 && self.node_failed(&error) => error,
                outcome => return outcome,
            };
            let Some((from, to)) = self.config.endpoint.fail_over() else {
                return Err(error);
            };
            failovers_left -= 1;
            let failed_over = Transition::FailedOver {
                from: &from,
                to: &to,
                error: &error,
            };
            self.config.record.emit(failed_over);
        }
    }

    /// Whether `error` is the node's fault, so another node may do better (see
    /// [`state::fails_over`]).
    fn node_failed(&self, error: &Error) -> bool {
        state::fails_over(error, self.config.endpoint.classify(error))
    }

    /// One attempt at one node: a refresh of `current`, or a login when it is `None`.
    async fn exchange_once(&mut self, current: Option<&Grant>) -> Result<Grant, Error> {
        // Only the answer to this attempt speaks for the server now.
        self.server_wait = None;
        let exchange = match current {
            Some(_) => Exchange::Refresh,
            None => Exchange::Login,
        };
        let config = Arc::clone(&self.config);
        let timer = config.record.exchange(exchange);
        let outcome = self.converse(exchange, current).await;
        let outcome = match current {
            Some(current) => outcome.map_err(|e| without_secrets(e, current)),
            None => outcome,
        };
        // Cut only now: a secret across the cut would leave part of itself behind.
        let outcome = outcome.map_err(Error::shortened);
        timer.ended(&outcome);
        outcome
    }

    /// Runs the endpoint's login (`current` is `None`) or its refresh of `current`, every
    /// step bounded by the refresh timeout (see [`TokenClient`]).
    async fn converse(
        &mut self,
        exchange: Exchange,
        current: Option<&Grant>,
    ) -> Result<Grant, Error> {
        let config = Arc::clone(&self.config);
        let endpoint = &*config.endpoint;
        if current.is_none() {
            // Nothing is asked of a provider (or an identity provider) for a login that
            // could not be sent anyway.
            if let Some(refusal) = config.refusal(endpoint.origin()) {
                return Err(refusal);
            }
            if !endpoint.can_log_in() {
                return Err(Error::MissingCredentials);
            }
        }
        let timeout = config.refresh_timeout;
        let deadline = Deadline::new(timeout);
        let mut client = TokenClient::new(self, exchange, timeout, deadline.clone());
        let conversation = match current {
            Some(current) => endpoint.refresh(&mut client, current),
            None => endpoint.login(&mut client),
        };
        tokio::select! {
            biased;
            outcome = conversation => outcome,
            () = deadline.passed() => Err(Error::Timeout { exchange, after: timeout }),
        }
    }

    /// Sends `request` and reads the whole answer.
    async fn ask(&mut self, exchange: Exchange, request: Request<Bytes>) -> Result<Answer, Error> {
        // The path only: a base URI may carry user:password@.
        tracing::debug!(%exchange, path = request.uri().path(), "token request");
        if let Some(refusal) = self.config.refusal(request.uri()) {
            return Err(refusal);
        }
        let request = request.map(B::from);
        // Queued before readiness, so a request waiting for its turn holds no slot of the
        // inner service; the layer's timeout counts the wait.
        let config = Arc::clone(&self.config);
        let _turn = config.admission().await;
        let service = &mut self.service;
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(|e| Error::transport(exchange, e))?;
        let response = service
            .call(request)
            .await
            .map_err(|e| Error::transport(exchange, e))?;
        let (parts, body) = response.into_http().into_parts();
        self.server_wait = server_wait(parts.status, &parts.headers, SystemTime::now());
        let body = read_capped(exchange, &parts.headers, body).await?;
        Ok(Answer::new(exchange, parts.status, parts.headers, body))
    }
}

/// `attempt`, or [`Error::Timeout`] once `timeout` has passed.
async fn bounded<T>(
    exchange: Exchange,
    timeout: Duration,
    attempt: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(Error::Timeout {
            exchange,
            after: timeout,
        }))
}

/// Removes the secrets of `current` from text the server sent back, in case it echoed them.
fn without_secrets(error: Error, current: &Grant) -> Error {
    let error = error.without_secret(current.access_token().expose());
    match current.refresh_token() {
        Some(refresh_token) => error.without_secret(refresh_token.expose()),
        None => error,
    }
}

/// Reads the whole body, refusing anything over [`MAX_ANSWER`] before or while reading it.
async fn read_capped<ResBody>(
    exchange: Exchange,
    headers: &http::HeaderMap,
    body: ResBody,
) -> Result<Bytes, Error>
where
    ResBody: Body,
    ResBody::Error: Into<BoxError>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_ANSWER as u64) {
        return Err(Error::invalid_response(
            exchange,
            "answer larger than 1 MiB",
        ));
    }
    match Limited::new(body, MAX_ANSWER).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Error::invalid_response(
            exchange,
            "answer larger than 1 MiB",
        )),
        Err(e) => Err(Error::transport(exchange, e)),
    }
}

#[cfg(test)]
mod causes;

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use http_body_util::Full;

    use super::*;

    async fn read(body: Vec<u8>, declared: Option<usize>) -> Result<Bytes, Error> {
        let mut headers = HeaderMap::new();
        if let Some(length) = declared {
            headers.insert(CONTENT_LENGTH, length.into());
        }
        read_capped(Exchange::Login, &headers, Full::new(Bytes::from(body))).await
    }

    fn too_large(outcome: Result<Bytes, Error>) -> bool {
        matches!(outcome, Err(Error::InvalidResponse { reason, .. }) if reason.contains("1 MiB"))
    }

    #[tokio::test]
    async fn an_answer_of_exactly_the_cap_is_read_whole() {
        let body = read(vec![b'x'; MAX_ANSWER], Some(MAX_ANSWER))
            .await
            .unwrap();
        assert_eq!(body.len(), MAX_ANSWER);
        // A JWT with many claims is easily a few KiB: far under the cap.
        let jwt_sized = read(vec![b'x'; 300 * 1024], None).await.unwrap();
        assert_eq!(jwt_sized.len(), 300 * 1024);
    }

    #[tokio::test]
    async fn one_byte_over_the_cap_is_refused_declared_or_not() {
        assert!(too_large(read(vec![b'x'; MAX_ANSWER + 1], None).await));
        assert!(too_large(read(vec![], Some(MAX_ANSWER + 1)).await));
    }

    /// A body that sends a few bytes, then fails.
    struct Reset(bool);

    impl Body for Reset {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
            let first = !std::mem::replace(&mut self.0, true);
            std::task::Poll::Ready(Some(match first {
                true => Ok(http_body::Frame::data(Bytes::from_static(b"{\"access"))),
                false => Err("connection reset".into()),
            }))
        }
    }

    #[tokio::test]
    async fn a_body_that_fails_midway_is_a_transport_error() {
        let outcome = read_capped(Exchange::Refresh, &HeaderMap::new(), Reset(false)).await;
        assert!(
            matches!(outcome, Err(Error::Transport { .. })),
            "{outcome:?}"
        );
    }
}
