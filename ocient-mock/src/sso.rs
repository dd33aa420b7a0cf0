//! Single sign-on: `POST /v1/sso_token` exchanges an identity provider's
//! token for an Ocient one, and [`SsoAnswer`] says what that answer looks like.

use std::collections::HashSet;
use std::fmt;

use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::body::{BoxError, MockBody};
#[cfg(feature = "sso")]
use crate::jwks::TrustedIssuer;
use crate::mock::MockOcient;
use crate::state::{TokenShape, DEFAULT_DATABASE};
use crate::wire::{json, read_json, require_json, ApiStatus, Failure, Issued};

/// Who a token from [`MockOcient::sso_tokens`] signs in as: a fixed token
/// names nobody.
const FIXED_TOKEN_USER: &str = "sso-user";

/// The shape of a successful `/v1/sso_token` answer, set with
/// [`MockOcient::sso_answer`].
///
/// Ocient's reference shows the exchange answering `{"id_token", "database"}`
/// while every other endpoint answers like a login, so a client has to cope
/// with each; these are the shapes to test it against. Whatever the shape,
/// the server tracks the token it hands out like a login's: the same
/// lifetime, a refresh lifetime that starts at the exchange, and
/// `/v1/token_refresh`, `/v1/execute` and
/// [`revoke_all`](MockOcient::revoke_all) treat it alike.
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

impl SsoAnswer {
    fn shape(self) -> TokenShape {
        match self {
            Self::IdTokenWithExp => TokenShape::Jwt,
            Self::LikeLogin | Self::IdTokenOpaque => TokenShape::Opaque,
        }
    }

    fn respond(self, issued: Issued) -> Response<MockBody> {
        match self {
            Self::LikeLogin => json(StatusCode::OK, &issued),
            Self::IdTokenWithExp | Self::IdTokenOpaque => json(
                StatusCode::OK,
                &IdTokenAnswer {
                    id_token: issued.access_token,
                    database: issued.database,
                },
            ),
        }
    }
}

/// The identity-provider tokens the exchange accepts.
#[derive(Default)]
pub(crate) struct SsoConfig {
    tokens: HashSet<String>,
    #[cfg(feature = "sso")]
    issuers: Vec<TrustedIssuer>,
}

impl SsoConfig {
    /// The user an identity provider's token signs in, or why it is refused.
    fn identify(&self, token: &str) -> Result<String, ApiStatus> {
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

#[derive(Deserialize)]
struct SsoRequest {
    database: Option<String>,
    id_token: Option<String>,
    access_token: Option<String>,
}

#[derive(Serialize)]
struct IdTokenAnswer {
    id_token: String,
    database: String,
}

impl SsoRequest {
    /// The one token the API allows, and the database.
    fn into_parts(self) -> Result<(String, String), Failure> {
        let token = match (self.id_token, self.access_token) {
            (Some(token), None) | (None, Some(token)) => token,
            _ => {
                return Err(Failure::protocol(
                    StatusCode::BAD_REQUEST,
                    "22000",
                    "exactly one of id_token and access_token is required",
                ))
            }
        };
        let database = self.database.unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        Ok((token, database))
    }
}

impl MockOcient {
    /// The identity-provider tokens `/v1/sso_token` accepts, as `id_token`
    /// or `access_token` alike, each signing in the user `sso-user`. Replaces
    /// the tokens set before. No feature is needed: the mock compares them
    /// as strings, so any string will do.
    #[must_use]
    pub fn sso_tokens(self, tokens: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.set_sso_tokens(tokens);
        self
    }

    /// Replaces the accepted identity-provider tokens from now on, as an
    /// identity provider revoking or rotating them would. Ocient tokens
    /// already issued stay valid.
    pub fn set_sso_tokens(&self, tokens: impl IntoIterator<Item = impl Into<String>>) {
        self.lock().sso.tokens = tokens.into_iter().map(Into::into).collect();
    }

    /// How a successful `/v1/sso_token` answers; [`SsoAnswer::LikeLogin`]
    /// by default.
    #[must_use]
    pub fn sso_answer(self, answer: SsoAnswer) -> Self {
        self.set_sso_answer(answer);
        self
    }

    /// Changes how `/v1/sso_token` answers from now on.
    pub fn set_sso_answer(&self, answer: SsoAnswer) {
        self.lock().knobs.sso_answer = answer;
    }

    /// `/v1/sso_token` also accepts JWTs this issuer signed: a signature
    /// that verifies against one of its keys, `iss` equal to its issuer,
    /// `aud` holding its audience if it has one, an `exp` still ahead and no
    /// `nbf` still to come. The JWT's `sub` is the user signed in. Trusting
    /// an issuer of the same name again replaces its keys, as a key rotation
    /// would.
    #[cfg(feature = "sso")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sso")))]
    #[must_use]
    pub fn trust_issuer(self, issuer: TrustedIssuer) -> Self {
        {
            let issuers = &mut self.lock().sso.issuers;
            issuers.retain(|known| known.issuer() != issuer.issuer());
            issuers.push(issuer);
        }
        self
    }

    pub(crate) async fn sso_exchange<B>(
        &self,
        headers: &HeaderMap,
        body: B,
    ) -> Result<Response<MockBody>, Failure>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        require_json(headers)?;
        let request: SsoRequest = read_json(body).await?.ok_or_else(Failure::malformed_json)?;
        let (idp_token, database) = request.into_parts()?;
        let now = Instant::now();
        let mut state = self.lock();
        let in_band = state.knobs.errors_in_band;
        // The reason is one of the fixed texts: the refused token is never echoed.
        let username = state
            .sso
            .identify(&idp_token)
            .map_err(|status| Failure::auth(status, in_band))?;
        let answer = state.knobs.sso_answer;
        let issued = state.sign_in(username, database, answer.shape(), now);
        drop(state);
        Ok(answer.respond(issued))
    }
}

#[cfg(test)]
mod tests;
