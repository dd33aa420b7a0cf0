//! Fuzzes `OcientAuth::read_answer`, the parser of `/v1/login`, `/v1/token_refresh` and
//! `/v1/sso_token` answers (the last with its fallbacks: `id_token`, the JWT's `exp`).
//!
//! Input layout:
//!
//! | bytes  | meaning                                                                  |
//! |--------|--------------------------------------------------------------------------|
//! | 0      | bit 0: 0 = `Exchange::Login`, 1 = `Exchange::Refresh`; bit 1: 1 = the    |
//! |        | endpoint signs in by token exchange (`sso_token_from`), 0 = by password  |
//! | 1..3   | HTTP status, big-endian u16; taken as is when in 100..=599, otherwise    |
//! |        | mapped to `100 + n % 500` (so `00 c8` = 200, `01 91` = 401)              |
//! | 3..    | the response body                                                        |
//!
//! Inputs shorter than 3 bytes are ignored.
//!
//! Invariants checked (besides "never panics"):
//! - `Ok(grant)`: the access token is non-empty visible ASCII (0x21..=0x7E), and
//!   `1 s <= grant.lifetime() <= 30 days` (the clamp `Grant::from_expires_in` applies);
//! - `Err(e)`: neither `Display` nor `Debug` of `e` contains the password;
//! - a non-2xx status always gives `Err`.
//!
//! The body is also fed to `Secret::new` (when UTF-8), whose verdict must match its contract.
#![no_main]

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower_token_refresh::{
    Answer, Exchange, IdentityToken, InvalidSecret, OcientAuth, Secret,
};

/// The longest lifetime the layer believes, whatever the server says.
const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 60 * 60);

const PASSWORD: &str = "s3cret-pw";

fuzz_target!(|data: &[u8]| {
    let [selector, hi, lo, body @ ..] = data else {
        return;
    };
    let exchange = if selector & 1 == 0 {
        Exchange::Login
    } else {
        Exchange::Refresh
    };
    let raw = u16::from_be_bytes([*hi, *lo]);
    let code = if (100..=599).contains(&raw) {
        raw
    } else {
        100 + raw % 500
    };
    let status = StatusCode::from_u16(code).expect("100..=599 is a valid status");

    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));

    let base = "http://sql-node:9090".parse().unwrap();
    let auth = if selector & 2 == 0 {
        OcientAuth::new(base).credentials("jdoe", PASSWORD)
    } else {
        OcientAuth::new(base).sso_token_from(|| async { Ok(IdentityToken::id_token(PASSWORD)) })
    };
    let result = auth.read_answer(Answer::new(exchange, status, headers, body.to_vec()));

    match &result {
        Ok(grant) => {
            let token = grant.access_token().expose();
            assert!(!token.is_empty(), "Ok grant with an empty access token");
            assert!(
                token.bytes().all(|b| (0x21..=0x7E).contains(&b)),
                "Ok grant whose access token holds bytes outside visible ASCII"
            );
            let lifetime = grant.lifetime();
            assert!(
                lifetime >= std::time::Duration::from_secs(1),
                "Ok grant living under a second ({lifetime:?})"
            );
            assert!(
                lifetime <= MAX_LIFETIME,
                "Ok grant whose lifetime {lifetime:?} exceeds MAX_LIFETIME"
            );
            assert!(
                status.is_success(),
                "HTTP {status} (not 2xx) gave Ok instead of Err"
            );
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            assert!(
                !shown.contains(PASSWORD),
                "the error shows the password: {shown}"
            );
        }
    }

    // `Secret::new` accepts exactly the non-empty visible-ASCII strings, unchanged.
    if let Ok(text) = std::str::from_utf8(body) {
        match Secret::new(text) {
            Ok(secret) => {
                assert_eq!(secret.expose(), text, "Secret::new altered its input");
                assert!(
                    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic()),
                    "Secret::new accepted a string outside its contract"
                );
                assert_eq!(
                    format!("{secret:?}"),
                    "Secret(<redacted>)",
                    "Secret's Debug must show nothing of the secret"
                );
            }
            Err(InvalidSecret::Empty) => assert!(text.is_empty(), "Empty for a non-empty string"),
            Err(InvalidSecret::NotVisibleAscii) => assert!(
                !text.is_empty() && !text.bytes().all(|b| b.is_ascii_graphic()),
                "NotVisibleAscii for a valid string"
            ),
            Err(other) => panic!("unexpected InvalidSecret variant: {other:?}"),
        }
    }
});
