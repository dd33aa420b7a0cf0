//! [`TokenEvent`]: what the layer reports to an [`on_token`](crate::TokenRefreshLayer::on_token) hook.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::grant::Grant;

/// Something that happened to the token: for metrics, alerts or persisting tokens.
///
/// Its `Debug` shows no secret; [`Grant::access_token`] gives the token itself to a hook that
/// must store it.
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenEvent<'a> {
    /// A login or refresh produced a new token.
    Obtained {
        /// Counts the tokens this layer has held, from 1.
        generation: u64,
        /// The new token and its lifetime.
        grant: &'a Grant,
    },
    /// A login or refresh failed.
    Failed {
        /// Why.
        error: &'a Error,
        /// Failures in a row, this one included.
        consecutive_failures: u32,
        /// When the next attempt may start.
        retry_in: Duration,
    },
    /// A token request to one node failed, and the next ones go to another node.
    FailedOver {
        /// The node that failed, as configured but without any `user:password@`.
        from: &'a http::Uri,
        /// The node tried next.
        to: &'a http::Uri,
        /// How it failed.
        error: &'a Error,
    },
    /// A request carrying this token was answered 401: the token is revoked, and will be
    /// replaced.
    Revoked {
        /// The revoked token's generation.
        generation: u64,
    },
}

/// The user's hook, shared by every clone of a service.
pub(crate) type Hook = Arc<dyn Fn(&TokenEvent<'_>) + Send + Sync>;
