//! The random identifiers the server hands out: access tokens, query ids
//! and device grant user codes.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The letters of a device grant's user code: no vowels, so no code spells
/// a word, and none that reads like a digit.
pub(crate) const USER_CODE_LETTERS: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// `mock.<generation>.<random>`: the generation says how many tokens came
/// before, the random part keeps another server's tokens from matching.
pub(crate) fn access_token(generation: u64) -> String {
    format!("mock.{generation}.{:016x}", random_u64(generation))
}

/// A token shaped like Ocient's JWTs: a header, a payload a client can read
/// its expiry from, and random bytes where the signature goes. Its `jti` is
/// the opaque token of the same generation, for the same uniqueness.
///
/// `exp` is Unix seconds, read from the wall clock since that is what JWTs
/// carry: on tokio's paused clock it does not move with the server's expiry.
pub(crate) fn jwt_shaped(
    generation: u64,
    subject: &str,
    database: &str,
    lifetime: Duration,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let exp = now.saturating_add(lifetime).as_secs().min(i64::MAX as u64);
    let claims = serde_json::json!({
        "sub": subject,
        "db": database,
        "iat": now.as_secs(),
        "exp": exp,
        "jti": access_token(generation),
    });
    let signature: Vec<u8> = (0..4)
        .flat_map(|salt| random_u64(salt).to_le_bytes())
        .collect();
    [
        br#"{"alg":"HS256","typ":"JWT"}"#.as_slice(),
        claims.to_string().as_bytes(),
        &signature,
    ]
    .map(|part| URL_SAFE_NO_PAD.encode(part))
    .join(".")
}

/// Eight letters from [`USER_CODE_LETTERS`], as the OpenAPI example shows.
pub(crate) fn user_code() -> String {
    let mut bits = random_u64(0);
    (0..8)
        .map(|_| {
            let letter = USER_CODE_LETTERS[(bits % 20) as usize];
            bits /= 20;
            char::from(letter)
        })
        .collect()
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
