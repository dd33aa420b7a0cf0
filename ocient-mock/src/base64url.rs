//! Base64url, the encoding of JWTs and of JSON Web Keys. The key set reader
//! (`jwks.rs`) and the JWT reader (`jwt.rs`) decode with it, the test
//! identity provider encodes with it; it sits apart so that none of them
//! depends on another for it.

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// Base64url, with or without the padding JWTs leave out.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `None` for text that is not base64url.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    BASE64URL.decode(text).ok()
}

/// Without padding, as JWTs and JSON Web Keys carry it.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    BASE64URL.encode(bytes)
}
