//! The `exp` claim of a JWT, read without verifying the signature: the server verifies its
//! own tokens; the layer only needs to know when to refresh one whose answer said nothing
//! of its lifetime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds until the JWT `token` expires, as of `now`: `None` when it is no JWT or carries
/// no numeric `exp`. Negative when it expired already.
pub(super) fn seconds_left(token: &str, now: SystemTime) -> Option<f64> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    let claims: serde_json::Value = serde_json::from_slice(&base64url(payload)?).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Some(exp - now.as_secs_f64())
}

/// Decodes unpadded base64url (RFC 4648 §5), as JWTs use; `None` on anything else.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for c in text.bytes() {
        bits = (bits << 6) | u32::from(sextet(c)?);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
        bits &= (1 << count) - 1;
    }
    // One character alone (6 bits) cannot end a valid encoding.
    (count < 6).then_some(bytes)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    fn jwt(claims: &str) -> String {
        let part = |text: &str| URL_SAFE_NO_PAD.encode(text);
        format!("{}.{}.sig", part(r#"{"alg":"HS256"}"#), part(claims))
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn exp_is_read_relative_to_now() {
        let token = jwt(r#"{"sub":"jdoe","exp":1700003600}"#);
        assert_eq!(seconds_left(&token, at(1_700_000_000)), Some(3600.0));
        assert_eq!(seconds_left(&token, at(1_700_003_700)), Some(-100.0));
    }

    #[test]
    fn anything_but_a_jwt_with_a_numeric_exp_says_nothing() {
        let now = at(1_700_000_000);
        for token in [
            "mock.1.0123456789abcdef".to_owned(),
            "opaque".to_owned(),
            jwt(r#"{"sub":"jdoe"}"#),
            jwt(r#"{"exp":"1700003600"}"#),
            jwt(r#"[1700003600]"#),
            "eyJ.!!!.sig".to_owned(),
        ] {
            assert_eq!(seconds_left(&token, now), None, "{token}");
        }
    }

    #[test]
    fn base64url_agrees_with_the_base64_crate() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let encoded = URL_SAFE_NO_PAD.encode(&data);
            assert_eq!(base64url(&encoded).as_deref(), Some(&data[..]), "{encoded}");
        }
        assert_eq!(base64url("A"), None, "one character is half a byte");
        assert_eq!(base64url("AB=="), None, "padding is not base64url in a JWT");
        assert_eq!(
            base64url("A+/B"),
            None,
            "standard base64's alphabet is not url-safe"
        );
    }
}
