//! When the token endpoint fails, on tokio's paused clock over the in-process mock:
//!
//! - `faults`: refreshes that fail, hang or lose their caller, and a hook that panics;
//! - `identities`: ten thousand users of a per-identity layer through an outage, and a
//!   provider that fails for one user;
//! - `hostile`: token answers that are malformed, oversized or absurd;
//! - `revocation`: a 401 revokes the token it answered, and `RetryUnauthorized` (feature
//!   `retry`) hides the revocation from callers;
//! - `recovery`: outages that outlive the token, `Retry-After`, `refresh_now`;
//! - `stress`: a seeded storm of all of the above.

#[path = "../common/mod.rs"]
mod common;

mod faults;
mod hostile;
mod identities;
mod recovery;
#[cfg(feature = "retry")]
mod revocation;
mod stress;
