//! The protocol seam: how to ask for a token and how to read the answer.
//!
//! The layer knows when to ask; a [`TokenEndpoint`] knows how. [`OcientAuth`](crate::OcientAuth)
//! is the Ocient implementation; another token service (an OAuth 2.0 refresh-token grant, say)
//! plugs in by implementing this trait.

use std::future::{ready, Future};
use std::pin::Pin;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};

use crate::error::{Error, Exchange};
use crate::grant::Grant;

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
}

impl std::fmt::Debug for Answer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("exchange", &self.exchange)
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .field("current", &self.current)
            .finish()
    }
}

impl<'a> Answer<'a> {
    /// An answer to `exchange`.
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
        }
    }

    /// The answer to a refresh of `current`.
    #[must_use]
    pub fn replacing(mut self, current: &'a Grant) -> Self {
        self.current = Some(current);
        self
    }
}

/// A login request being built: see [`TokenEndpoint::login`].
pub type LoginFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Request<Bytes>>, Error>> + Send + 'a>>;

/// Builds login and refresh requests for one token service and reads its answers.
///
/// Every request is sent through the service the layer wraps, so it shares its connection
/// pool, TLS and proxy settings. Implementations hold credentials; their `Debug` must not
/// show them.
pub trait TokenEndpoint: std::fmt::Debug + Send + Sync + 'static {
    /// The URI whose origin (scheme, host, port) gets the token.
    fn origin(&self) -> &Uri;

    /// A token obtained elsewhere, to use before logging in. Its lifetime counts from now.
    fn initial_grant(&self) -> Option<Grant> {
        None
    }

    /// The login request, or `None` when there are no credentials to log in with.
    fn login_request(&self) -> Option<Request<Bytes>>;

    /// The login request, built when a login is about to be sent. The layer calls this, not
    /// [`login_request`](Self::login_request), at each login.
    ///
    /// The default returns `login_request()`. Override it where the credentials must be
    /// fetched first (a secret manager, a mounted file that rotates), together with
    /// [`can_log_in`](Self::can_log_in).
    fn login(&self) -> LoginFuture<'_> {
        Box::pin(ready(Ok(self.login_request())))
    }

    /// Whether there are credentials to log in with, so that a token the server refuses
    /// leads to a new login rather than to an error.
    fn can_log_in(&self) -> bool {
        self.login_request().is_some()
    }

    /// The request that trades `current` for a fresh grant.
    fn refresh_request(&self, current: &Grant) -> Request<Bytes>;

    /// Turns an answer into a grant, or into the error that explains why not.
    fn read_answer(&self, answer: Answer<'_>) -> Result<Grant, Error>;

    /// Whether `error` means the token itself is no good (expired, revoked, unknown), so
    /// only a new login helps.
    fn rejects_token(&self, error: &Error) -> bool;

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
    use super::*;

    /// An endpoint that says only what it must.
    #[derive(Debug)]
    struct Minimal(Uri, Option<&'static str>);

    impl TokenEndpoint for Minimal {
        fn origin(&self) -> &Uri {
            &self.0
        }
        fn login_request(&self) -> Option<Request<Bytes>> {
            self.1
                .map(|body| Request::new(Bytes::from_static(body.as_bytes())))
        }
        fn refresh_request(&self, _: &Grant) -> Request<Bytes> {
            unreachable!("never asked")
        }
        fn read_answer(&self, _: Answer<'_>) -> Result<Grant, Error> {
            unreachable!("never asked")
        }
        fn rejects_token(&self, _: &Error) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn by_default_a_login_is_the_login_request() {
        let with = Minimal(Uri::from_static("https://sql-node"), Some("credentials"));
        assert!(with.can_log_in());
        let login = with.login().await.unwrap().expect("a login");
        assert_eq!(login.body(), "credentials");
        let without = Minimal(Uri::from_static("https://sql-node"), None);
        assert!(!without.can_log_in());
        assert!(without.login().await.unwrap().is_none());
    }

    #[test]
    fn by_default_there_is_one_node_in_the_clear_nowhere() {
        let endpoint = Minimal(Uri::from_static("https://sql-node"), None);
        assert!(endpoint.other_origins().is_empty());
        assert!(endpoint.fail_over().is_none());
        assert!(!endpoint.allows_plain_http());
        assert!(endpoint.initial_grant().is_none());
    }
}
