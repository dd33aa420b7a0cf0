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
///     Some(e) if e.vendor_code() == Some(-304) => eprintln!("wrong user or password"),
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
    /// The endpoint answered, and said no: a non-2xx status, or an error code in a 2xx
    /// answer (as Ocient's `vendor_code` can be). Built with [`Error::rejected`].
    #[error("{exchange} rejected: HTTP {status}{}: {reason}", code_text(code))]
    Rejected {
        /// Which request was rejected.
        exchange: Exchange,
        /// The HTTP status of the answer.
        status: StatusCode,
        /// The protocol's own error code, when the answer carried one.
        code: Option<ErrorCode>,
        /// The server's reason, printable and at most 256 characters, with any secret the
        /// layer knows removed.
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
    Provider {
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

/// A token service's own code for why it said no, as [`Error::Rejected`] carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Ocient's status object: its vendor code (`0` when it carried none) and SQLSTATE
    /// (empty when it carried none, `<invalid>` when it was not five letters or digits).
    Ocient {
        /// The vendor code, such as `-304` for a wrong user or password.
        vendor_code: i64,
        /// The SQLSTATE, such as `08004`.
        sql_state: String,
    },
    /// Another protocol's code as the server wrote it, such as OAuth 2.0's `invalid_grant`.
    Named(String),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Ocient {
                vendor_code,
                sql_state,
            } => write!(f, "vendor_code {vendor_code}, sql_state {sql_state}"),
            ErrorCode::Named(code) => write!(f, "error {code}"),
        }
    }
}

/// `, <code>` when there is one, for a rejection's message.
fn code_text(code: &Option<ErrorCode>) -> String {
    code.as_ref()
        .map(|code| format!(", {code}"))
        .unwrap_or_default()
}

/// The longest `reason` (and named code) an error repeats from the server.
const MAX_REASON: usize = 256;

/// Server text as an error repeats it: no control characters (a log line stays one line),
/// and short.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect()
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
    /// A token request the endpoint answered and rejected. `reason` is the server's own
    /// text: control characters are dropped and it is cut to 256 characters, so remove any
    /// secret from it first. A [`ErrorCode::Named`] is cleaned the same way.
    pub fn rejected(
        exchange: Exchange,
        status: StatusCode,
        code: Option<ErrorCode>,
        reason: &str,
    ) -> Self {
        let code = code.map(|code| match code {
            ErrorCode::Named(name) => ErrorCode::Named(printable(&name)),
            ocient => ocient,
        });
        Error::Rejected {
            exchange,
            status,
            code,
            reason: printable(reason),
        }
    }

    /// An answer the layer cannot use: `reason` says what is wrong with it, and must not
    /// quote the answer (it may hold a token).
    pub fn invalid_response(exchange: Exchange, reason: impl Into<String>) -> Self {
        Error::InvalidResponse {
            exchange,
            reason: reason.into(),
        }
    }

    /// The wrapped service (or whatever the endpoint waited on) failed to deliver a token
    /// request or its answer.
    pub fn transport(
        exchange: Exchange,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Transport {
            exchange,
            source: Arc::from(source.into()),
        }
    }

    /// The Ocient vendor code, for an [`Error::Rejected`] by an Ocient node.
    pub fn vendor_code(&self) -> Option<i64> {
        match self.code()? {
            ErrorCode::Ocient { vendor_code, .. } => Some(*vendor_code),
            ErrorCode::Named(_) => None,
        }
    }

    /// The token service's own code, for an [`Error::Rejected`] that carried one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Rejected { code, .. } => code.as_ref(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(reason: &str) -> Error {
        let code = ErrorCode::Ocient {
            vendor_code: -1205,
            sql_state: "08004".into(),
        };
        Error::rejected(
            Exchange::Refresh,
            StatusCode::UNAUTHORIZED,
            Some(code),
            reason,
        )
    }

    #[test]
    fn a_secret_the_server_echoed_is_redacted_everywhere_it_shows() {
        for error in [
            rejected("token t0k3n-abc is unknown, t0k3n-abc!"),
            Error::invalid_response(Exchange::Refresh, "t0k3n-abc is unknown, t0k3n-abc!"),
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
        let error = Error::Provider {
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
    fn a_rejection_says_its_code_and_keeps_server_text_to_one_short_line() {
        let named = Error::rejected(
            Exchange::Refresh,
            StatusCode::BAD_REQUEST,
            Some(ErrorCode::Named("invalid_grant\n".into())),
            &format!("spent\r\ntoken{}", "x".repeat(300)),
        );
        assert_eq!(
            named.code(),
            Some(&ErrorCode::Named("invalid_grant".into()))
        );
        assert_eq!(named.vendor_code(), None);
        let Error::Rejected { reason, .. } = &named else {
            unreachable!()
        };
        assert_eq!(reason.chars().count(), 256);
        assert!(reason.starts_with("spenttokenxxx"), "{reason}");
        assert!(
            named.to_string().starts_with(
                "token refresh rejected: HTTP 400 Bad Request, error invalid_grant: spent"
            ),
            "{named}"
        );
        let ocient = rejected("no");
        assert_eq!(ocient.vendor_code(), Some(-1205));
        assert_eq!(
            ocient.to_string(),
            "token refresh rejected: HTTP 401 Unauthorized, vendor_code -1205, sql_state 08004: no"
        );
        let bare = Error::rejected(Exchange::Login, StatusCode::FORBIDDEN, None, "");
        assert_eq!((bare.code(), bare.vendor_code()), (None, None));
        assert_eq!(bare.to_string(), "login rejected: HTTP 403 Forbidden: ");
        assert_eq!(Error::MissingCredentials.code(), None);
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
