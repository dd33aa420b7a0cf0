//! What a layer is configured with, for each token it keeps, and the one place that turns
//! it into the state and configuration of a token: [`TokenRefreshLayer`] keeps one token
//! with these settings, [`PerIdentityLayer`] one per identity.
//!
//! [`TokenRefreshLayer`]: crate::TokenRefreshLayer
//! [`PerIdentityLayer`]: crate::PerIdentityLayer

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::endpoint::erased::DynEndpoint;
use crate::grant::MAX_LIFETIME;
use crate::origin::Origin;
use crate::record::Record;
use crate::revoker::Revokers;
use crate::state::{Timing, TokenState};

/// How long a login or refresh may take, answer body included, unless set otherwise.
const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(30);
/// Refresh once half the lifetime is left (what Ocient advises, and a common default).
const DEFAULT_REFRESH_AT: f64 = 0.5;
const DEFAULT_FIRST_BACKOFF: Duration = Duration::from_secs(1);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// While down after an outage: at most ~2.5 s of ours after the server's return, and about
/// 30 attempts a minute, one at a time, while it is away.
const DEFAULT_MAX_BACKOFF_WHILE_DOWN: Duration = Duration::from_secs(2);
/// The shortest backoff and refresh timeout: below that they would only mean a storm.
const MIN_WAIT: Duration = Duration::from_millis(10);

/// The settings of each token a layer keeps, as its builder methods leave them.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) timing: Timing,
    pub(crate) refresh_timeout: Duration,
    pub(crate) extra_origins: Vec<Origin>,
    pub(crate) refresh_when_idle: bool,
}

/// What every service made with one set of settings shares, for one token.
pub(crate) struct Shared {
    pub(crate) state: Arc<TokenState>,
    pub(crate) config: Arc<Config>,
}

/// What the tokens of one layer share besides their settings.
pub(crate) struct Fleet<'a> {
    /// Where the token's transitions go.
    pub(crate) record: Arc<Record>,
    /// How many revokers the token gets: many for a token every request on every core
    /// sends, one for a token among thousands.
    pub(crate) revokers: usize,
    /// Bounds the token requests in flight across the layer's tokens, if anything does.
    pub(crate) admission: Option<&'a Arc<Semaphore>>,
    /// The origins of the layer's last token, shared if this one's are the same.
    pub(crate) origins: Option<&'a Arc<[Origin]>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timing: Timing {
                refresh_at: DEFAULT_REFRESH_AT,
                first_backoff: DEFAULT_FIRST_BACKOFF,
                max_backoff: DEFAULT_MAX_BACKOFF,
                max_backoff_while_down: DEFAULT_MAX_BACKOFF_WHILE_DOWN,
            },
            refresh_timeout: DEFAULT_REFRESH_TIMEOUT,
            extra_origins: Vec::new(),
            refresh_when_idle: false,
        }
    }
}

impl Settings {
    /// See [`TokenRefreshLayer::refresh_at`](crate::TokenRefreshLayer::refresh_at).
    pub(crate) fn refresh_at(&mut self, remaining_fraction: f64) {
        self.timing.refresh_at = if remaining_fraction.is_nan() {
            DEFAULT_REFRESH_AT
        } else {
            remaining_fraction.clamp(0.0, 0.9)
        };
    }

    /// See [`TokenRefreshLayer::refresh_timeout`](crate::TokenRefreshLayer::refresh_timeout).
    pub(crate) fn refresh_timeout(&mut self, timeout: Duration) {
        // No answer arrives in no time: zero would fail every attempt.
        self.refresh_timeout = timeout.max(MIN_WAIT);
    }

    /// See [`TokenRefreshLayer::retry_backoff`](crate::TokenRefreshLayer::retry_backoff).
    pub(crate) fn retry_backoff(&mut self, first: Duration, max: Duration) {
        // Past the longest lifetime a backoff means nothing, and would overflow an `Instant`;
        // a zero backoff would retry back to back against a failing server.
        let first = first.max(MIN_WAIT);
        self.timing.first_backoff = first.min(MAX_LIFETIME);
        self.timing.max_backoff = max.max(first).min(MAX_LIFETIME);
    }

    /// See [`TokenRefreshLayer::retry_backoff_while_down`](crate::TokenRefreshLayer::retry_backoff_while_down).
    pub(crate) fn retry_backoff_while_down(&mut self, max: Duration) {
        self.timing.max_backoff_while_down = max.clamp(MIN_WAIT, MAX_LIFETIME);
    }

    /// See [`TokenRefreshLayer::allow_origin`](crate::TokenRefreshLayer::allow_origin).
    pub(crate) fn allow_origin(&mut self, uri: &Uri) {
        self.extra_origins.extend(Origin::of(uri));
    }

    /// A new token state and configuration for `endpoint`, with these settings.
    pub(crate) fn share(&self, endpoint: Arc<dyn DynEndpoint>, fleet: Fleet<'_>) -> Shared {
        let initial = endpoint.initial_grant();
        let state = TokenState::new(
            self.timing,
            initial,
            self.refresh_when_idle,
            Arc::clone(&fleet.record),
        );
        let config = Config::new(
            endpoint,
            &self.extra_origins,
            self.refresh_timeout,
            Revokers::new(&state, fleet.revokers),
            fleet.record,
        )
        .admitted_by(fleet.admission.cloned())
        .sharing_origins(fleet.origins);
        Shared {
            state,
            config: Arc::new(config),
        }
    }
}

/// The `layer` label of an endpoint's metrics when the user named none: the host of its
/// origin (never its user or path).
pub(crate) fn default_name(endpoint: &dyn DynEndpoint) -> String {
    let host = endpoint.origin().host().unwrap_or("token_refresh");
    host.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn each_setting_is_kept_within_what_makes_sense() {
        let mut settings = Settings::default();
        settings.refresh_at(f64::NAN);
        assert_eq!(settings.timing.refresh_at, DEFAULT_REFRESH_AT);
        settings.refresh_at(2.0);
        assert_eq!(settings.timing.refresh_at, 0.9);

        settings.refresh_timeout(Duration::ZERO);
        assert_eq!(settings.refresh_timeout, MIN_WAIT);

        settings.retry_backoff(Duration::ZERO, 3 * SECOND);
        assert_eq!(settings.timing.first_backoff, MIN_WAIT);
        assert_eq!(settings.timing.max_backoff, 3 * SECOND);
        settings.retry_backoff(5 * SECOND, SECOND);
        assert_eq!(
            settings.timing.max_backoff,
            5 * SECOND,
            "never below the first"
        );

        settings.retry_backoff_while_down(10 * SECOND);
        assert_eq!(settings.timing.max_backoff_while_down, 10 * SECOND);
        settings.retry_backoff_while_down(Duration::ZERO);
        assert_eq!(settings.timing.max_backoff_while_down, MIN_WAIT);
        settings.retry_backoff_while_down(Duration::MAX);
        assert_eq!(settings.timing.max_backoff_while_down, MAX_LIFETIME);
    }
}
