//! The access token as it travels: a sensitive header value whose `Debug` shows nothing.

use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

/// The longest lifetime the layer believes, whatever the server says.
///
/// An absurd `expires_in` (`i64::MAX`, `1e300`) must not overflow an `Instant`, and a
/// token refreshed once a fortnight is no worse than one trusted for a century.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A secret string (token or refresh token) that refuses to show itself in `Debug`.
///
/// Holds only visible ASCII (`0x21..=0x7E`), so it can never inject a header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    /// Accepts `value` when it is non-empty visible ASCII.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidSecret> {
        let value = value.into();
        if value.is_empty() {
            return Err(InvalidSecret::Empty);
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidSecret::NotVisibleAscii);
        }
        Ok(Secret(value.into_boxed_str()))
    }

    /// The secret itself, for building a request. Keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a string cannot be a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSecret {
    /// The string was empty.
    #[error("the token is empty")]
    Empty,
    /// The string held a space, a control character or a non-ASCII byte.
    #[error("the token holds characters outside visible ASCII")]
    NotVisibleAscii,
}

/// Why an `expires_in` cannot be a token's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidLifetime {
    /// Zero, negative, or not a number at all (NaN).
    #[error("expires_in is not positive")]
    NotPositive,
    /// Under one second: a token dead on arrival.
    #[error("expires_in is under one second")]
    UnderOneSecond,
}

/// What a login or refresh grants: a token and how long it lives.
#[derive(Clone)]
pub struct Grant {
    access_token: Secret,
    lifetime: Duration,
    refresh_token: Option<Secret>,
}

impl Grant {
    /// A token that lives `lifetime` from when its request was sent (clamped to 30 days:
    /// an absurd lifetime must not overflow a deadline, and a token refreshed once a
    /// fortnight is no worse than one trusted for a century).
    pub fn new(access_token: Secret, lifetime: Duration) -> Self {
        Grant {
            access_token,
            lifetime: lifetime.min(MAX_LIFETIME),
            refresh_token: None,
        }
    }

    /// A token that lives `expires_in` seconds, as a token answer's `expires_in` says it
    /// (OAuth 2.0, Ocient): refused when it is not positive (NaN included) or under one
    /// second; clamped to 30 days when larger (infinity included).
    ///
    /// ```
    /// use tower_token_refresh::{Grant, InvalidLifetime, Secret};
    ///
    /// let token = Secret::new("eyJ.abc").unwrap();
    /// assert_eq!(Grant::from_expires_in(token.clone(), 3600.0).unwrap().lifetime().as_secs(), 3600);
    /// assert_eq!(Grant::from_expires_in(token, 1e-15).unwrap_err(), InvalidLifetime::UnderOneSecond);
    /// ```
    pub fn from_expires_in(access_token: Secret, expires_in: f64) -> Result<Self, InvalidLifetime> {
        if expires_in.is_nan() || expires_in <= 0.0 {
            return Err(InvalidLifetime::NotPositive);
        }
        // Token services count in whole seconds; less than one is no token at all.
        if expires_in < 1.0 {
            return Err(InvalidLifetime::UnderOneSecond);
        }
        let lifetime = Duration::from_secs_f64(expires_in.min(MAX_LIFETIME.as_secs_f64()));
        Ok(Grant::new(access_token, lifetime))
    }

    /// Carries a separate refresh token (OAuth 2.0 style) for the next refresh.
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: Secret) -> Self {
        self.refresh_token = Some(refresh_token);
        self
    }

    /// The access token.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// How long the token lives.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The refresh token, when the protocol has one.
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// `Bearer <token>`, marked sensitive so HTTP/2 never indexes it and `Debug` hides it:
    /// what the layer puts on requests, and what a refresh request usually carries.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_token_refresh::{Grant, Secret};
    ///
    /// let grant = Grant::new(Secret::new("t0ken").unwrap(), Duration::from_secs(60));
    /// let header = grant.bearer_header();
    /// assert_eq!(header, "Bearer t0ken");
    /// assert!(header.is_sensitive());
    /// ```
    pub fn bearer_header(&self) -> HeaderValue {
        let token = self.access_token.expose();
        let mut buf = BytesMut::with_capacity("Bearer ".len() + token.len());
        buf.put_slice(b"Bearer ");
        buf.put_slice(token.as_bytes());
        let bytes: Bytes = buf.freeze();
        let mut value = HeaderValue::from_maybe_shared(bytes)
            .expect("visible ASCII is always a valid header value");
        value.set_sensitive(true);
        // Cloning a `Bytes` built from a buffer allocates once, on its first clone, to make
        // it shared; do it here so no request ever pays for it.
        drop(value.clone());
        value
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("access_token", &self.access_token)
            .field("lifetime", &self.lifetime)
            .field("refresh_token", &self.refresh_token)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_reject_header_injection() {
        for bad in ["a\r\nb", "a b", "a\0b", "tök", ""] {
            assert!(Secret::new(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(Secret::new("eyJ.abc-_~").unwrap().expose(), "eyJ.abc-_~");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let grant = Grant::new(Secret::new("tok3n").unwrap(), Duration::from_secs(60))
            .with_refresh_token(Secret::new("r3fresh").unwrap());
        let shown = format!("{grant:?} {:?}", grant.bearer_header());
        assert!(
            !shown.contains("tok3n") && !shown.contains("r3fresh"),
            "{shown}"
        );
    }

    #[test]
    fn lifetime_is_clamped() {
        let grant = Grant::new(Secret::new("t").unwrap(), Duration::MAX);
        assert_eq!(grant.lifetime(), MAX_LIFETIME);
    }

    #[test]
    fn an_expires_in_is_a_lifetime_when_it_is_one_second_or_more() {
        let grant = |secs: f64| Grant::from_expires_in(Secret::new("t").unwrap(), secs);
        assert_eq!(grant(1.0).unwrap().lifetime(), Duration::from_secs(1));
        assert_eq!(grant(2.5).unwrap().lifetime(), Duration::from_millis(2500));
        for huge in [1e300, f64::INFINITY, i64::MAX as f64] {
            assert_eq!(grant(huge).unwrap().lifetime(), MAX_LIFETIME, "{huge}");
        }
        for tiny in [1e-15, 0.4, 0.999_999, 1e-308] {
            assert_eq!(
                grant(tiny).unwrap_err(),
                InvalidLifetime::UnderOneSecond,
                "{tiny}"
            );
        }
        for bad in [0.0, -0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
            assert_eq!(
                grant(bad).unwrap_err(),
                InvalidLifetime::NotPositive,
                "{bad}"
            );
        }
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let grant = Grant::new(Secret::new("abc").unwrap(), Duration::from_secs(1));
        let header = grant.bearer_header();
        assert!(header.is_sensitive());
        assert_eq!(header.as_bytes(), b"Bearer abc");
    }
}
