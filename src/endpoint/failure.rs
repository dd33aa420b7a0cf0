//! What a failed login or refresh means for the next one: the one classification that
//! backoff, failover, idle refresh and the "down" cap all read.

use http::StatusCode;

use crate::error::{Error, Exchange};

/// What a failed login or refresh says about the next attempt, as the protocol judges it in
/// [`TokenEndpoint::classify`](super::TokenEndpoint::classify).
///
/// | kind | what the layer does next |
/// |---|---|
/// | [`Away`](Self::Away) | fails over to the endpoint's next node; retries after a backoff that stays short (`retry_backoff_while_down`) while no token is usable; with `refresh_when_idle`, keeps retrying with no request |
/// | [`Refused`](Self::Refused) | no failover; retries only after the full backoff, and only when a request or `refresh_now` asks: never on its own, so a wrong password is not repeated until the account locks |
/// | [`Revoked`](Self::Revoked) | a refresh so answered leads straight to a login, when the endpoint can log in; otherwise as `Refused` |
/// | [`Unusable`](Self::Unusable) | no failover; retries after the full backoff, with `refresh_when_idle` on its own too |
///
/// Whatever the kind, a valid token is still sent while the layer tries again, and callers
/// waiting for a token get the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The server could not be reached or could not answer (a transport error, a timeout, a
    /// 5xx, a 429), or a credentials provider failed: it may be back any moment.
    Away,
    /// The server refused the credentials (a wrong password, an unknown client, a denied
    /// sign-in), or the layer would not send them: asking again unasked would only count
    /// against the account.
    Refused,
    /// The server will not refresh the token (expired, revoked, unknown): only a new login
    /// can help.
    Revoked,
    /// The server answered with something the layer cannot use (a body that does not
    /// parse, a 404 from a gateway with no backend): it may change, but not within seconds.
    Unusable,
}

impl FailureKind {
    /// The classification that knows no protocol, which
    /// [`TokenEndpoint::classify`](super::TokenEndpoint::classify) uses unless told
    /// otherwise:
    ///
    /// - transport errors, timeouts, a 5xx or 429 answer, and a provider's failure: `Away`;
    /// - a 401 or 403: `Refused` for a login, `Revoked` for a refresh;
    /// - the layer's own refusals (no credentials, plain http) and a sign-in the user did not
    ///   approve: `Refused`;
    /// - any other answer: `Unusable`.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_token_refresh::{Error, Exchange, FailureKind};
    ///
    /// let refused = Error::rejected(Exchange::Login, StatusCode::UNAUTHORIZED, None, "");
    /// assert_eq!(FailureKind::of(&refused), FailureKind::Refused);
    /// let away = Error::rejected(Exchange::Refresh, StatusCode::BAD_GATEWAY, None, "");
    /// assert_eq!(FailureKind::of(&away), FailureKind::Away);
    /// ```
    pub fn of(error: &Error) -> FailureKind {
        match error {
            Error::Transport { .. } | Error::Timeout { .. } | Error::Provider { .. } => {
                FailureKind::Away
            }
            Error::Rejected {
                status, exchange, ..
            } => match *status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => match exchange {
                    Exchange::Login => FailureKind::Refused,
                    Exchange::Refresh => FailureKind::Revoked,
                },
                StatusCode::TOO_MANY_REQUESTS => FailureKind::Away,
                status if status.is_server_error() => FailureKind::Away,
                _ => FailureKind::Unusable,
            },
            Error::MissingCredentials | Error::InsecureTransport { .. } => FailureKind::Refused,
            // The user's answer: asking again at once would only prompt them again.
            #[cfg(feature = "ocient")]
            Error::DeviceGrant { .. } => FailureKind::Refused,
            Error::InvalidResponse { .. } | Error::NoRuntime | Error::NoIdentity => {
                FailureKind::Unusable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rejected(exchange: Exchange, status: u16) -> Error {
        let status = StatusCode::from_u16(status).unwrap();
        Error::rejected(exchange, status, None, "")
    }

    #[test]
    fn what_the_server_could_not_answer_is_away() {
        let timeout = Error::Timeout {
            exchange: Exchange::Login,
            after: Duration::from_secs(1),
        };
        let provider = Error::Provider {
            source: crate::ProviderError::new("vault sealed"),
        };
        for error in [
            Error::transport(Exchange::Login, "connection refused"),
            timeout,
            provider,
            rejected(Exchange::Login, 500),
            rejected(Exchange::Refresh, 503),
            rejected(Exchange::Login, 429),
        ] {
            assert_eq!(FailureKind::of(&error), FailureKind::Away, "{error}");
        }
    }

    #[test]
    fn a_401_or_403_refuses_a_login_and_revokes_a_refresh() {
        for status in [401, 403] {
            let login = rejected(Exchange::Login, status);
            assert_eq!(FailureKind::of(&login), FailureKind::Refused);
            let refresh = rejected(Exchange::Refresh, status);
            assert_eq!(FailureKind::of(&refresh), FailureKind::Revoked);
        }
    }

    #[test]
    fn the_layers_own_refusals_are_refusals() {
        let plain_http = Error::InsecureTransport {
            origin: "http://sql-node".into(),
        };
        for error in [Error::MissingCredentials, plain_http] {
            assert_eq!(FailureKind::of(&error), FailureKind::Refused, "{error}");
        }
        #[cfg(feature = "ocient")]
        for ended in [
            crate::DeviceGrantEnd::Denied,
            crate::DeviceGrantEnd::TimedOut,
        ] {
            let error = Error::device_grant(ended, "");
            assert_eq!(FailureKind::of(&error), FailureKind::Refused, "{error}");
        }
    }

    #[test]
    fn anything_else_is_unusable() {
        let garbage = Error::invalid_response(Exchange::Login, "not JSON");
        for error in [
            garbage,
            rejected(Exchange::Login, 400),
            rejected(Exchange::Refresh, 404),
            rejected(Exchange::Login, 200),
            Error::NoRuntime,
            Error::NoIdentity,
        ] {
            assert_eq!(FailureKind::of(&error), FailureKind::Unusable, "{error}");
        }
    }
}
