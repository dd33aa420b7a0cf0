//! The tracing listener: the transitions worth a log line, with no secret in any.

use tokio::time::Instant;

use super::transition::Transition;

/// Logs `transition`, if it is worth a line.
pub(super) fn hear(transition: &Transition<'_>) {
    match *transition {
        Transition::Installed {
            generation,
            obtained: Some(grant),
            ..
        } => {
            let lifetime_secs = grant.lifetime().as_secs_f64();
            tracing::debug!(generation, lifetime_secs, "new access token");
        }
        Transition::Failed {
            error,
            consecutive_failures,
            retry_in,
        } => {
            let retry_in_ms = retry_in.as_millis() as u64;
            let failures = consecutive_failures;
            tracing::warn!(%error, failures, retry_in_ms, "token request failed");
        }
        Transition::FailedOver { from, to, error } => {
            tracing::warn!(%from, %to, %error, "token request failed; trying another node");
        }
        Transition::Revoked { generation } => {
            tracing::debug!(generation, "token revoked by the server; replacing it");
        }
        Transition::Installed {
            generation,
            expires_at,
            obtained: None,
        } => {
            let expires_in_secs = expires_at.saturating_duration_since(Instant::now());
            let expires_in_secs = expires_in_secs.as_secs_f64();
            tracing::debug!(generation, expires_in_secs, "handed-in access token in use");
        }
        Transition::Exchanged {
            exchange,
            outcome,
            took,
        } => {
            let took_ms = took.as_millis() as u64;
            match outcome {
                Ok(()) => tracing::debug!(%exchange, took_ms, "token request answered"),
                Err(error) => tracing::debug!(%exchange, took_ms, %error, "token request ended"),
            }
        }
        Transition::TurnedAway { error } => {
            tracing::debug!(%error, "request turned away unsent");
        }
        Transition::Waited { took } => {
            let waited_ms = took.as_millis() as u64;
            tracing::debug!(waited_ms, "request waited for a token");
        }
    }
}
