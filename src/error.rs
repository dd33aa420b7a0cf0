//! The error a caller gets when the layer cannot obtain a token.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// The boxed error tower's middleware speak (as `tower::BoxError`).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which token request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exchange {
    /// Logging in with the credentials.
    Login,
    /// Refreshing the current token.
    Refresh,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exchange::Login => "login",
            Exchange::Refresh => "token refresh",
        })
    }
}

/// Why the layer could not put a token on a request.
///
/// The service returns it boxed in a [`tower::BoxError`](https://docs.rs/tower/latest/tower/type.BoxError.html);
/// recover it with `downcast_ref`:
///
/// ```
/// # fn handle(err: Box<dyn std::error::Error + Send + Sync>) {
/// use tower_token_refresh::Error;
///
/// match err.downcast_ref::<Error>() {
///     Some(Error::Rejected { vendor_code: -304, .. }) => eprintln!("wrong user or password"),
///     Some(other) => eprintln!("no token: {other}"),
///     None => eprintln!("the request itself failed: {err}"),
/// }
/// # }
/// ```
///
/// The error is cheap to clone: every caller waiting on one failed attempt gets a copy. No
/// variant ever holds the password or a token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint answered, and said no: a non-2xx status, or a non-zero `vendor_code`.
    #[error(
        "{exchange} rejected: HTTP {status}, vendor_code {vendor_code}, sql_state {sql_state}: {reason}"
    )]
    Rejected {
        /// Which request was rejected.
        exchange: Exchange,
        /// The HTTP status of the answer.
        status: StatusCode,
        /// Ocient's vendor code (`0` when the answer carried none).
        vendor_code: i64,
        /// The SQLSTATE of the answer (empty when it carried none).
        sql_state: String,
        /// The server's reason, with any secret the layer knows removed.
        reason: String,
    },
    /// The endpoint answered with something the layer cannot use.
    #[error("{exchange} gave an unusable answer: {reason}")]
    InvalidResponse {
        /// Which request got the answer.
        exchange: Exchange,
        /// What was wrong with it. Never contains the answer's token.
        reason: String,
    },
    /// The wrapped service failed to deliver the token request or its answer.
    #[error("{exchange} failed in transport: {source}")]
    Transport {
        /// Which request failed.
        exchange: Exchange,
        /// The wrapped service's error.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The token request did not complete, body included, within the refresh timeout.
    #[error("{exchange} did not complete within {after:?}")]
    Timeout {
        /// Which request timed out.
        exchange: Exchange,
        /// The refresh timeout in force.
        after: Duration,
    },
    /// The token is no longer good and there are no credentials to log in again with.
    #[error("no usable token and no credentials to log in with")]
    MissingCredentials,
    /// The layer was used outside a Tokio runtime, where it cannot run its refresh task.
    #[error("the token refresh layer needs a Tokio runtime")]
    NoRuntime,
    /// The credentials provider (see `OcientAuth::credentials_from`) failed. Its error is
    /// the [`source`](std::error::Error::source): left out of this error's message and of
    /// every `Debug`, in case it quotes a secret, and there for whoever asks for it.
    #[error("the credentials provider failed")]
    Credentials {
        /// The provider's error.
        #[source]
        source: ProviderError,
    },
    /// A token or the credentials would have gone over plain `http://` to a host that is
    /// not loopback, and nobody opted in: nothing was sent.
    #[error(
        "refusing to send a token or credentials over plain http to {origin}: use https://, \
         or opt in with allow_plain_http() only where the network encrypts underneath"
    )]
    InsecureTransport {
        /// The origin (scheme, host, port) the request was for.
        origin: String,
    },
}

/// A credentials provider's own error. Its `Display` is the provider's message; its `Debug`
/// shows nothing of it, so a logged status or event cannot leak what it says.
#[derive(Clone)]
pub struct ProviderError(Arc<dyn std::error::Error + Send + Sync>);

impl ProviderError {
    pub(crate) fn new(error: Box<dyn std::error::Error + Send + Sync>) -> Self {
        ProviderError(Arc::from(error))
    }
}

impl fmt::Debug for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProviderError(<not shown>)")
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Error {
    /// The Ocient vendor code, for a [`Error::Rejected`].
    pub fn vendor_code(&self) -> Option<i64> {
        match self {
            Error::Rejected { vendor_code, .. } => Some(*vendor_code),
            _ => None,
        }
    }

    /// Removes `secret` from any text the server sent back, in case it echoed a token.
    pub(crate) fn without_secret(mut self, secret: &str) -> Self {
        if let Error::Rejected { reason, .. } | Error::InvalidResponse { reason, .. } = &mut self {
            if !secret.is_empty() && reason.contains(secret) {
                *reason = reason.replace(secret, "<redacted>");
            }
        }
        self
    }

    pub(crate) fn invalid(exchange: Exchange, reason: impl Into<String>) -> Self {
        Error::InvalidResponse {
            exchange,
            reason: reason.into(),
        }
    }

    pub(crate) fn transport(
        exchange: Exchange,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Transport {
            exchange,
            source: Arc::from(source.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(reason: &str) -> Error {
        Error::Rejected {
            exchange: Exchange::Refresh,
            status: StatusCode::UNAUTHORIZED,
            vendor_code: -1205,
            sql_state: "08004".into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn a_secret_the_server_echoed_is_redacted_everywhere_it_shows() {
        for error in [
            rejected("token t0k3n-abc is unknown, t0k3n-abc!"),
            Error::invalid(Exchange::Refresh, "t0k3n-abc is unknown, t0k3n-abc!"),
        ] {
            let error = error.without_secret("t0k3n-abc");
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("t0k3n-abc"), "{shown}");
            assert_eq!(shown.matches("<redacted>").count(), 4, "{shown}");
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("vault sealed: s3cr3t")]
    struct Sealed(#[source] std::io::Error);

    #[test]
    fn a_provider_error_is_told_only_to_whoever_asks_for_it() {
        let cause = std::io::Error::other("disk gone");
        let error = Error::Credentials {
            source: ProviderError::new(Box::new(Sealed(cause))),
        };
        assert_eq!(error.to_string(), "the credentials provider failed");
        let debug = format!("{error:?}");
        assert!(debug.contains("ProviderError(<not shown>)"), "{debug}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        let provider = std::error::Error::source(&error).expect("the provider's error");
        assert_eq!(provider.to_string(), "vault sealed: s3cr3t");
        let cause = provider.source().expect("and what it says caused it");
        assert_eq!(cause.to_string(), "disk gone");
    }

    #[test]
    fn text_without_the_secret_is_left_alone() {
        let error = rejected("token unknown").without_secret("t0k3n-abc");
        assert!(error.to_string().ends_with(": token unknown"), "{error}");
        // An empty secret is in every text: it redacts nothing.
        let error = rejected("token unknown").without_secret("");
        assert!(error.to_string().ends_with(": token unknown"), "{error}");
        let timeout = Error::Timeout {
            exchange: Exchange::Login,
            after: Duration::from_secs(1),
        };
        let shown = timeout.to_string();
        assert_eq!(timeout.without_secret("1").to_string(), shown);
    }
}
