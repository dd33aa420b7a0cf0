//! How the callers waiting on an attempt learn that it ended: each end is counted and kept
//! in the cold state, under its lock, and told through one [`Notify`]; a caller remembers
//! the count when it joined, and waits for it to move.
//!
//! (A `tokio::sync::watch` channel did this before, at some 400 bytes a token: a weight
//! that a layer keeping a token per identity pays ten thousand times.)

use std::sync::Arc;

use tokio::sync::Notify;

use super::TokenState;
use crate::error::Error;

/// How an attempt ended, for the callers that waited on it.
#[derive(Debug, Clone)]
pub(crate) enum Settled {
    Installed,
    Failed(Error),
}

/// The ends of attempts so far: in the cold state, under its lock.
#[derive(Debug, Default)]
pub(super) struct Ends {
    count: u64,
    last: Option<Settled>,
}

impl Ends {
    /// An attempt ended so; tell the waiters with [`told`] once the lock is released.
    pub(super) fn record(&mut self, settled: Settled) {
        self.count += 1;
        self.last = Some(settled);
    }

    /// The last end, if one came since the `seen`-th.
    fn since(&self, seen: u64) -> Option<Result<(), Error>> {
        if self.count == seen {
            return None;
        }
        Some(match &self.last {
            Some(Settled::Failed(error)) => Err(error.clone()),
            _ => Ok(()),
        })
    }
}

/// Wakes every caller waiting on an attempt: call it after [`Ends::record`], once the lock
/// is released.
pub(super) fn told(ended: &Notify) {
    ended.notify_waiters();
}

/// The end of the attempt a caller joined.
#[derive(Debug)]
pub(crate) struct Settlement {
    state: Arc<TokenState>,
    seen: u64,
}

impl Settlement {
    /// The next end after those in `ends`: made under the lock that guards them, so no
    /// end can slip between the caller's look and its wait.
    pub(super) fn after(state: &Arc<TokenState>, ends: &Ends) -> Self {
        Settlement {
            state: Arc::clone(state),
            seen: ends.count,
        }
    }

    /// Waits for the attempt to end; `Ok` means a new token may be there.
    pub(crate) async fn wait(self) -> Result<(), Error> {
        loop {
            let ended = self.state.attempt_ended.notified();
            tokio::pin!(ended);
            // Listening before looking: an end recorded after the look is still heard.
            ended.as_mut().enable();
            if let Some(outcome) = self.state.lock().ends().since(self.seen) {
                return outcome;
            }
            ended.await;
        }
    }
}
