//! [`TestIdentityProvider`]: an OpenID Connect identity provider's signing
//! side in a struct, for tests and demos that have no real one.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::base64url;
use crate::jwks::TrustedIssuer;

/// The audience tokens are for unless [`TestIdentityProvider::audience`] says otherwise.
const DEFAULT_AUDIENCE: &str = "ocient";

/// An identity provider that signs JWTs with a P-256 key (ES256) it
/// generates at construction, and publishes that key as a JSON Web Key Set.
///
/// [`issue`](TestIdentityProvider::issue) makes the ID or access token a
/// real provider would hand a client; [`trusted_issuer`](TestIdentityProvider::trusted_issuer)
/// is what a [`MockOcient`](crate::MockOcient) needs to accept it.
/// [`TestIdentityProvider::serve`] puts one on a loopback port with a token
/// endpoint, for a client that fetches its own tokens. Cheap to clone: clones
/// sign with the same key.
///
/// # Example
///
/// ```rust
/// use std::time::Duration;
///
/// use ocient_mock::{MockOcient, TestIdentityProvider};
///
/// let idp = TestIdentityProvider::new("https://idp.example");
/// let mock = MockOcient::new().trust_issuer(idp.trusted_issuer());
/// let id_token = idp.issue("jdoe", Duration::from_secs(300));
/// // POST {"id_token": id_token} to /v1/sso_token: an Ocient token for `jdoe`.
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "sso")))]
#[derive(Clone)]
pub struct TestIdentityProvider {
    issuer: String,
    audience: String,
    kid: String,
    key: Arc<EcdsaKeyPair>,
    rng: SystemRandom,
}

impl TestIdentityProvider {
    /// A provider whose tokens carry `iss` = `issuer` and `aud` = `"ocient"`,
    /// signed by a key generated here and named by a `kid` derived from it.
    ///
    /// # Panics
    ///
    /// When the operating system's random number generator fails.
    pub fn new(issuer: impl Into<String>) -> Self {
        let rng = SystemRandom::new();
        let signing = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng)
            .expect("the OS random number generator failed to make a P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng)
            .expect("ring reads back the PKCS#8 it just wrote");
        // A key's own hash: a new key, a new kid, as after a real rotation.
        let thumb = digest(&SHA256, key.public_key().as_ref());
        let kid = base64url::encode(&thumb.as_ref()[..12]);
        Self {
            issuer: issuer.into(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            kid,
            key: Arc::new(key),
            rng,
        }
    }

    /// The `aud` of the tokens it issues from now on; `"ocient"` by default.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A signed JWT for `subject`: header `alg` ES256, `typ` JWT and its
    /// `kid`; claims `iss`, `sub`, `aud`, and `iat` and `nbf` now and `exp`
    /// `lifetime` later, in wall-clock Unix seconds (whole seconds, so a
    /// lifetime of zero gives a token that is expired already).
    ///
    /// # Panics
    ///
    /// When the operating system's random number generator fails.
    pub fn issue(&self, subject: &str, lifetime: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(lifetime.as_secs()),
        });
        self.sign(&header, &claims)
    }

    /// `header` and `claims` as they are, signed with its key: tests make
    /// tokens no well-behaved provider would with it.
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            base64url::encode(header.to_string()),
            base64url::encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, signed.as_bytes())
            .expect("the OS random number generator failed to sign");
        format!("{signed}.{}", base64url::encode(signature))
    }

    #[cfg(test)]
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// Its JSON Web Key Set: `{"keys": [{"kty": "EC", "crv": "P-256", "x",
    /// "y", "kid", "alg": "ES256", "use": "sig"}]}`.
    pub fn jwks(&self) -> String {
        // The public key is uncompressed: 0x04, then x, then y, of equal length.
        let point = self.key.public_key().as_ref();
        let (x, y) = point[1..].split_at((point.len() - 1) / 2);
        json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": base64url::encode(x),
            "y": base64url::encode(y),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        }]})
        .to_string()
    }

    /// Its issuer, key and audience, for
    /// [`MockOcient::trust_issuer`](crate::MockOcient::trust_issuer).
    pub fn trusted_issuer(&self) -> TrustedIssuer {
        let point = self.key.public_key().as_ref();
        TrustedIssuer::p256(self.issuer.clone(), self.kid.clone(), point)
            .audience(self.audience.clone())
    }
}

impl fmt::Debug for TestIdentityProvider {
    /// Names only: never the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIdentityProvider")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
