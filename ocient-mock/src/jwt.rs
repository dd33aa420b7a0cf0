//! Reading an identity provider's JWT: its signature against a
//! [`TrustedIssuer`]'s keys, then its claims, into the user it signs in.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::base64url;
use crate::jwks::TrustedIssuer;
use crate::wire::ApiStatus;

/// How far ahead of ours a provider's clock may run: a token it has just
/// issued may carry an `nbf` still to come here. `exp` gets no leeway, so a
/// token issued with no lifetime at all is expired at once.
const NBF_LEEWAY_SECS: f64 = 30.0;

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    nbf: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The `sub` of a JWT one of `issuers` signed, still valid at `now`.
///
/// The checks run in the order their answers are most useful in: a token
/// that is no JWT (-1205), then whose issuer is not trusted (-1207), whose
/// signature does not verify (-1206), which expired (-1208), and last one
/// not yet valid or for another audience (-1205).
pub(crate) fn subject(
    issuers: &[TrustedIssuer],
    token: &str,
    now: SystemTime,
) -> Result<String, ApiStatus> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiStatus::TOKEN_INVALID);
    };
    let signed = &token[..header.len() + 1 + payload.len()];
    let header: Header = decode_json(header).ok_or(ApiStatus::TOKEN_INVALID)?;
    let claims: Claims = decode_json(payload).ok_or(ApiStatus::TOKEN_INVALID)?;
    let iss = claims.iss.as_deref().ok_or(ApiStatus::TOKEN_INVALID)?;
    let issuer = issuers
        .iter()
        .find(|issuer| issuer.issuer() == iss)
        .ok_or(ApiStatus::UNKNOWN_ISSUER)?;
    let signature = base64url::decode(signature).ok_or(ApiStatus::SIGNATURE_MISMATCH)?;
    let kid = header.kid.as_deref();
    if !issuer.verifies(&header.alg, kid, signed.as_bytes(), &signature) {
        return Err(ApiStatus::SIGNATURE_MISMATCH);
    }
    claims.check(issuer.required_audience(), now)?;
    claims.sub.ok_or(ApiStatus::TOKEN_INVALID)
}

impl Claims {
    fn check(&self, audience: Option<&str>, now: SystemTime) -> Result<(), ApiStatus> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let exp = self.exp.ok_or(ApiStatus::TOKEN_INVALID)?;
        if exp <= now {
            return Err(ApiStatus::TOKEN_EXPIRED);
        }
        if self.nbf.is_some_and(|nbf| nbf > now + NBF_LEEWAY_SECS) {
            return Err(ApiStatus::TOKEN_INVALID);
        }
        let for_us = audience
            .is_none_or(|audience| self.aud.as_ref().is_some_and(|aud| aud.contains(audience)));
        if for_us {
            Ok(())
        } else {
            Err(ApiStatus::TOKEN_INVALID)
        }
    }
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|one| one == audience),
        }
    }
}

fn decode_json<T: DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&base64url::decode(part)?).ok()
}

#[cfg(test)]
mod tests;
