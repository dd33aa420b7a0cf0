//! What a [`TokenRefreshLayer`](crate::TokenRefreshLayer) is configured with, and the one
//! place that turns it into the state and configuration its services share.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::endpoint::erased::DynEndpoint;
use crate::event::Hook;
use crate::origin::Origin;
use crate::record::Record;
use crate::revoker::Revokers;
use crate::state::{Timing, TokenState};

/// The layer's settings, as its builder methods leave them.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) endpoint: Arc<dyn DynEndpoint>,
    pub(crate) timing: Timing,
    pub(crate) refresh_timeout: Duration,
    pub(crate) extra_origins: Vec<Origin>,
    pub(crate) hook: Option<Hook>,
    pub(crate) refresh_when_idle: bool,
    /// The `layer` label of its metrics; the endpoint's host when unset.
    pub(crate) name: Option<String>,
}

/// What every service made with one set of settings shares.
pub(crate) struct Shared {
    pub(crate) state: Arc<TokenState>,
    pub(crate) config: Arc<Config>,
}

impl Settings {
    /// A new token state and configuration for these settings.
    pub(crate) fn share(&self) -> Shared {
        let initial = self.endpoint.initial_grant();
        let record = Arc::new(Record::new(&self.name(), self.hook.clone()));
        let state = TokenState::new(
            self.timing,
            initial,
            self.refresh_when_idle,
            Arc::clone(&record),
        );
        let config = Config::new(
            Arc::clone(&self.endpoint),
            &self.extra_origins,
            self.refresh_timeout,
            Revokers::new(&state),
            record,
        );
        Shared {
            state,
            config: Arc::new(config),
        }
    }

    /// The name given, else the host of the endpoint's origin (never its user or path).
    pub(crate) fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let host = self.endpoint.origin().host().unwrap_or("token_refresh");
            host.to_owned()
        })
    }
}
