//! The encodings RFC 6749 asks for, from the `form_urlencoded` and `base64` crates: form
//! bodies (appendix B) and client credentials in HTTP Basic (section 2.3.1).

use std::collections::HashMap;

use base64::Engine as _;

/// Base64 as HTTP Basic wants it: RFC 4648's alphabet, with padding.
pub use base64::engine::general_purpose::STANDARD as BASE64;

/// The content type of a token request.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// One name or value, form-encoded.
pub fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A form body of `pairs`, in order.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One form-encoded name or value, decoded; `None` when it is not one (see [`parse_form`]).
pub fn form_decode(encoded: &str) -> Option<String> {
    if encoded.contains(['&', '=']) {
        return None;
    }
    let pairs = parse_form(encoded.as_bytes())?;
    Some(pairs.into_keys().next().unwrap_or_default())
}

/// The pairs of a form body, strictly: `None` when an escape is broken (`form_urlencoded`
/// would keep it as it is), when a name or value is not visible ASCII or space (RFC 6749
/// appendix A's VSCHAR, which every parameter of the refresh grant is; an escape that does
/// not decode to UTF-8 fails here too), or when a name repeats, which section 3.2 forbids.
pub fn parse_form(body: &[u8]) -> Option<HashMap<String, String>> {
    let text = std::str::from_utf8(body).ok()?;
    let escapes_whole = text.split('%').skip(1).all(|after| {
        after
            .get(..2)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !escapes_whole {
        return None;
    }
    let vschar = |text: &str| text.chars().all(|c| matches!(c, ' '..='~'));
    let mut pairs = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if !vschar(&name) || !vschar(&value) {
            return None;
        }
        if pairs
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return None;
        }
    }
    Some(pairs)
}

/// `Basic base64(urlencode(client_id) ":" urlencode(client_secret))`.
pub fn basic_credentials(client_id: &str, client_secret: &str) -> String {
    let pair = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
    format!("Basic {}", BASE64.encode(pair))
}

/// The client id and secret in what follows `Basic ` in a value [`basic_credentials`] made.
pub fn decode_basic_credentials(encoded: &str) -> Option<(String, String)> {
    let raw = BASE64.decode(encoded).ok()?;
    let pair = String::from_utf8(raw).ok()?;
    let (id, secret) = pair.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}
