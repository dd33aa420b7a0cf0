//! [`IDENTITY_HEADER`]: the test's word on whose API request this is, so
//! the mock can tell a client that sent one identity's token on another's
//! behalf, as a layer holding a token per end user or per database could if
//! it mixed its tokens up. Ocient has no such header: it is the mock's own,
//! and only `/v1/execute` reads it. Whose token it is, is state (`state.rs`).

use http::HeaderMap;

/// The header a test sets on an API request (`/v1/execute/...`) to say
/// whose request it is: `x-mock-identity: <username>`, or
/// `x-mock-identity: <username>/<database>` to name the database too.
///
/// When it is present and the request's token is valid but was issued to
/// another username (or, if the header names one, for another database),
/// the query is refused with HTTP 403, `vendor_code` -1205, `sql_state`
/// `08004`, reason `token belongs to another identity`, and counted in
/// [`Counters::queries_wrong_identity`](crate::Counters::queries_wrong_identity)
/// instead of `queries_ok`. A request without it is answered as ever.
///
/// The database is what follows the last `/`, since a database name in an
/// execute path cannot hold one while a username may: a user `team/alice`
/// is named with a database, `team/alice/system`. Whitespace around the
/// value is ignored; the rest is compared byte for byte.
///
/// ```rust
/// use ocient_mock::IDENTITY_HEADER;
///
/// let request = http::Request::post("/v1/execute/sales")
///     .header(http::header::AUTHORIZATION, "Bearer mock.1.0123456789abcdef")
///     .header(IDENTITY_HEADER, "alice/sales")
///     .body(String::from(r#"{"statement": "SELECT 1"}"#))?;
/// # Ok::<(), http::Error>(())
/// ```
pub const IDENTITY_HEADER: &str = "x-mock-identity";

/// Whom an API request's [`IDENTITY_HEADER`] says sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity<'a> {
    username: &'a [u8],
    /// `None`: any database the user's token was issued for will do.
    database: Option<&'a [u8]>,
}

impl<'a> Identity<'a> {
    /// `None` when the request does not say: it is then not checked. Bytes
    /// rather than text, so a header that is not visible ASCII is still a
    /// claim, one that names nobody the mock issued a token to, unless a
    /// user's name is those very bytes in UTF-8.
    pub(crate) fn claimed(headers: &'a HeaderMap) -> Option<Self> {
        let value = headers.get(IDENTITY_HEADER)?.as_bytes().trim_ascii();
        let identity = match value.iter().rposition(|&byte| byte == b'/') {
            Some(slash) => Self {
                username: &value[..slash],
                database: Some(&value[slash + 1..]),
            },
            None => Self {
                username: value,
                database: None,
            },
        };
        Some(identity)
    }

    /// Whether a token issued to `username` for `database` is this
    /// identity's.
    pub(crate) fn owns(&self, username: &str, database: &str) -> bool {
        self.username == username.as_bytes()
            && self
                .database
                .is_none_or(|claimed| claimed == database.as_bytes())
    }
}

#[cfg(test)]
mod tests;
