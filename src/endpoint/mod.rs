//! The protocol seam: how to ask for a token and how to read the answer.
//!
//! The layer knows when to ask; a [`TokenEndpoint`] knows how. [`OcientAuth`](crate::OcientAuth)
//! is the Ocient implementation; another token service (an OAuth 2.0 refresh-token grant, say)
//! plugs in by implementing this trait.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};

use crate::error::{Error, Exchange};
use crate::grant::Grant;

mod login;

pub use login::LoginStep;
pub(crate) use login::{Continuation, Reader};

/// The answer to a login or refresh request, read in full.
///
/// Its `Debug` shows the status and sizes only: the body holds the token.
#[non_exhaustive]
pub struct Answer<'a> {
    /// Which request this answers.
    pub exchange: Exchange,
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: &'a HeaderMap,
    /// The whole body (at most 1 MiB; larger answers never reach the protocol).
    pub body: &'a [u8],
    /// For a refresh, the grant it trades in: a protocol whose server may leave out a new
    /// refresh token (OAuth 2.0) keeps the old one from here.
    pub current: Option<&'a Grant>,
    /// How long the layer gives each token request, answer included (its refresh timeout):
    /// a login that asks the server to hold its next request (a long poll) asks for less.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Answer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("exchange", &self.exchange)
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .field("current", &self.current)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl<'a> Answer<'a> {
    /// An answer to `exchange`, to a request given the layer's default refresh timeout
    /// (see [`within`](Self::within)).
    pub fn new(
        exchange: Exchange,
        status: StatusCode,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Self {
        Answer {
            exchange,
            status,
            headers,
            body,
            current: None,
            request_timeout: crate::layer::DEFAULT_REFRESH_TIMEOUT,
        }
    }

    /// The answer to a request the layer gave `timeout`.
    #[must_use]
    pub fn within(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The answer to a refresh of `current`.
    #[must_use]
    pub fn replacing(mut self, current: &'a Grant) -> Self {
        self.current = Some(current);
        self
    }
}

/// A login request being built: see [`TokenEndpoint::login`].
pub type LoginFuture<'a> = Pin<Box<dyn Future<Output = Result<Request<Bytes>, Error>> + Send + 'a>>;

/// Builds login and refresh requests for one token service and reads its answers.
///
/// Implement [`origin`](Self::origin), [`refresh_request`](Self::refresh_request),
/// [`read_answer`](Self::read_answer) and [`is_revocation`](Self::is_revocation); and,
/// where they apply, [`login`](Self::login) (without it the endpoint never logs in: it
/// starts from [`initial_grant`](Self::initial_grant) and refreshes it while the server
/// allows), [`allows_plain_http`](Self::allows_plain_http), and
/// [`other_origins`](Self::other_origins) with [`fail_over`](Self::fail_over) for a
/// cluster.
///
/// Every request is sent through the service the layer wraps, so it shares its connection
/// pool, TLS and proxy settings. Implementations hold credentials; their `Debug` must not
/// show them. What an answer can produce is built with [`Grant::from_expires_in`],
/// [`Error::rejected`], [`Error::invalid_response`] and [`Error::transport`].
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Uri};
/// use tower_token_refresh::{Answer, Error, Grant, LoginFuture, Secret, TokenEndpoint};
///
/// /// Logs in with a password read at each login, and refreshes nothing (every token
/// /// that dies leads to a new login).
/// #[derive(Debug)]
/// struct FileLogin {
///     api: Uri,
/// }
///
/// impl TokenEndpoint for FileLogin {
///     fn origin(&self) -> &Uri {
///         &self.api
///     }
///     fn login(&self) -> Option<LoginFuture<'_>> {
///         Some(Box::pin(async move {
///             let password = tokio::fs::read_to_string("/run/secrets/api")
///                 .await
///                 .map_err(|e| Error::transport(tower_token_refresh::Exchange::Login, e))?;
///             Ok(Request::post(format!("{}login", self.api)).body(Bytes::from(password)).unwrap())
///         }))
///     }
///     fn refresh_request(&self, _current: &Grant) -> Request<Bytes> {
///         Request::post(format!("{}refresh", self.api)).body(Bytes::new()).unwrap()
///     }
///     fn read_answer(&self, answer: Answer<'_>) -> Result<Grant, Error> {
///         let token = std::str::from_utf8(answer.body).unwrap_or_default().trim();
///         let token = Secret::new(token)
///             .map_err(|e| Error::invalid_response(answer.exchange, e.to_string()))?;
///         Grant::from_expires_in(token, 300.0)
///             .map_err(|e| Error::invalid_response(answer.exchange, e.to_string()))
///     }
///     fn is_revocation(&self, error: &Error) -> bool {
///         matches!(error, Error::Rejected { status, .. } if status.as_u16() == 401)
///     }
/// }
/// # let _ = tower_token_refresh::TokenRefreshLayer::new(FileLogin { api: Uri::from_static("https://api") });
/// ```
pub trait TokenEndpoint: std::fmt::Debug + Send + Sync + 'static {
    /// The URI whose origin (scheme, host, port) gets the token.
    fn origin(&self) -> &Uri;

    /// The login request, built when a login is about to be sent (credentials may be
    /// fetched first: a secret manager, a mounted file that rotates); `None` when this
    /// endpoint cannot log in (the default).
    ///
    /// Whether the endpoint can log in follows from this: a revoked token leads to a new
    /// login exactly when it returns `Some`. The layer may call it only to ask that, and
    /// drop the future unpolled, so the future should do its work when polled, not when
    /// created (an `async` block does).
    fn login(&self) -> Option<LoginFuture<'_>> {
        None
    }

    /// Reads the answer to the [`login`](Self::login) request. The default reads it as the
    /// whole login, with [`read_answer`](Self::read_answer).
    ///
    /// A login that takes more than one request (a device grant, which polls until the
    /// user approves) answers [`LoginStep::then`] with the next request and how to read
    /// what comes of it, until it is [`LoginStep::done`]. The layer sends each request
    /// through the wrapped service, bounds each by its refresh timeout (a wait asked with
    /// [`LoginStep::after`] does not count), and takes the whole conversation as one login:
    /// callers wait for it like for any login. The endpoint bounds the conversation: one
    /// that never ends keeps its callers waiting.
    fn read_login_answer(&self, answer: Answer<'_>) -> LoginStep<'_> {
        LoginStep::done(self.read_answer(answer))
    }

    /// The request that trades `current` for a fresh grant.
    fn refresh_request(&self, current: &Grant) -> Request<Bytes>;

    /// Turns an answer into a grant, or into the error that explains why not.
    fn read_answer(&self, answer: Answer<'_>) -> Result<Grant, Error>;

    /// Whether `error` says the token is revoked (expired, unknown, no longer taken by the
    /// server), so refreshing it cannot help and only a new login can.
    ///
    /// Such an error is a judgement, not an outage: the layer does not fail over to another
    /// node for it, and waits the full backoff before asking again.
    fn is_revocation(&self, error: &Error) -> bool;

    /// A token obtained elsewhere, to use before logging in. Its lifetime counts from now.
    fn initial_grant(&self) -> Option<Grant> {
        None
    }

    /// Whether tokens and credentials may travel over plain `http://` to a host that is not
    /// loopback. `false` unless the user opted in: the layer then refuses such requests
    /// with [`Error::InsecureTransport`] and sends nothing.
    fn allows_plain_http(&self) -> bool {
        false
    }

    /// More URIs whose origins get the token besides [`origin`](Self::origin): the other
    /// nodes of a cluster that token requests may fail over to.
    fn other_origins(&self) -> Vec<Uri> {
        Vec::new()
    }

    /// A token request to the current node failed in a way another node might not (a
    /// transport error, a timeout, a 5xx): moves the following requests to the next node
    /// and returns `(from, to)`, or `None` when there is no other node.
    fn fail_over(&self) -> Option<(Uri, Uri)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;

    /// An endpoint that says only what it must.
    #[derive(Debug)]
    struct Minimal(Uri);

    impl TokenEndpoint for Minimal {
        fn origin(&self) -> &Uri {
            &self.0
        }
        fn refresh_request(&self, _: &Grant) -> Request<Bytes> {
            unreachable!("never asked")
        }
        fn read_answer(&self, _: Answer<'_>) -> Result<Grant, Error> {
            unreachable!("never asked")
        }
        fn is_revocation(&self, _: &Error) -> bool {
            false
        }
    }

    #[test]
    fn by_default_there_is_one_node_in_the_clear_nowhere_and_no_login() {
        let endpoint = Minimal(Uri::from_static("https://sql-node"));
        assert!(endpoint.login().is_none());
        assert!(endpoint.other_origins().is_empty());
        assert!(endpoint.fail_over().is_none());
        assert!(!endpoint.allows_plain_http());
        assert!(endpoint.initial_grant().is_none());
    }

    #[test]
    fn by_default_a_login_answer_is_the_whole_login() {
        let endpoint = AsyncLoginOnly(Uri::from_static("https://sql-node"));
        let headers = HeaderMap::new();
        let answer = Answer::new(Exchange::Login, StatusCode::OK, &headers, b"t0ken");
        assert_eq!(
            answer.request_timeout,
            crate::layer::DEFAULT_REFRESH_TIMEOUT
        );
        let answer = answer.within(std::time::Duration::from_secs(7));
        assert_eq!(answer.request_timeout, std::time::Duration::from_secs(7));
        let step = endpoint.read_login_answer(answer);
        assert!(step.is_done());
        let shown = format!("{step:?}");
        assert!(shown.starts_with("Done(Ok(Grant {"), "{shown}");
        assert!(
            !shown.contains("t0ken"),
            "its Debug shows no token: {shown}"
        );
        let Ok(Ok(grant)) = step.into_parts() else {
            panic!("read as the whole login");
        };
        assert_eq!(grant.access_token().expose(), "t0ken");
    }

    #[test]
    fn a_login_goes_on_after_the_wait_it_asks_for() {
        let next = Box::pin(std::future::ready(Err(Error::MissingCredentials)));
        let more = LoginStep::then(next, |_| LoginStep::done(Err(Error::MissingCredentials)));
        assert!(!more.is_done());
        let more = more.after(std::time::Duration::from_secs(5));
        assert_eq!(format!("{more:?}"), "Continue { wait: 5s, .. }");
        let Err(next) = more.into_parts() else {
            panic!("not over");
        };
        assert_eq!(next.wait, std::time::Duration::from_secs(5));
        let over = LoginStep::done(Err(Error::MissingCredentials)).after(Duration::from_secs(1));
        assert!(over.is_done(), "a login that is over stays over");
    }

    /// Logs in asynchronously and implements nothing optional: the way rotating
    /// credentials are written.
    #[derive(Debug)]
    struct AsyncLoginOnly(Uri);

    impl TokenEndpoint for AsyncLoginOnly {
        fn origin(&self) -> &Uri {
            &self.0
        }
        fn login(&self) -> Option<LoginFuture<'_>> {
            Some(Box::pin(async {
                // As a secret manager would: the request is ready only later.
                tokio::task::yield_now().await;
                Ok(Request::post("http://127.0.0.1/login")
                    .body(Bytes::new())
                    .unwrap())
            }))
        }
        fn refresh_request(&self, _: &Grant) -> Request<Bytes> {
            Request::post("http://127.0.0.1/refresh")
                .body(Bytes::new())
                .unwrap()
        }
        fn read_answer(&self, answer: Answer<'_>) -> Result<Grant, Error> {
            if !answer.status.is_success() {
                return Err(Error::rejected(answer.exchange, answer.status, None, ""));
            }
            let token = String::from_utf8_lossy(answer.body).into_owned();
            let token = crate::grant::Secret::new(token)
                .map_err(|e| Error::invalid_response(answer.exchange, e.to_string()))?;
            Grant::from_expires_in(token, 60.0)
                .map_err(|e| Error::invalid_response(answer.exchange, e.to_string()))
        }
        fn is_revocation(&self, error: &Error) -> bool {
            matches!(error, Error::Rejected { status, .. } if *status == StatusCode::UNAUTHORIZED)
        }
    }

    /// Issues `token-N` at each login, refuses every refresh, and takes only the newest
    /// token on the API.
    fn server(
        logins: Arc<AtomicU64>,
    ) -> impl tower_service::Service<
        Request<http_body_util::Full<Bytes>>,
        Response = http::Response<http_body_util::Full<Bytes>>,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
           + Send
           + 'static {
        tower::service_fn(move |request: Request<http_body_util::Full<Bytes>>| {
            let logins = Arc::clone(&logins);
            async move {
                let respond = |status: u16, body: String| {
                    let mut response = http::Response::new(http_body_util::Full::from(body));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok(response)
                };
                match request.uri().path() {
                    "/login" => {
                        let n = logins.fetch_add(1, Ordering::SeqCst) + 1;
                        respond(200, format!("token-{n}"))
                    }
                    "/refresh" => respond(401, String::new()),
                    _ => {
                        let newest = format!("Bearer token-{}", logins.load(Ordering::SeqCst));
                        let sent = request.headers().get(http::header::AUTHORIZATION);
                        let status = if sent.is_some_and(|s| s == newest.as_str()) {
                            200
                        } else {
                            401
                        };
                        respond(status, String::new())
                    }
                }
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_that_only_logs_in_asynchronously_logs_in_again_when_it_must() {
        use tower::ServiceExt;

        let logins = Arc::new(AtomicU64::new(0));
        let service = tower_layer::Layer::layer(
            &crate::TokenRefreshLayer::new(AsyncLoginOnly(Uri::from_static("http://127.0.0.1/"))),
            server(Arc::clone(&logins)),
        );
        let api = || {
            Request::get("http://127.0.0.1/api")
                .body(http_body_util::Full::default())
                .unwrap()
        };
        let status = |service: &crate::TokenRefresh<_>| {
            let call = service.clone().oneshot(api());
            async move {
                let response: http::Response<_> = call.await.unwrap();
                response.status().as_u16()
            }
        };
        assert_eq!(status(&service).await, 200);
        assert_eq!(logins.load(Ordering::SeqCst), 1);

        // The server forgets the token (another login took its place): its 401 revokes it,
        // and the next request logs in again rather than failing.
        logins.fetch_add(1, Ordering::SeqCst);
        assert_eq!(status(&service).await, 401);
        assert_eq!(status(&service).await, 200);
        assert_eq!(logins.load(Ordering::SeqCst), 3, "one new login");

        // Past the refresh point, the refresh is rejected as revoked: a login follows.
        tokio::time::sleep(std::time::Duration::from_secs(40)).await;
        assert_eq!(status(&service).await, 200, "the due token is still sent");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(
            logins.load(Ordering::SeqCst),
            4,
            "the rejected refresh led to a login"
        );
        assert_eq!(status(&service).await, 200);
    }
}
