//! [`Answer`]: what a token request brought back, as a protocol reads it.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::error::Exchange;

/// The answer to a login or refresh request, read in full: what
/// [`TokenClient::send`](crate::TokenClient::send) returns.
///
/// Its `Debug` shows the status and sizes only: the body holds the token.
#[non_exhaustive]
pub struct Answer {
    /// Which request this answers.
    pub exchange: Exchange,
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body (at most 1 MiB; larger answers never reach the protocol).
    pub body: Bytes,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("exchange", &self.exchange)
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Answer {
    /// An answer to `exchange`: for testing how a protocol reads one.
    pub fn new(
        exchange: Exchange,
        status: StatusCode,
        headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> Self {
        Answer {
            exchange,
            status,
            headers,
            body: body.into(),
        }
    }
}
