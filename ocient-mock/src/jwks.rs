//! [`TrustedIssuer`]: an identity provider whose JWTs `/v1/sso_token`
//! accepts, and its keys, read from a JSON Web Key Set.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
};
use serde::Deserialize;
use serde_json::Value;

use crate::base64url;

/// The bytes of a P-256 coordinate.
const P256_COORDINATE: usize = 32;

/// An identity provider the mock trusts: its issuer name, its signing keys
/// and, if set, the audience its tokens must be for. Hand it to
/// [`MockOcient::trust_issuer`](crate::MockOcient::trust_issuer).
///
/// The keys are the provider's JSON Web Key Set, as its `jwks_uri` serves
/// it. RSA keys (RS256) and P-256 keys (ES256) are read; keys of other
/// kinds, for another use than `sig` or for another `alg`, are left out, so a
/// real provider's set can be passed as it is. Cheap to clone.
///
/// # Example
///
/// ```rust
/// use ocient_mock::{MockOcient, TestIdentityProvider, TrustedIssuer};
///
/// # fn main() -> Result<(), ocient_mock::JwksError> {
/// let idp = TestIdentityProvider::new("https://idp.example");
/// // A real provider's set comes from its `jwks_uri`.
/// let trusted = TrustedIssuer::new(idp.issuer(), &idp.jwks())?.audience("ocient");
/// let mock = MockOcient::new().trust_issuer(trusted);
/// // `{"id_token": idp.issue("jdoe", ..)}` now signs `jdoe` in at /v1/sso_token.
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "sso")))]
#[derive(Clone)]
pub struct TrustedIssuer {
    issuer: String,
    audience: Option<String>,
    keys: Arc<[Jwk]>,
}

/// Why a JSON Web Key Set was not taken, from [`TrustedIssuer::new`].
#[cfg_attr(docsrs, doc(cfg(feature = "sso")))]
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// It is not a JSON object with a `keys` array.
    NotAKeySet,
    /// The key at `index` of `keys` is an RSA or P-256 key with a member
    /// missing or malformed.
    InvalidKey {
        /// Its place in `keys`, from 0.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No key in it is an RS256 or ES256 signing key.
    NoUsableKey,
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAKeySet => f.write_str("not a JSON object with a `keys` array"),
            Self::InvalidKey { index, reason } => write!(f, "key {index}: {reason}"),
            Self::NoUsableKey => f.write_str("no RS256 or ES256 signing key"),
        }
    }
}

impl Error for JwksError {}

/// One signing key, and the `kid` a JWT header picks it by.
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

enum PublicKey {
    /// Modulus and exponent, big-endian, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point, `0x04 || x || y`.
    P256 { point: Vec<u8> },
}

/// A key's members this crate reads; the rest are ignored.
#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl TrustedIssuer {
    /// Trusts the JWTs whose `iss` is `issuer` and whose signature verifies
    /// against a key of `jwks_json`, a JSON Web Key Set. No audience is
    /// required until [`audience`](TrustedIssuer::audience) sets one.
    ///
    /// # Errors
    ///
    /// When `jwks_json` is not a key set, an RSA or P-256 key in it is
    /// malformed, or none of its keys can verify RS256 or ES256.
    pub fn new(issuer: impl Into<String>, jwks_json: &str) -> Result<Self, JwksError> {
        let set: Value = serde_json::from_str(jwks_json).map_err(|_| JwksError::NotAKeySet)?;
        let raw_keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotAKeySet)?;
        let mut keys = Vec::new();
        for (index, raw) in raw_keys.iter().enumerate() {
            let invalid = |reason| JwksError::InvalidKey { index, reason };
            let raw = RawKey::deserialize(raw).map_err(|_| invalid("not a JSON Web Key"))?;
            keys.extend(Jwk::read(raw).map_err(invalid)?);
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(Self::with_keys(issuer.into(), keys))
    }

    /// Also requires the JWT's `aud`, a string or an array of them, to hold
    /// `audience`.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The `iss` its JWTs carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// An issuer with one P-256 key, `point` uncompressed.
    pub(crate) fn p256(issuer: String, kid: String, point: &[u8]) -> Self {
        let key = Jwk {
            kid: Some(kid),
            key: PublicKey::P256 {
                point: point.to_vec(),
            },
        };
        Self::with_keys(issuer, vec![key])
    }

    fn with_keys(issuer: String, keys: Vec<Jwk>) -> Self {
        Self {
            issuer,
            audience: None,
            keys: keys.into(),
        }
    }

    pub(crate) fn required_audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// Whether a key for `alg` verifies `signature` over `message`: the key
    /// named `kid` if the JWT names one, else each key for `alg` in turn.
    /// No key is for any `alg` but RS256 and ES256, `none` included.
    pub(crate) fn verifies(
        &self,
        alg: &str,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        self.keys
            .iter()
            .filter(|jwk| jwk.key.alg() == alg)
            .filter(|jwk| kid.is_none() || jwk.kid.as_deref() == kid)
            .any(|jwk| jwk.key.verifies(message, signature))
    }
}

impl Jwk {
    /// The key, `None` for a kind or use this crate does not verify with.
    fn read(raw: RawKey) -> Result<Option<Self>, &'static str> {
        if raw.usage.as_deref().is_some_and(|usage| usage != "sig") {
            return Ok(None);
        }
        let key = match (raw.kty.as_str(), raw.crv.as_deref()) {
            ("RSA", _) => PublicKey::rsa(raw.n.as_deref(), raw.e.as_deref())?,
            ("EC", Some("P-256")) => PublicKey::p256(raw.x.as_deref(), raw.y.as_deref())?,
            _ => return Ok(None),
        };
        if raw.alg.as_deref().is_some_and(|alg| alg != key.alg()) {
            return Ok(None);
        }
        Ok(Some(Self { kid: raw.kid, key }))
    }
}

impl PublicKey {
    fn rsa(n: Option<&str>, e: Option<&str>) -> Result<Self, &'static str> {
        const MALFORMED: &str = "an RSA key needs `n` and `e` in base64url";
        let mut n = n.and_then(base64url::decode).ok_or(MALFORMED)?;
        let mut e = e.and_then(base64url::decode).ok_or(MALFORMED)?;
        // RFC 7518 forbids leading zeros, some providers send them, ring refuses them.
        for number in [&mut n, &mut e] {
            let zeros = number.iter().take_while(|&&byte| byte == 0).count();
            number.drain(..zeros);
            if number.is_empty() {
                return Err(MALFORMED);
            }
        }
        Ok(Self::Rsa { n, e })
    }

    fn p256(x: Option<&str>, y: Option<&str>) -> Result<Self, &'static str> {
        const MALFORMED: &str = "a P-256 key needs `x` and `y` of 32 bytes in base64url";
        let coordinate = |text: Option<&str>| {
            text.and_then(base64url::decode)
                .filter(|bytes| bytes.len() == P256_COORDINATE)
                .ok_or(MALFORMED)
        };
        let mut point = vec![0x04];
        point.extend(coordinate(x)?);
        point.extend(coordinate(y)?);
        Ok(Self::P256 { point })
    }

    fn alg(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RS256",
            Self::P256 { .. } => "ES256",
        }
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Self::P256 { point } => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

impl fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.keys)
            .finish()
    }
}

impl fmt::Debug for Jwk {
    /// Which key, not the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.key.alg())
            .finish()
    }
}

#[cfg(test)]
mod tests;
