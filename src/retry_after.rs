//! What a token endpoint's `Retry-After` asks: how long to leave it alone.
//!
//! Read by the layer for every protocol, so no [`TokenEndpoint`](crate::TokenEndpoint)
//! has to, and only on the answers that carry it with that meaning (RFC 9110, 10.2.3):
//! 429 Too Many Requests and 503 Service Unavailable.

use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::{HeaderMap, StatusCode};

/// How long the server asked not to be asked again, as of `now`: whole seconds, or an HTTP
/// date (a date already past asks for no wait). `None` for any other answer, or a value
/// that is neither.
pub(crate) fn server_wait(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a very long time": the caller caps it.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn wait(status: u16, value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        let now = httpdate::parse_http_date("Wed, 02 Dec 2026 18:00:00 GMT").unwrap();
        server_wait(StatusCode::from_u16(status).unwrap(), &headers, now)
    }

    #[test]
    fn seconds_are_read_on_a_503_and_a_429() {
        assert_eq!(wait(503, "3"), Some(Duration::from_secs(3)));
        assert_eq!(wait(429, " 120 "), Some(Duration::from_secs(120)));
        assert_eq!(wait(503, "0"), Some(Duration::ZERO));
    }

    #[test]
    fn an_http_date_counts_from_now() {
        let later = wait(503, "Wed, 02 Dec 2026 18:00:07 GMT");
        assert_eq!(later, Some(Duration::from_secs(7)));
        let past = wait(429, "Wed, 02 Dec 2026 17:59:00 GMT");
        assert_eq!(
            past,
            Some(Duration::ZERO),
            "a date gone by asks for nothing"
        );
    }

    #[test]
    fn an_absurd_number_of_seconds_is_a_very_long_wait_not_an_error() {
        let huge = wait(503, "99999999999999999999999");
        assert_eq!(huge, Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn other_answers_and_other_values_ask_for_nothing() {
        assert_eq!(wait(500, "3"), None, "only 429 and 503 mean it");
        assert_eq!(wait(200, "3"), None);
        for value in [
            "",
            "-3",
            "3.5",
            "soon",
            "0x10",
            "Wed, 32 Dec 2026 18:00:00 GMT",
        ] {
            assert_eq!(wait(503, value), None, "{value:?}");
        }
        let none = server_wait(
            StatusCode::SERVICE_UNAVAILABLE,
            &HeaderMap::new(),
            SystemTime::now(),
        );
        assert_eq!(none, None, "no header");
    }
}
