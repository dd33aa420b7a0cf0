//! Reading a token endpoint's answer: the fields of a good one, and RFC 6749 section 5.2's
//! error answer as `Error::Rejected`. What the crate already checks (a lifetime's bounds,
//! a token's characters, server text's length) it checks here too.

use http::StatusCode;
use tower_token_refresh::{Error, ErrorCode, Exchange, Grant, Secret};

/// The OAuth error code (`invalid_grant`, ...) of a rejection.
pub fn oauth_error(error: &Error) -> Option<&str> {
    match error.code()? {
        ErrorCode::Named(code) => Some(code),
        _ => None,
    }
}

/// An error answer as `Error::Rejected`: the `error` field as the code, the
/// `error_description` as the reason.
pub fn rejected(exchange: Exchange, status: StatusCode, body: &[u8]) -> Error {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = |name: &str| parsed.as_ref()?.get(name)?.as_str();
    let code = text("error").map(|code| ErrorCode::Named(code.to_owned()));
    let reason = match code {
        Some(_) => text("error_description").unwrap_or_default(),
        None => "no OAuth error in the answer",
    };
    Error::rejected(exchange, status, code, reason)
}

/// A token field of a good answer.
pub fn secret_field(
    exchange: Exchange,
    name: &str,
    value: Option<&serde_json::Value>,
) -> Result<Secret, Error> {
    let invalid = |reason: String| Error::invalid_response(exchange, reason);
    match value {
        Some(serde_json::Value::String(text)) => {
            Secret::new(text.as_str()).map_err(|e| invalid(format!("{name} refused: {e}")))
        }
        Some(_) => Err(invalid(format!("{name} is not a string"))),
        None => Err(invalid(format!("{name} is missing"))),
    }
}

/// The grant of `access_token` for `expires_in` seconds, as the crate bounds it.
pub fn expiring(
    exchange: Exchange,
    access_token: Secret,
    expires_in: &serde_json::Value,
) -> Result<Grant, Error> {
    let seconds = expires_in
        .as_f64()
        .ok_or_else(|| Error::invalid_response(exchange, "expires_in is not a number"))?;
    Grant::from_expires_in(access_token, seconds)
        .map_err(|e| Error::invalid_response(exchange, e.to_string()))
}
