//! Single sign-on by token exchange: an identity provider's token, asked for at each
//! exchange, traded at `/v1/sso_token` for an Ocient token.

use std::fmt;

/// A token from an OpenID Connect identity provider, to exchange for an Ocient token: see
/// [`OcientAuth::sso_token_from`](crate::OcientAuth::sso_token_from).
///
/// Whitespace around it (a token file's last newline) is dropped. `Debug` says which kind
/// it is, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityToken {
    kind: Kind,
    token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Access,
}

impl IdentityToken {
    /// An OpenID Connect ID token: a JWT about the user, sent as `id_token`.
    pub fn id_token(token: impl Into<String>) -> Self {
        Self::new(Kind::Id, token.into())
    }

    /// An OAuth 2.0 access token from the identity provider (a client-credentials grant
    /// gives one), sent as `access_token`.
    pub fn access_token(token: impl Into<String>) -> Self {
        Self::new(Kind::Access, token.into())
    }

    fn new(kind: Kind, token: String) -> Self {
        let token = token.trim().to_owned();
        IdentityToken { kind, token }
    }

    /// The field of `/v1/sso_token`'s body that carries it.
    pub(super) fn field(&self) -> &'static str {
        match self.kind {
            Kind::Id => "id_token",
            Kind::Access => "access_token",
        }
    }

    /// The token itself, for the request body.
    pub(super) fn expose(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityToken({}: <redacted>)", self.field())
    }
}
