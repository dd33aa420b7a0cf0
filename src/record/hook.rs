//! The hook listener: the transitions a [`TokenEvent`] names, told to the user's hook.

use super::transition::Transition;
use crate::event::{Hook, TokenEvent};

/// Tells `hook` of `transition`, if it is one the hook hears of.
pub(super) fn hear(hook: Option<&Hook>, transition: &Transition<'_>) {
    let Some(hook) = hook else {
        return;
    };
    let event = match *transition {
        Transition::Installed {
            generation,
            obtained: Some(grant),
            ..
        } => TokenEvent::Obtained { generation, grant },
        Transition::Failed {
            error,
            consecutive_failures,
            retry_in,
        } => TokenEvent::Failed {
            error,
            consecutive_failures,
            retry_in,
        },
        Transition::FailedOver { from, to, error } => TokenEvent::FailedOver { from, to, error },
        Transition::Revoked { generation } => TokenEvent::Revoked { generation },
        Transition::Installed { obtained: None, .. }
        | Transition::Exchanged { .. }
        | Transition::TurnedAway { .. }
        | Transition::Waited { .. } => return,
    };
    // A panicking hook must not take a flight or a response down with it.
    let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&event)));
    if called.is_err() {
        tracing::warn!("the on_token hook panicked");
    }
}
