//! Caches by number, so a response future can reach its cache without holding it.
//!
//! Holding an `Arc<Cache>` would cost every request a write to one reference count shared by
//! every core; a request needs its cache only when its answer is a 401, so it keeps the
//! cache's number and looks it up then.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};

use crate::cache::Cache;

/// A registered cache's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CacheId(u64);

fn caches() -> &'static RwLock<HashMap<CacheId, Weak<Cache>>> {
    static CACHES: OnceLock<RwLock<HashMap<CacheId, Weak<Cache>>>> = OnceLock::new();
    CACHES.get_or_init(RwLock::default)
}

/// A number for a cache about to be registered.
pub(crate) fn next_id() -> CacheId {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    CacheId(NEXT.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn register(id: CacheId, cache: &Arc<Cache>) {
    let mut caches = caches().write().unwrap_or_else(|e| e.into_inner());
    caches.insert(id, Arc::downgrade(cache));
}

pub(crate) fn unregister(id: CacheId) {
    let mut caches = caches().write().unwrap_or_else(|e| e.into_inner());
    caches.remove(&id);
}

/// The cache numbered `id`, while it lives.
pub(crate) fn find(id: CacheId) -> Option<Arc<Cache>> {
    let caches = caches().read().unwrap_or_else(|e| e.into_inner());
    caches.get(&id).and_then(Weak::upgrade)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::Timing;

    #[test]
    fn a_cache_is_found_while_it_lives_and_forgotten_after() {
        let timing = Timing {
            refresh_at: 0.5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        };
        let cache = Cache::new(timing, None, None);
        let id = cache.id();
        assert!(find(id).is_some_and(|found| Arc::ptr_eq(&found, &cache)));
        drop(cache);
        assert!(find(id).is_none());
        assert!(
            !caches().read().unwrap().contains_key(&id),
            "no entry left behind"
        );
    }
}
