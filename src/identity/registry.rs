//! The tokens of a [`PerIdentityLayer`](super::PerIdentityLayer): one per identity, in a
//! concurrent map that requests read without a lock, bounded by a cap and an idle time.
//!
//! A request finds its identity's member with one read of the map (papaya's: lock-free
//! reads, epoch-based reclamation) and writes its stamp only when the coarse clock moved.
//! Everything else is the cold path, under one mutex: a new identity (made outside it,
//! since the user's function makes its endpoint), the least recently used one dropped for
//! the cap, the idle ones dropped by a sweeper task that also moves the clock.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use papaya::{Guard, HashMap, LocalGuard};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::identify::Identify;
use super::recency::Recency;
use super::{IdentityHook, MakeEndpoint};
use crate::authorize::Authorizer;
use crate::event::Hook;
use crate::origin::Origin;
use crate::record::Record;
use crate::settings::{Fleet, Settings, Shared};
use crate::state::TokenState;
use crate::status::TokenStatus;

/// The clock's tick is at most this long: the idle time is kept to within about a tick, and
/// the least recently used identity is told apart from others used in the same tick only by
/// when it came.
const LONGEST_TICK: Duration = Duration::from_secs(1);
const SHORTEST_TICK: Duration = Duration::from_millis(10);

/// How many identities, and for how long idle.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_identities: usize,
    pub(super) idle_timeout: Duration,
    pub(super) token_requests: usize,
}

/// One identity's token, held in the map itself: a request reads its entry and nothing
/// else of the map's.
pub(crate) struct Member {
    shared: Shared,
    /// The tick of the request that last used it.
    last_used: AtomicU64,
}

impl Member {
    /// This token, for a request sent from `place`.
    pub(crate) fn authorizer(&self, place: usize) -> Authorizer<'_> {
        Authorizer {
            state: &self.shared.state,
            config: &self.shared.config,
            seen: None,
            place,
        }
    }

    pub(crate) fn status(&self) -> TokenStatus {
        self.shared.state.status()
    }

    /// A request used it at `tick`: written only when the tick moved, so the requests of
    /// one identity on many cores mostly read the line they share.
    fn touch(&self, tick: u64) {
        if self.last_used.load(Ordering::Relaxed) != tick {
            self.last_used.store(tick, Ordering::Relaxed);
        }
    }
}

/// What the cold path keeps, under the mutex.
struct Books<I> {
    recency: Recency<I>,
    held: usize,
    /// Whether a sweeper task runs; it ends when nothing is held.
    sweeping: bool,
}

/// The tokens of one layer, by identity.
pub(crate) struct Registry<I> {
    members: HashMap<I, Member>,
    make: MakeEndpoint<I>,
    identify: Identify<I>,
    settings: Settings,
    hook: Option<IdentityHook<I>>,
    /// The layer's metrics, and the record of every token when there is no hook.
    record: Arc<Record>,
    admission: Arc<Semaphore>,
    limits: Limits,
    /// The coarse clock: ticks since `epoch`, moved by the sweeper.
    tick: AtomicU64,
    tick_length: Duration,
    epoch: Instant,
    books: Mutex<Books<I>>,
    /// The origins of the last token made, for the next to share if they are the same.
    origins: Mutex<Option<Arc<[Origin]>>>,
    me: Weak<Registry<I>>,
}

