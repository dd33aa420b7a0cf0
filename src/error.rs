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
/// use tower_token_refresh::{Error, FailureKind};
///
/// match err.downcast_ref::<Error>() {
///     Some(e) if FailureKind::of(e) == FailureKind::Refused => eprintln!("refused: {e}"),
///     Some(other) => eprintln!("no token: {other}"),
///     None => eprintln!("the request itself failed: {err}"),
/// }
/// # }
/// ```
///
/// With the `ocient` feature, [`vendor_code`](Error::vendor_code) reads an Ocient node's
/// code: `-304` is a wrong user or password.
///
/// The error is cheap to clone: every caller waiting on one failed attempt gets a copy. No
/// variant ever holds the password or a token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint answered, and said no: a non-2xx status, or an error code in a 2xx
    /// answer (as Ocient's `vendor_code` can be). Built with [`Error::rejected`].
    #[error(
        "{exchange} rejected: HTTP {status}{}{}",
        code_text(code),
        reason_text(reason)
    )]
    #[non_exhaustive]
    Rejected {
        /// Which request was rejected.
        exchange: Exchange,
        /// The HTTP status of the answer.
        status: StatusCode,
        /// The protocol's own error code, when the answer carried one.
        code: Option<ErrorCode>,
        /// The server's reason, without control characters, with any secret the layer knows
        /// removed, and at most 256 characters.
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
    /// A [`PerIdentityLayer`](crate::PerIdentityLayer) could not tell whose request this
    /// is, and has no identity for such requests: nothing was sent.
    #[error(
        "the request names no identity: put one in its extensions, or set \
         PerIdentityLayer::default_identity"
    )]
    NoIdentity,
    /// The credentials provider (see `OcientAuth::credentials_from`, and
    /// `OcientAuth::sso_token_from` for an identity provider's token) failed. Its error is
    /// the [`source`](std::error::Error::source): left out of this error's message and of
    /// every `Debug`, in case it quotes a secret, and there for whoever asks for it.
    #[error("the credentials provider failed")]
    Provider {
        /// The provider's error.
        #[source]
        source: ProviderError,
    },
    /// A device grant (see `OcientAuth::device_grant`) ended without the user's approval.
    #[cfg(feature = "ocient")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ocient")))]
    #[error("device sign-in {ended}{}", reason_text(reason))]
    #[non_exhaustive]
    DeviceGrant {
        /// How it ended.
        ended: DeviceGrantEnd,
        /// The server's reason, cleaned like a rejection's (empty when it gave none).
        reason: String,
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

/// How a device grant ended without a token: see [`Error::DeviceGrant`].
#[cfg(feature = "ocient")]
#[cfg_attr(docsrs, doc(cfg(feature = "ocient")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceGrantEnd {
    /// The user denied the sign-in, or the server ended it (cancelled, unknown code).
    Denied,
    /// The user did not approve within the time the layer gives them.
    TimedOut,
}

#[cfg(feature = "ocient")]
impl fmt::Display for DeviceGrantEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceGrantEnd::Denied => "denied",
            DeviceGrantEnd::TimedOut => "not approved in time",
        })
    }
}

/// A token service's own code for why it said no, as [`Error::Rejected`] carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Ocient's status object: its vendor code (`0` when it carried none) and SQLSTATE
    /// (empty when it carried none, `<invalid>` when it was not five letters or digits).
    #[cfg(feature = "ocient")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ocient")))]
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
            #[cfg(feature = "ocient")]
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

/// `: <reason>` when the server gave one, for a rejection's message.
fn reason_text(reason: &str) -> String {
    match reason {
        "" => String::new(),
        reason => format!(": {reason}"),
    }
}

/// The longest `reason` (and named code) an error repeats from the server.
pub(crate) const MAX_REASON: usize = 256;

/// Server text without control characters, so that a log line stays one line and a
/// terminal takes no orders from it: what [`Error::rejected`] does to a server's reason,
/// for a protocol that shows the server's text elsewhere (a device code's prompt, say).
///
/// ```
/// assert_eq!(tower_token_refresh::printable("bad\u{1b}[2J user\n"), "bad[2J user");
/// ```
pub fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// At most [`MAX_REASON`] characters of `text`.
fn shorten(text: &mut String) {
    if let Some((cut, _)) = text.char_indices().nth(MAX_REASON) {
        text.truncate(cut);
    }
}

/// A credentials provider's own error. Its `Display` is the provider's message; its `Debug`
/// shows nothing of it, so a logged status or event cannot leak what it says.
#[derive(Clone)]
pub struct ProviderError(Arc<dyn std::error::Error + Send + Sync>);

impl ProviderError {
    /// Wraps a credentials source's own error; see [`Error::provider`].
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ProviderError(Arc::from(error.into()))
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
    /// text (empty when it gave none), and the code's text is the server's too: control
    /// characters are dropped from both here. The layer then removes the tokens it traded
    /// in, should the server have echoed them, and cuts the text to 256 characters; remove
    /// any other secret you know (a password) before.
    pub fn rejected(
        exchange: Exchange,
        status: StatusCode,
        code: Option<ErrorCode>,
        reason: impl AsRef<str>,
    ) -> Self {
        let code = code.map(|code| match code {
            ErrorCode::Named(name) => ErrorCode::Named(printable(&name)),
            #[cfg(feature = "ocient")]
            ErrorCode::Ocient {
                vendor_code,
                sql_state,
            } => ErrorCode::Ocient {
                vendor_code,
                sql_state: printable(&sql_state),
            },
        });
        Error::Rejected {
            exchange,
            status,
            code,
            reason: printable(reason.as_ref()),
        }
    }

    /// A credentials source of the endpoint's own failed (a secret manager, a mounted file,
    /// an identity provider): [`Error::Provider`]. It is the endpoint's failure, not the
    /// server's: the layer retries it like an outage but never fails over for it.
    ///
    /// ```
    /// use tower_token_refresh::{Error, FailureKind};
    ///
    /// let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "/run/secrets/api");
    /// let error = Error::provider(missing);
    /// assert!(matches!(error, Error::Provider { .. }));
    /// assert_eq!(FailureKind::of(&error), FailureKind::Away);
    /// ```
    pub fn provider(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Provider {
            source: ProviderError::new(source),
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

    /// The token service's own code, for an [`Error::Rejected`] that carried one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Rejected { code, .. } => code.as_ref(),
            _ => None,
        }
    }

    /// Removes `secret` from any text the server sent back, in case it echoed a token.
    pub(crate) fn without_secret(mut self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        for text in self.server_text() {
            if text.contains(secret) {
                *text = text.replace(secret, "<redacted>");
            }
        }
        self
    }

    /// Cuts the text the server sent back to 256 characters: once the secrets are out, so
    /// that no cut leaves part of one behind.
    pub(crate) fn shortened(mut self) -> Self {
        for text in self.server_text() {
            shorten(text);
        }
        self
    }

    /// The text in this error that came from the server.
    fn server_text(&mut self) -> Vec<&mut String> {
        match self {
            Error::Rejected { reason, code, .. } => {
                let mut texts = vec![reason];
                match code {
                    Some(ErrorCode::Named(name)) => texts.push(name),
                    #[cfg(feature = "ocient")]
                    Some(ErrorCode::Ocient { sql_state, .. }) => texts.push(sql_state),
                    None => {}
                }
                texts
            }
            Error::InvalidResponse { reason, .. } => vec![reason],
            #[cfg(feature = "ocient")]
            Error::DeviceGrant { reason, .. } => vec![reason],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
