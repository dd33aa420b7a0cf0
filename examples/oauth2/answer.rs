//! Reading a token endpoint's answer: the fields of a good one, and RFC 6749 section 5.2's
//! error answer as `Error::Rejected`.

use std::time::Duration;

use http::StatusCode;
use tower_token_refresh::{Error, Exchange, Secret, MAX_LIFETIME};

/// The longest `reason` an error repeats from the server.
const MAX_REASON: usize = 256;

/// The OAuth error code (`invalid_grant`, ...) of a rejection that [`rejected`] made.
pub fn oauth_error(error: &Error) -> Option<&str> {
    match error {
        Error::Rejected { reason, .. } => reason.split(':').next(),
        _ => None,
    }
}

/// An error answer as `Error::Rejected`, with `vendor_code` 0 and `reason`
/// `"<error>: <error_description>"`.
pub fn rejected(exchange: Exchange, status: StatusCode, body: &[u8]) -> Error {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(printable)
    };
    let reason = match (text("error"), text("error_description")) {
        (Some(code), Some(description)) => format!("{code}: {description}"),
        (Some(code), None) => code,
        (None, _) => "no OAuth error in the answer".to_owned(),
    };
    Error::Rejected {
        exchange,
        status,
        vendor_code: 0,
        sql_state: String::new(),
        reason: reason.chars().take(MAX_REASON).collect(),
    }
}

/// Server text, without control characters, and short.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect()
}

/// An answer that is not what the protocol says.
pub fn invalid(exchange: Exchange, reason: impl Into<String>) -> Error {
    Error::InvalidResponse {
        exchange,
        reason: reason.into(),
    }
}

/// A token field of a good answer.
pub fn secret_field(
    exchange: Exchange,
    name: &str,
    value: Option<&serde_json::Value>,
) -> Result<Secret, Error> {
    match value {
        Some(serde_json::Value::String(text)) => Secret::new(text.as_str())
            .map_err(|e| invalid(exchange, format!("{name} refused: {e}"))),
        Some(_) => Err(invalid(exchange, format!("{name} is not a string"))),
        None => Err(invalid(exchange, format!("{name} is missing"))),
    }
}

/// `expires_in` in seconds: a positive number (`Grant::new` clamps absurd ones).
pub fn lifetime(exchange: Exchange, value: &serde_json::Value) -> Result<Duration, Error> {
    let seconds = value
        .as_f64()
        .ok_or_else(|| invalid(exchange, "expires_in is not a number"))?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(invalid(exchange, "expires_in is not positive"));
    }
    Ok(Duration::from_secs_f64(
        seconds.min(MAX_LIFETIME.as_secs_f64()),
    ))
}
