use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::TestIdentityProvider;
use crate::base64url::decode as base64url;
use crate::test_support::jwt_claims;

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().expect("a header");
    serde_json::from_slice(&base64url(header).expect("base64url")).expect("JSON")
}

#[test]
fn issued_tokens_carry_the_documented_header_and_claims() {
    let idp = TestIdentityProvider::new("https://idp.example");
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let token = idp.issue("jdoe", Duration::from_secs(300));
    assert_eq!(
        header_of(&token),
        json!({"alg": "ES256", "typ": "JWT", "kid": idp.kid()})
    );
    let claims = jwt_claims(&token);
    let iat = claims["iat"].as_u64().expect("iat");
    assert!(iat.abs_diff(before) <= 1, "iat {iat}, now {before}");
    assert_eq!(
        claims,
        json!({"iss": "https://idp.example", "sub": "jdoe", "aud": "ocient",
               "iat": iat, "nbf": iat, "exp": iat + 300})
    );
    let signature = token.rsplit('.').next().and_then(base64url);
    assert_eq!(signature.map(|bytes| bytes.len()), Some(64), "r || s");
    let other = idp.clone().audience("reporting");
    assert_eq!(
        jwt_claims(&other.issue("x", Duration::ZERO))["aud"],
        "reporting"
    );
}

#[test]
fn its_key_set_publishes_the_key_it_signs_with() {
    let idp = TestIdentityProvider::new("https://idp.example");
    let jwks: Value = serde_json::from_str(&idp.jwks()).expect("JSON");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    for (member, value) in [
        ("kty", "EC"),
        ("crv", "P-256"),
        ("alg", "ES256"),
        ("use", "sig"),
    ] {
        assert_eq!(key[member], value, "{member}");
    }
    assert_eq!(key["kid"], idp.kid());
    for coordinate in ["x", "y"] {
        let bytes = key[coordinate].as_str().and_then(base64url);
        assert_eq!(bytes.map(|bytes| bytes.len()), Some(32), "{coordinate}");
    }
    // The set, read as a relying party reads it, verifies what it signs.
    let token = idp.issue("jdoe", Duration::from_secs(60));
    let (signed, signature) = token.rsplit_once('.').expect("three parts");
    let trusted = crate::TrustedIssuer::new(idp.issuer(), &idp.jwks()).expect("key set");
    let signature = base64url(signature).expect("base64url");
    assert!(trusted.verifies("ES256", Some(idp.kid()), signed.as_bytes(), &signature));
    assert!(!trusted.verifies("ES256", Some("other"), signed.as_bytes(), &signature));
}

#[test]
fn each_provider_has_a_key_of_its_own_and_clones_share_it() {
    let one = TestIdentityProvider::new("https://idp.example");
    let two = TestIdentityProvider::new("https://idp.example");
    assert_ne!(one.kid(), two.kid());
    assert_ne!(one.jwks(), two.jwks());
    assert_eq!(one.clone().jwks(), one.jwks());
}

#[test]
fn debug_output_never_shows_the_key() {
    let idp = TestIdentityProvider::new("https://idp.example");
    let printed = format!("{idp:?}");
    let jwks: Value = serde_json::from_str(&idp.jwks()).expect("JSON");
    assert!(printed.contains("https://idp.example") && printed.contains(idp.kid()));
    assert!(!printed.contains(jwks["keys"][0]["x"].as_str().expect("x")));
    assert!(printed.ends_with(".. }"), "{printed}");
}
