//! Refreshing with no request: what the timer starts at the refresh point when the layer
//! was asked to `refresh_when_idle`, and the fetcher it keeps for that.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::flight::Fetch;
use super::token::OnDue;
use super::TokenState;

impl TokenState {
    /// Whether the timer still needs a fetcher to refresh an idle token with: one relaxed
    /// load, so requests can ask it every time.
    pub(crate) fn wants_fetcher(&self) -> bool {
        self.hot.wants_fetcher.load(Ordering::Relaxed)
    }

    /// Keeps `fetch` for refreshes that no request starts (`refresh_when_idle`).
    pub(crate) fn keep_fetcher(&self, fetch: Box<dyn Fetch>) {
        self.lock().idle_fetch = Some(fetch);
        self.hot.wants_fetcher.store(false, Ordering::Relaxed);
    }

    /// The refresh point came: starts a refresh as a request would, if it can fetch.
    fn refresh_idle(self: &Arc<Self>) {
        let fetch = self
            .lock()
            .idle_fetch
            .as_ref()
            .map(|fetch| fetch.clone_box());
        if let Some(fetch) = fetch {
            tracing::debug!("refreshing an idle token at its refresh point");
            self.refresh_in_background(|| fetch);
        }
    }

    /// Starts an idle refresh at `at`, on a task of its own holding the state weakly: after
    /// a flight that died while no token was usable, when no request may come to start one.
    pub(super) fn idle_retry_at(&self, at: Instant) -> Option<AbortHandle> {
        let me = Weak::clone(&self.me);
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let task = runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(state) = me.upgrade() {
                state.refresh_idle();
            }
        });
        Some(task.abort_handle())
    }

    /// What the timer does at the refresh point when no request comes.
    pub(super) fn idle_refresh(&self) -> Option<OnDue> {
        let me = self.refresh_when_idle.then(|| Weak::clone(&self.me))?;
        Some(Box::new(move || {
            if let Some(state) = me.upgrade() {
                state.refresh_idle();
            }
        }))
    }
}
