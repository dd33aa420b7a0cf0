//! [`Transition`]: what happened to the token, the one thing every listener hears.

use std::time::Duration;

use http::Uri;
use tokio::time::Instant;

use crate::error::{Error, Exchange};
use crate::grant::Grant;

/// Something that happened to the token, as every listener hears it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transition<'a> {
    /// The token of `generation`, which expires at `expires_at`, is now the one sent:
    /// `obtained` by a login or refresh, or handed in by the user.
    Installed {
        generation: u64,
        expires_at: Instant,
        obtained: Option<&'a Grant>,
    },
    /// A login or refresh failed; the next attempt may start `retry_in` from now.
    Failed {
        error: &'a Error,
        consecutive_failures: u32,
        retry_in: Duration,
    },
    /// Token requests moved from one node to another after `error`.
    FailedOver {
        from: &'a Uri,
        to: &'a Uri,
        error: &'a Error,
    },
    /// A 401 revoked the token of `generation`.
    Revoked { generation: u64 },
    /// One login or refresh at one node ended, after `took`.
    Exchanged {
        exchange: Exchange,
        outcome: Result<(), &'a Error>,
        took: Duration,
    },
    /// A request was answered with `error`, unsent.
    TurnedAway { error: &'a Error },
    /// A request waited `took` for a token (for at least one attempt).
    Waited { took: Duration },
}
