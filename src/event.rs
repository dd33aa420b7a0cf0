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

/// Logs a failed login or refresh and tells the user's hook.
pub(crate) fn failed(
    hook: Option<&Hook>,
    error: &Error,
    consecutive_failures: u32,
    retry_in: Duration,
) {
    let retry_in_ms = retry_in.as_millis() as u64;
    tracing::warn!(%error, failures = consecutive_failures, retry_in_ms, "token request failed");
    let event = TokenEvent::Failed {
        error,
        consecutive_failures,
        retry_in,
    };
    tell(hook, &event);
}

/// Tells the user's hook, if there is one. Never call it with a lock held: the hook may
/// use the layer.
pub(crate) fn tell(hook: Option<&Hook>, event: &TokenEvent<'_>) {
    if let Some(hook) = hook {
        // A panicking hook must not take a flight or a response down with it.
        let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(event)));
        if called.is_err() {
            tracing::warn!("the on_token hook panicked");
        }
    }
}
