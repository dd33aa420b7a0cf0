//! What every request reads: the current token, published without a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::time::Instant;

use super::token::{Phase, Token};

/// The hot path's answer.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A usable token; `due` asks the caller to make sure a refresh is under way.
    Send {
        header: HeaderValue,
        generation: u64,
        due: bool,
    },
    /// No usable token: [`TokenState::join`](super::TokenState::join) the attempt that
    /// gets one.
    Wait,
}

/// The current token, on a cache line of its own: it shares its line with nothing requests
/// write. Its neighbours, the state's reference counts before it and the cold state after
/// it, are written only off the fresh path, so a line (not two, for adjacent-line
/// prefetching) is enough, and a token among ten thousand is 200 bytes lighter.
#[repr(align(64))]
pub(super) struct Hot {
    current: ArcSwapOption<Token>,
    /// The generation of `current`, published after it: a service that holds this
    /// generation already need not touch `current` at all.
    generation: AtomicU64,
    /// With `refresh_when_idle`, until a request has handed over a fetcher for the timer.
    wants_fetcher: AtomicBool,
}

impl Hot {
    pub(super) fn new(wants_fetcher: bool) -> Self {
        Hot {
            current: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            wants_fetcher: AtomicBool::new(wants_fetcher),
        }
    }

    /// The hot path: no lock, no clock, no allocation.
    ///
    /// `seen` is the caller's copy of the current token: while no newer one has been
    /// published it is used as it is, which costs one atomic load.
    pub(super) fn lookup(&self, seen: &mut Option<Arc<Token>>) -> Lookup {
        let published = self.generation.load(Ordering::Acquire);
        if seen.as_ref().map(|t| t.generation) != Some(published) {
            *seen = self.current.load_full();
        }
        usable(seen.as_deref())
    }

    /// The hot path for a caller that keeps no copy of the token (a token among many, one
    /// per identity): one load of the shared one, still no lock, no clock, no allocation.
    pub(super) fn lookup_loaded(&self) -> Lookup {
        usable(self.current.load().as_deref())
    }

    /// The current token, for a caller without a copy of its own (a request that waited).
    ///
    /// Off the hot path, the clock is asked as well as the phase: a token whose timer runs
    /// late is not sent past its dead point.
    pub(super) fn lookup_now(&self) -> Lookup {
        let current = self.current.load();
        if let Some(token) = current.as_deref() {
            if Instant::now() >= token.dead_at {
                token.advance(Phase::Dead);
            }
        }
        usable(current.as_deref())
    }

    /// Whether there is a token to send, by the clock as well as the phase, as
    /// `lookup_now` judges: a late timer never makes a dead token look usable.
    pub(super) fn has_usable_token(&self) -> bool {
        let current = self.current.load();
        let now = Instant::now();
        current
            .as_deref()
            .is_some_and(|token| token.phase_now(now) <= Phase::Due)
    }

    /// The current token if it is still good at `now`, by the clock as well as the phase.
    pub(super) fn living(&self, now: Instant) -> Option<Arc<Token>> {
        self.current()
            .filter(|token| token.phase_now(now) <= Phase::Due)
    }

    pub(super) fn current(&self) -> Option<Arc<Token>> {
        self.current.load_full()
    }

    /// Makes `token` the one requests send.
    pub(super) fn publish(&self, token: Arc<Token>) {
        let generation = token.generation;
        self.current.store(Some(token));
        self.generation.store(generation, Ordering::Release);
    }

    /// The server no longer takes the token of `generation`: if it is still the current one, it
    /// is revoked (and the caller says so); an older one is long gone.
    pub(super) fn revoke(&self, generation: u64) -> bool {
        let current = self.current.load();
        current
            .as_deref()
            .is_some_and(|token| token.generation == generation && token.advance(Phase::Revoked))
    }

    /// Whether the current token was revoked.
    pub(super) fn is_revoked(&self) -> bool {
        let current = self.current.load();
        current
            .as_deref()
            .is_some_and(|token| token.phase() == Phase::Revoked)
    }

    /// Whether the timer still needs a fetcher to refresh an idle token with: one relaxed
    /// load, so requests can ask it every time.
    pub(super) fn wants_fetcher(&self) -> bool {
        self.wants_fetcher.load(Ordering::Relaxed)
    }

    pub(super) fn fetcher_kept(&self) {
        self.wants_fetcher.store(false, Ordering::Relaxed);
    }
}

fn usable(token: Option<&Token>) -> Lookup {
    match token {
        Some(token) if token.is_usable() => Lookup::Send {
            header: token.header.clone(),
            generation: token.generation,
            due: token.phase() == Phase::Due,
        },
        _ => Lookup::Wait,
    }
}
