//! The random identifiers the server hands out: access tokens and query ids.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// `mock.<generation>.<random>`: the generation says how many tokens came
/// before, the random part keeps another server's tokens from matching.
pub(crate) fn access_token(generation: u64) -> String {
    format!("mock.{generation}.{:016x}", random_u64(generation))
}

/// A version 4 UUID, as Ocient gives each query.
pub(crate) fn query_id() -> String {
    let (a, b) = (random_u64(1), random_u64(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff,
    )
}

fn random_u64(salt: u64) -> u64 {
    // Every `RandomState` has fresh keys, which is all the randomness needed here.
    RandomState::new().hash_one(salt)
}
