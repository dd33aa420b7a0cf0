//! The protocol seam: how to obtain a token, and what a failure means.
//!
//! The layer knows when to ask; a [`TokenEndpoint`] knows how. [`OcientAuth`](crate::OcientAuth)
//! is the Ocient implementation; another token service (an OAuth 2.0 refresh-token grant, say)
//! plugs in by implementing this trait.

use std::future::Future;

use http::Uri;

use crate::error::Error;
use crate::grant::Grant;

mod answer;
mod client;
pub(crate) mod erased;
mod failure;
#[cfg(test)]
pub(crate) mod script;

pub use answer::Answer;
pub use client::TokenClient;
pub(crate) use client::{BoxFuture, Deadline, Transport};
pub use failure::FailureKind;

/// Obtains tokens from one token service: its login and its refresh, written as plain async
/// code over a [`TokenClient`], and what its failures mean ([`classify`](Self::classify)).
///
/// Implement [`origin`](Self::origin) and [`refresh`](Self::refresh); and, where they
/// apply, [`can_log_in`](Self::can_log_in) with [`login`](Self::login) (without them the
/// endpoint starts from [`initial_grant`](Self::initial_grant) and refreshes it while the
/// server allows), [`classify`](Self::classify) for a server whose refusals the default does
/// not recognise, [`allows_plain_http`](Self::allows_plain_http), and
/// [`other_origins`](Self::other_origins) with [`fail_over`](Self::fail_over) for a
/// cluster.
///
/// Every request goes through the service the layer wraps, so it shares its connection
/// pool, TLS and proxy settings, and each step is bounded by the layer's refresh timeout
/// (see [`TokenClient`]). A login of several requests (a challenge, a device grant that
/// polls until the user approves) is a loop. Implementations hold credentials; their
/// `Debug` must not show them. What an answer produces is built with
/// [`Grant::from_expires_in`], [`Error::rejected`], [`Error::invalid_response`], and for a
/// credentials source of the implementation's own, [`Error::provider`].
///
/// ```
/// use http::{Request, StatusCode, Uri};
/// use tower_token_refresh::{
///     Answer, Error, FailureKind, Grant, Secret, TokenClient, TokenEndpoint,
/// };
///
/// /// Logs in with a password read at each login, and refreshes with the token.
/// #[derive(Debug)]
/// struct FileLogin {
///     api: Uri,
/// }
///
/// impl FileLogin {
///     fn read(&self, answer: Answer) -> Result<Grant, Error> {
///         if !answer.status.is_success() {
///             let reason = String::from_utf8_lossy(&answer.body);
///             return Err(Error::rejected(answer.exchange, answer.status, None, reason));
///         }
///         let token = std::str::from_utf8(&answer.body).unwrap_or_default().trim();
///         let token = Secret::new(token)
///             .map_err(|e| Error::invalid_response(answer.exchange, e.to_string()))?;
///         Grant::from_expires_in(token, 300.0)
///             .map_err(|e| Error::invalid_response(answer.exchange, e.to_string()))
///     }
/// }
///
/// impl TokenEndpoint for FileLogin {
///     fn origin(&self) -> &Uri {
///         &self.api
///     }
///     fn can_log_in(&self) -> bool {
///         true
///     }
///     async fn login(&self, client: &mut TokenClient<'_>) -> Result<Grant, Error> {
///         // A local failure, not the server's: the layer neither fails over nor blames it.
///         let password = tokio::fs::read_to_string("/run/secrets/api")
///             .await
///             .map_err(Error::provider)?;
///         let request = Request::post(format!("{}login", self.api)).body(password.into());
///         let answer = client.send(request.expect("a valid request")).await?;
///         self.read(answer)
///     }
///     async fn refresh(&self, client: &mut TokenClient<'_>, current: &Grant) -> Result<Grant, Error> {
///         let request = Request::post(format!("{}refresh", self.api))
///             .header("authorization", current.bearer_header())
///             .body(Default::default());
///         let answer = client.send(request.expect("a valid request")).await?;
///         self.read(answer)
///     }
///     fn classify(&self, error: &Error) -> FailureKind {
///         match error {
///             // This server says 400 for a wrong password.
///             Error::Rejected { status, .. } if *status == StatusCode::BAD_REQUEST => {
///                 FailureKind::Refused
///             }
///             other => FailureKind::of(other),
///         }
///     }
/// }
/// # let _ = tower_token_refresh::TokenRefreshLayer::new(FileLogin { api: Uri::from_static("https://api") });
/// ```
pub trait TokenEndpoint: std::fmt::Debug + Send + Sync + 'static {
    /// The URI whose origin (scheme, host, port) gets the token.
    fn origin(&self) -> &Uri;

    /// Whether this endpoint can [`login`](Self::login) (`false` unless implemented): a
    /// token that is revoked or dead leads to a new login exactly when it can.
    fn can_log_in(&self) -> bool {
        false
    }

    /// Obtains a new grant from nothing but the credentials. The default fails with
    /// [`Error::MissingCredentials`]: implement it together with
    /// [`can_log_in`](Self::can_log_in).
    ///
    /// The layer calls it only when a login may be sent (never towards an origin it would
    /// refuse in the clear), and shares one login among every waiting caller.
    fn login(
        &self,
        client: &mut TokenClient<'_>,
    ) -> impl Future<Output = Result<Grant, Error>> + Send {
        let _ = client;
        std::future::ready(Err(Error::MissingCredentials))
    }

    /// Trades `current` for a fresh grant. A refresh failure that
    /// [`classify`](Self::classify) calls [`FailureKind::Revoked`] leads to a login when
    /// the endpoint can log in. The layer removes `current`'s tokens from any error text
    /// the server echoed.
    fn refresh(
        &self,
        client: &mut TokenClient<'_>,
        current: &Grant,
    ) -> impl Future<Output = Result<Grant, Error>> + Send;

    /// What `error`, the outcome of a login or refresh, means for the next attempt: see
    /// [`FailureKind`] for what the layer does with each kind. The default is
    /// [`FailureKind::of`]; a protocol overrides it for the answers its server gives (a
    /// vendor code that says "wrong password", a 400 that says "unknown client") and
    /// defers to it for the rest.
    fn classify(&self, error: &Error) -> FailureKind {
        FailureKind::of(error)
    }

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

    /// A token request to the current node failed as [`FailureKind::Away`] (and not in a
    /// credentials provider): moves the following requests to the next node and returns
    /// `(from, to)`, or `None` when there is no other node.
    fn fail_over(&self) -> Option<(Uri, Uri)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderMap, Request, StatusCode};

    use super::*;
    use crate::error::Exchange;

    /// An endpoint that says only what it must.
    #[derive(Debug)]
    struct Minimal(Uri);

    impl TokenEndpoint for Minimal {
        fn origin(&self) -> &Uri {
            &self.0
        }
        async fn refresh(&self, _: &mut TokenClient<'_>, _: &Grant) -> Result<Grant, Error> {
            unreachable!("never asked")
        }
    }

    #[tokio::test]
    async fn by_default_there_is_one_node_in_the_clear_nowhere_and_no_login() {
        let endpoint = Minimal(Uri::from_static("https://sql-node"));
        assert!(!endpoint.can_log_in());
        assert!(endpoint.other_origins().is_empty());
        assert!(endpoint.fail_over().is_none());
        assert!(!endpoint.allows_plain_http());
        assert!(endpoint.initial_grant().is_none());
        let timeout = Duration::from_secs(1);
        let deadline = Deadline::new(timeout);
        let mut unused = script::Unused;
        let mut client = TokenClient::new(&mut unused, Exchange::Login, timeout, deadline);
        let login = TokenEndpoint::login(&endpoint, &mut client).await;
        assert!(matches!(login, Err(Error::MissingCredentials)), "{login:?}");
        let refused = Error::rejected(Exchange::Login, StatusCode::FORBIDDEN, None, "");
        assert_eq!(endpoint.classify(&refused), FailureKind::Refused);
    }

    #[test]
    fn an_answer_shows_no_body() {
        let answer = Answer::new(Exchange::Login, StatusCode::OK, HeaderMap::new(), "t0ken");
        let shown = format!("{answer:?}");
        assert!(shown.contains("body_len: 5"), "{shown}");
        assert!(!shown.contains("t0ken"), "{shown}");
    }

    /// Logs in by answering a challenge: two requests, written as one `async fn`.
    #[derive(Debug)]
    struct Challenged(Uri);

    impl TokenEndpoint for Challenged {
        fn origin(&self) -> &Uri {
            &self.0
        }
        fn can_log_in(&self) -> bool {
            true
        }
        async fn login(&self, client: &mut TokenClient<'_>) -> Result<Grant, Error> {
            let challenge = Request::post("https://api.test/challenge").body(Bytes::new());
            let nonce = client.send(challenge.unwrap()).await?.body;
            let reply = Request::post("https://api.test/login").body(nonce);
            AsyncLoginOnly::read(client.send(reply.unwrap()).await?)
        }
        async fn refresh(&self, _: &mut TokenClient<'_>, _: &Grant) -> Result<Grant, Error> {
            unreachable!("never asked")
        }
    }

    #[tokio::test]
    async fn a_login_of_several_requests_is_plain_async_code() {
        let mut script = script::Script::default()
            .answer(200, "n0nce")
            .answer(200, "t0ken");
        let endpoint = Challenged(Uri::from_static("https://api.test/"));
        let grant = script.login(&endpoint, Duration::from_secs(7)).await;
        assert_eq!(grant.unwrap().access_token().expose(), "t0ken");
        assert_eq!(script.sent.len(), 2);
        assert_eq!(script.sent[1].uri(), "https://api.test/login");
        assert_eq!(
            script.sent[1].body(),
            "n0nce",
            "the second answers the first"
        );
        assert_eq!(
            script.timeout,
            Some(Duration::from_secs(7)),
            "each given the timeout"
        );

        let mut refused = script::Script::default()
            .answer(200, "n0nce")
            .answer(401, "");
        let error = refused.login(&endpoint, Duration::from_secs(7)).await;
        let error = error.unwrap_err();
        assert_eq!(endpoint.classify(&error), FailureKind::Refused, "{error}");
    }

    /// Logs in asynchronously and implements nothing optional: the way rotating
    /// credentials are written.
    #[derive(Debug)]
    struct AsyncLoginOnly(Uri);

    impl AsyncLoginOnly {
        fn read(answer: Answer) -> Result<Grant, Error> {
            if !answer.status.is_success() {
                return Err(Error::rejected(answer.exchange, answer.status, None, ""));
            }
            let token = String::from_utf8_lossy(&answer.body).into_owned();
            let token = crate::grant::Secret::new(token)
                .map_err(|e| Error::invalid_response(answer.exchange, e.to_string()))?;
            Grant::from_expires_in(token, 60.0)
                .map_err(|e| Error::invalid_response(answer.exchange, e.to_string()))
        }
    }

    impl TokenEndpoint for AsyncLoginOnly {
        fn origin(&self) -> &Uri {
            &self.0
        }
        fn can_log_in(&self) -> bool {
            true
        }
        async fn login(&self, client: &mut TokenClient<'_>) -> Result<Grant, Error> {
            // As a secret manager would: the request is ready only later.
            tokio::task::yield_now().await;
            let request = Request::post("http://127.0.0.1/login").body(Bytes::new());
            Self::read(client.send(request.unwrap()).await?)
        }
        async fn refresh(&self, client: &mut TokenClient<'_>, _: &Grant) -> Result<Grant, Error> {
            let request = Request::post("http://127.0.0.1/refresh").body(Bytes::new());
            Self::read(client.send(request.unwrap()).await?)
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
