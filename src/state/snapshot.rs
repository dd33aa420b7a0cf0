//! The state as a health check sees it.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::token::Phase;
use super::TokenState;
use crate::status::{TokenPhase, TokenStatus};

impl TokenState {
    /// Where the token is now. Takes the cold lock briefly, which no request on the hot
    /// path ever waits for.
    pub(crate) fn status(&self) -> TokenStatus {
        let mut cold = self.lock();
        // A token handed in counts from when it was handed in, asked for or not.
        if tokio::runtime::Handle::try_current().is_ok() {
            self.install_initial(&mut cold);
        }
        let current = self.hot.current.load();
        let now = Instant::now();
        let (generation, phase, expires_in) = match current.as_deref() {
            None => (cold.generation, TokenPhase::None, None),
            Some(token) => {
                let phase = match token.phase_now(now) {
                    Phase::Fresh => TokenPhase::Fresh,
                    Phase::Due => TokenPhase::Due,
                    Phase::Dead => TokenPhase::Expired,
                    Phase::Revoked => TokenPhase::Revoked,
                };
                let left = token.expires_at.saturating_duration_since(now);
                (token.generation, phase, Some(left))
            }
        };
        TokenStatus {
            generation,
            phase,
            expires_in,
            refreshing: self.refreshing.load(Ordering::Acquire),
            consecutive_failures: cold.consecutive_failures,
            last_error: cold.last_error.clone(),
        }
    }
}