impl<I> Registry<I>
where
    I: Hash + Eq + Clone + Send + Sync + 'static,
{
    pub(super) fn new(
        make: MakeEndpoint<I>,
        settings: Settings,
        hook: Option<IdentityHook<I>>,
        name: &str,
        limits: Limits,
        identify: Identify<I>,
    ) -> Arc<Self> {
        let tick_length = (limits.idle_timeout / 8).clamp(SHORTEST_TICK, LONGEST_TICK);
        Arc::new_cyclic(|me| Registry {
            members: HashMap::new(),
            make,
            identify,
            settings,
            hook,
            record: Arc::new(Record::per_identity(name)),
            admission: Arc::new(Semaphore::new(limits.token_requests)),
            limits,
            tick: AtomicU64::new(0),
            tick_length,
            epoch: Instant::now(),
            books: Mutex::new(Books {
                recency: Recency::default(),
                held: 0,
                sweeping: false,
            }),
            origins: Mutex::default(),
            me: Weak::clone(me),
        })
    }

    /// A guard for [`find`](Self::find): the members it finds live at least as long.
    pub(crate) fn guard(&self) -> LocalGuard<'_> {
        self.members.guard()
    }

    /// The hot path: `identity`'s member, if it is held, stamped as used now.
    pub(crate) fn find<'g>(&self, identity: &I, guard: &'g impl Guard) -> Option<&'g Member> {
        let member = self.members.get(identity, guard)?;
        member.touch(self.tick.load(Ordering::Relaxed));
        Some(member)
    }

    /// `identity`'s member, held from now if it was not: the least recently used one is
    /// dropped if that passes the cap.
    pub(crate) fn hold<'g>(&self, identity: I, guard: &'g impl Guard) -> &'g Member {
        if let Some(held) = self.find(&identity, guard) {
            return held;
        }
        // Made unlocked: the user's function and its endpoint may take their time.
        let fresh = self.member_for(&identity);
        let mut books = self.books();
        if let Some(held) = self.members.get(&identity, guard) {
            // Another request held it meanwhile: ours never ran anything.
            return held;
        }
        let tick = self.tick.load(Ordering::Relaxed);
        let member = Member {
            shared: fresh,
            last_used: AtomicU64::new(tick),
        };
        self.members.insert(identity.clone(), member, guard);
        books.held += 1;
        // The others only: one used in this very tick could otherwise rank behind it.
        let mut dropped = Vec::new();
        while books.held > self.limits.max_identities {
            match books.recency.least_recent(self.stamp_of(guard)) {
                Some(least) => dropped.extend(self.drop_member(&mut books, least, guard)),
                None => break,
            }
        }
        books.recency.arrived(identity.clone(), tick);
        self.sweep_from_now_on(&mut books);
        let held = books.held;
        drop(books);
        self.retire(held, dropped);
        match self.members.get(&identity, guard) {
            Some(member) => member,
            None => unreachable!("the newest identity is never dropped for the cap"),
        }
    }

    /// Whose tokens are held, and each one's status.
    pub(crate) fn statuses(&self) -> Vec<TokenStatus> {
        let members = self.members.pin();
        members.values().map(|member| member.status()).collect()
    }

    /// The status of `identity`'s token, if it is held. Does not count as a use.
    pub(crate) fn status_of(&self, identity: &I) -> Option<TokenStatus> {
        let members = self.members.pin();
        members.get(identity).map(|member| member.status())
    }

    /// How a request says whose it is.
    pub(crate) fn identify(&self) -> &Identify<I> {
        &self.identify
    }

    /// The layer's record, for what concerns no one identity.
    pub(crate) fn record(&self) -> &Record {
        &self.record
    }

    /// A new token for `identity`, with the layer's settings.
    fn member_for(&self, identity: &I) -> Shared {
        let endpoint = (self.make)(identity);
        let record = match &self.hook {
            None => Arc::clone(&self.record),
            Some(hook) => Arc::new(
                self.record
                    .for_identity(Some(identity_hook(hook, identity))),
            ),
        };
        let mut known = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        let fleet = Fleet {
            record,
            revokers: 1,
            admission: Some(&self.admission),
            origins: known.as_ref(),
        };
        let shared = self.settings.share(endpoint, fleet);
        *known = Some(Arc::clone(shared.config.origins()));
        shared
    }

    /// What the recency asks: when `identity` was last used, if it is held.
    fn stamp_of<'g>(&'g self, guard: &'g impl Guard) -> impl Fn(&I) -> Option<u64> + 'g {
        move |identity| {
            let member = self.members.get(identity, guard)?;
            Some(member.last_used.load(Ordering::Relaxed))
        }
    }

    /// Takes `identity` out of the map; its token, to retire once unlocked.
    fn drop_member(
        &self,
        books: &mut Books<I>,
        identity: I,
        guard: &impl Guard,
    ) -> Option<Arc<TokenState>> {
        let held = self.members.get(&identity, guard)?;
        let state = Arc::clone(&held.shared.state);
        self.members.remove(&identity, guard);
        books.held -= 1;
        Some(state)
    }

    /// Stops what ran for the `dropped` tokens, and tells the metrics.
    fn retire(&self, held: usize, dropped: Vec<Arc<TokenState>>) {
        for state in &dropped {
            state.retire();
        }
        self.record.identities(held, dropped.len());
    }

    fn books(&self) -> MutexGuard<'_, Books<I>> {
        // Every step leaves the books consistent: a poisoned lock is usable.
        self.books
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Starts the sweeper if it is not running, and a runtime is there to run it.
    fn sweep_from_now_on(&self, books: &mut Books<I>) {
        if books.sweeping {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        books.sweeping = true;
        let (me, tick_length) = (Weak::clone(&self.me), self.tick_length);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(tick_length).await;
                let Some(registry) = me.upgrade() else { return };
                if !registry.sweep() {
                    return;
                }
            }
        });
    }

    /// Moves the clock and drops the identities idle for longer than the idle timeout;
    /// `false` once nothing is held, when the sweeper ends.
    fn sweep(&self) -> bool {
        let now = (self.epoch.elapsed().as_nanos() / self.tick_length.as_nanos()) as u64;
        self.tick.store(now, Ordering::Relaxed);
        let idle_ticks = self.limits.idle_timeout.as_nanos() / self.tick_length.as_nanos();
        let since = now.saturating_sub(idle_ticks as u64);
        let guard = self.members.guard();
        let mut books = self.books();
        let mut dropped = Vec::new();
        while let Some(idle) = books.recency.idle_before(since, self.stamp_of(&guard)) {
            dropped.extend(self.drop_member(&mut books, idle, &guard));
        }
        books.sweeping = books.held > 0;
        let (held, sweeping) = (books.held, books.sweeping);
        drop(books);
        if !dropped.is_empty() {
            self.retire(held, dropped);
        }
        sweeping
    }
}

