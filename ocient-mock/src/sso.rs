//! Single sign-on's state: what `/v1/sso_token` trusts (fixed tokens and,
//! with the `sso` feature, issuers of signed JWTs) and the shape the test
//! wants its answer in, [`SsoAnswer`]. The endpoint is `handler/sso.rs`.

use std::collections::HashSet;
use std::fmt;

#[cfg(feature = "sso")]
use crate::jwks::TrustedIssuer;
use crate::wire::ApiStatus;

/// Who a token from [`MockOcient::sso_tokens`](crate::MockOcient::sso_tokens)
/// signs in as: a fixed token names nobody.
const FIXED_TOKEN_USER: &str = "sso-user";

/// The shape of a successful `/v1/sso_token` answer, set with
/// [`MockOcient::sso_answer`](crate::MockOcient::sso_answer).
///
/// Ocient's reference shows the exchange answering `{"id_token", "database"}`
/// while every other endpoint answers like a login, so a client has to cope
/// with each; these are the shapes to test it against. Whatever the shape,
/// the server tracks the token it hands out like a login's: the same
/// lifetime, a refresh lifetime that starts at the exchange, and
/// `/v1/token_refresh`, `/v1/execute` and
/// [`revoke_all`](crate::MockOcient::revoke_all) treat it alike.
///
/// # Example
///
/// ```rust
/// use ocient_mock::{MockOcient, SsoAnswer};
///
/// // `{"id_token": "<header>.<payload>.<signature>", "database": "system"}`,
/// // the payload's `exp` saying when the token expires.
/// let mock = MockOcient::new()
///     .sso_tokens(["token-from-the-identity-provider"])
///     .sso_answer(SsoAnswer::IdTokenWithExp);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SsoAnswer {
    /// The default: a login's answer, `{"access_token", "username",
    /// "database", "expires_in", "status"}`, with an opaque token.
    #[default]
    LikeLogin,
    /// `{"id_token", "database"}` alone, as the OpenAPI example shows, where
    /// the token is JWT-shaped (`<header>.<payload>.<signature>`, base64url)
    /// and its payload's `exp` is the wall-clock Unix second it expires at,
    /// rounded down. The signature is random bytes: only the mock checks it,
    /// by remembering the token.
    IdTokenWithExp,
    /// `{"id_token", "database"}` with an opaque token: the answer says
    /// nothing of its lifetime.
    IdTokenOpaque,
}

/// The identity-provider tokens the exchange accepts.
#[derive(Default)]
pub(crate) struct SsoConfig {
    tokens: HashSet<String>,
    #[cfg(feature = "sso")]
    issuers: Vec<TrustedIssuer>,
}

impl SsoConfig {
    /// Replaces the fixed tokens accepted.
    pub(crate) fn set_tokens(&mut self, tokens: HashSet<String>) {
        self.tokens = tokens;
    }

    /// Trusts `issuer`, in place of one of the same name: a key rotation.
    #[cfg(feature = "sso")]
    pub(crate) fn trust(&mut self, issuer: TrustedIssuer) {
        self.issuers
            .retain(|known| known.issuer() != issuer.issuer());
        self.issuers.push(issuer);
    }

    /// The user an identity provider's token signs in, or why it is refused.
    pub(crate) fn identify(&self, token: &str) -> Result<String, ApiStatus> {
        if self.tokens.contains(token) {
            return Ok(FIXED_TOKEN_USER.to_owned());
        }
        // With no issuer trusted, a JWT is as unknown as any other string.
        #[cfg(feature = "sso")]
        if !self.issuers.is_empty() {
            return crate::jwt::subject(&self.issuers, token, std::time::SystemTime::now());
        }
        Err(ApiStatus::TOKEN_INVALID)
    }
}

impl fmt::Debug for SsoConfig {
    /// How many fixed tokens, never which; the issuers trusted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("SsoConfig");
        debug.field("tokens", &self.tokens.len());
        #[cfg(feature = "sso")]
        debug.field("issuers", &self.issuers);
        debug.finish()
    }
}

#[cfg(test)]
mod tests;
