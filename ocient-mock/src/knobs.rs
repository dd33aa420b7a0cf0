//! The settings a test turns on a [`MockOcient`](crate::mock::MockOcient):
//! token lifetimes, latency, how failures are answered and what shape an
//! SSO exchange's answer takes.

use std::time::Duration;

use crate::sso::SsoAnswer;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Knobs {
    pub(crate) token_lifetime: Duration,
    pub(crate) refresh_lifetime: Duration,
    pub(crate) latency: Duration,
    pub(crate) errors_in_band: bool,
    pub(crate) refresh_expired_tokens: bool,
    pub(crate) old_token_survives_refresh: bool,
    pub(crate) sso_answer: SsoAnswer,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(3600),
            refresh_lifetime: Duration::from_secs(24 * 3600),
            latency: Duration::ZERO,
            errors_in_band: false,
            refresh_expired_tokens: false,
            old_token_survives_refresh: true,
            sso_answer: SsoAnswer::LikeLogin,
        }
    }
}