/// The user's hook, told which identity's token an event is about.
fn identity_hook<I>(hook: &IdentityHook<I>, identity: &I) -> Hook
where
    I: Clone + Send + Sync + 'static,
{
    let (hook, identity) = (Arc::clone(hook), identity.clone());
    Arc::new(move |event| hook(&identity, event))
}

#[cfg(test)]
mod tests {
    use http::Uri;

    use super::*;
    use crate::endpoint::{TokenClient, TokenEndpoint};
    use crate::error::Error;
    use crate::grant::Grant;

    /// An endpoint nobody asks for a token: these tests hold identities and drop them.
    #[derive(Debug)]
    struct Idle(Uri);

    impl TokenEndpoint for Idle {
        fn origin(&self) -> &Uri {
            &self.0
        }
        async fn refresh(&self, _: &mut TokenClient<'_>, _: &Grant) -> Result<Grant, Error> {
            unreachable!("never asked")
        }
    }

    const IDLE: Duration = Duration::from_secs(80);

    fn registry(max_identities: usize) -> Arc<Registry<&'static str>> {
        let make: MakeEndpoint<&'static str> =
            Arc::new(|_| Arc::new(Idle(Uri::from_static("https://sql-node"))));
        let limits = Limits {
            max_identities,
            idle_timeout: IDLE,
            token_requests: 1,
        };
        let identify = Identify {
            with: None,
            default: None,
        };
        let settings = Settings::default();
        Registry::new(make, settings, None, "test", limits, identify)
    }

    fn held(registry: &Registry<&'static str>) -> Vec<&'static str> {
        let members = registry.members.pin();
        let mut held: Vec<_> = members.keys().copied().collect();
        held.sort_unstable();
        held
    }

    /// A request for `identity` found it held.
    fn used(registry: &Registry<&'static str>, identity: &'static str) {
        let guard = registry.guard();
        assert!(registry.find(&identity, &guard).is_some(), "{identity}");
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_cap_the_least_recently_used_goes() {
        let registry = registry(2);
        registry.hold("a", &registry.guard());
        registry.hold("b", &registry.guard());
        // A tick later "a" is used again: "b" is now the least recently used.
        tokio::time::sleep(registry.tick_length * 2).await;
        used(&registry, "a");
        registry.hold("c", &registry.guard());
        assert_eq!(held(&registry), ["a", "c"]);
        // Ticks later "c" is used, and not "a".
        tokio::time::sleep(registry.tick_length * 2).await;
        used(&registry, "c");
        registry.hold("d", &registry.guard());
        assert_eq!(held(&registry), ["c", "d"], "a was used before c");
        assert_eq!(registry.books().held, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_identity_held_last_stays_even_behind_one_used_in_the_same_tick() {
        let registry = registry(1);
        registry.hold("a", &registry.guard());
        tokio::time::sleep(registry.tick_length * 2).await;
        used(&registry, "a");
        registry.hold("b", &registry.guard());
        assert_eq!(held(&registry), ["b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_identity_held_twice_is_one_member() {
        let registry = registry(2);
        let guard = registry.guard();
        let first = registry.hold("a", &guard);
        let again = registry.hold("a", &guard);
        assert!(std::ptr::eq(first, again));
        assert_eq!(registry.books().held, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_drops_only_the_identities_idle_past_the_timeout_then_ends() {
        let registry = registry(10);
        registry.hold("a", &registry.guard());
        registry.hold("b", &registry.guard());
        tokio::time::sleep(IDLE / 2).await;
        used(&registry, "a");
        // Past the idle timeout for "b", not for "a" (used half-way).
        tokio::time::sleep(IDLE / 2 + IDLE / 4).await;
        assert_eq!(held(&registry), ["a"]);
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert_eq!(tasks, 1, "the sweeper runs while an identity is held");
        tokio::time::sleep(IDLE).await;
        assert!(held(&registry).is_empty());
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert_eq!(tasks, 0, "and ends with the last one");
        // Holding again starts it again.
        registry.hold("c", &registry.guard());
        tokio::time::sleep(IDLE * 2).await;
        assert!(held(&registry).is_empty());
    }
}
