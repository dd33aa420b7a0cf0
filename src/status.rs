//! [`TokenStatus`]: where the token is, for a health check or a readiness probe; and
//! [`IdentitiesStatus`], where the tokens of a per-identity layer are.

use std::time::Duration;

use crate::error::Error;

/// Where the current token is on its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenPhase {
    /// No token yet: nothing has asked for one, or every attempt failed.
    Absent,
    /// Sent as it is.
    Fresh,
    /// Still sent, and a refresh is due.
    Due,
    /// Past its dead point, a safety margin before its expiry (or past the expiry itself):
    /// no longer sent, requests wait for a new one.
    Dead,
    /// Revoked: a request carrying it was answered 401. Requests wait for a new one, from a
    /// new login where the endpoint can log in.
    Revoked,
}

/// A snapshot of the token, from [`TokenRefresh::status`](crate::TokenRefresh::status) or
/// [`TokenRefreshLayer::status`](crate::TokenRefreshLayer::status).
///
/// Reading it sends nothing and never holds up a request. Its `Debug` shows no secret: the
/// token itself is not in it.
///
/// ```
/// # fn ready(status: tower_token_refresh::TokenStatus) -> (u16, String) {
/// if status.is_usable() {
///     (200, "ok".into())
/// } else {
///     let why = status.last_error.map_or("no token yet".into(), |e| e.to_string());
///     (503, why)
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenStatus {
    /// Counts the tokens held so far, from 1; `0` before the first.
    pub generation: u64,
    /// Where the current token is.
    pub phase: TokenPhase,
    /// How long the current token has left before it expires.
    pub expires_in: Option<Duration>,
    /// Whether a login or refresh is under way (or waiting out a backoff).
    pub refreshing: bool,
    /// Failed logins and refreshes in a row; `0` after a success.
    pub consecutive_failures: u32,
    /// Why the last login or refresh failed, until one succeeds.
    pub last_error: Option<Error>,
}

impl TokenStatus {
    /// Whether a request sent now goes out at once with the token.
    pub fn is_usable(&self) -> bool {
        matches!(self.phase, TokenPhase::Fresh | TokenPhase::Due)
    }
}

/// The identities a [`PerIdentityLayer`](crate::PerIdentityLayer) holds, for a health check:
/// from [`PerIdentity::status`](crate::PerIdentity::status) or
/// [`PerIdentityLayer::status`](crate::PerIdentityLayer::status). Reading it sends nothing.
///
/// One user's failing token need not make a whole service unready: which count matters, and
/// how much, is the application's call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentitiesStatus {
    /// Identities held.
    pub held: usize,
    /// Of them, those with a token to send now.
    pub usable: usize,
    /// Of them, those without one whose last attempt failed.
    pub failing: usize,
}

impl IdentitiesStatus {
    /// The counts of the held identities' `statuses`.
    pub(crate) fn of(statuses: impl IntoIterator<Item = TokenStatus>) -> Self {
        let mut counts = IdentitiesStatus {
            held: 0,
            usable: 0,
            failing: 0,
        };
        for status in statuses {
            counts.held += 1;
            if status.is_usable() {
                counts.usable += 1;
            } else if status.last_error.is_some() {
                counts.failing += 1;
            }
        }
        counts
    }
}
