//! The SQL nodes of a cluster: token requests go to the one that last answered, and move to
//! the next when it fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::Uri;

#[derive(Clone, Debug)]
pub(super) struct Nodes {
    /// The primary first; never empty.
    list: Vec<Uri>,
    /// Which one token requests go to, shared by every clone.
    current: Arc<AtomicUsize>,
}

impl Nodes {
    pub(super) fn new(primary: Uri) -> Self {
        Nodes {
            list: vec![primary],
            current: Arc::default(),
        }
    }

    pub(super) fn add(&mut self, node: Uri) {
        self.list.push(node);
    }

    pub(super) fn primary(&self) -> &Uri {
        &self.list[0]
    }

    pub(super) fn others(&self) -> &[Uri] {
        &self.list[1..]
    }

    /// The node token requests go to now.
    pub(super) fn current(&self) -> &Uri {
        &self.list[self.current.load(Ordering::Relaxed) % self.list.len()]
    }

    /// Moves on from the current node; the nodes left and tried next, if there is another.
    pub(super) fn fail_over(&self) -> Option<(&Uri, &Uri)> {
        let count = self.list.len();
        if count < 2 {
            return None;
        }
        let from = self.current.load(Ordering::Relaxed) % count;
        let to = (from + 1) % count;
        // Two attempts failing at once move on by one node, not two.
        let _ = self
            .current
            .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed);
        Some((&self.list[from], &self.list[to]))
    }
}
