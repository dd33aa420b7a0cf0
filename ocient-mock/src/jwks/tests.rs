use serde_json::{json, Value};

use super::{JwksError, TrustedIssuer};
use crate::idp::TestIdentityProvider;

/// A P-256 key set as a provider publishes it, and its one key.
fn p256_set() -> (Value, Value) {
    let idp = TestIdentityProvider::new("https://idp.example");
    let set: Value = serde_json::from_str(&idp.jwks()).expect("JSON");
    let key = set["keys"][0].clone();
    (set, key)
}

fn read(set: &Value) -> Result<TrustedIssuer, JwksError> {
    TrustedIssuer::new("https://idp.example", &set.to_string())
}

#[test]
fn keys_of_other_kinds_uses_and_algorithms_are_left_out() {
    let (_, p256) = p256_set();
    let mut for_encryption = p256.clone();
    for_encryption["use"] = json!("enc");
    let mut for_es384 = p256.clone();
    for_es384["alg"] = json!("ES384");
    let set = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "oct", "k": "c2VjcmV0"},
        for_encryption,
        for_es384,
        p256,
    ]});
    let trusted = read(&set).expect("one usable key");
    let printed = format!("{trusted:?}");
    assert_eq!(printed.matches("Jwk {").count(), 1, "{printed}");
    assert!(printed.contains(r#"alg: "ES256""#), "{printed}");
}

#[test]
fn a_set_with_no_usable_key_is_refused() {
    for set in [
        json!({"keys": []}),
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519"}]}),
    ] {
        assert_eq!(read(&set).err(), Some(JwksError::NoUsableKey), "{set}");
    }
}

#[test]
fn what_is_not_a_key_set_is_refused() {
    for text in ["", "not json", "[]", r#"{"keys": 5}"#, r#"{"key": []}"#] {
        let outcome = TrustedIssuer::new("https://idp.example", text);
        assert_eq!(outcome.err(), Some(JwksError::NotAKeySet), "{text:?}");
    }
}

#[test]
fn a_malformed_rsa_or_p256_key_is_named_by_its_index() {
    let (_, p256) = p256_set();
    let short = {
        let mut key = p256.clone();
        key["x"] = json!("AAAA");
        key
    };
    let cases = [
        (
            json!({"kty": "RSA", "e": "AQAB"}),
            "an RSA key needs `n` and `e` in base64url",
        ),
        (
            json!({"kty": "RSA", "n": "AAAA", "e": "AQAB"}),
            "an RSA key needs `n` and `e` in base64url",
        ),
        (
            json!({"kty": "RSA", "n": "AQAB", "e": "*"}),
            "an RSA key needs `n` and `e` in base64url",
        ),
        (
            short,
            "a P-256 key needs `x` and `y` of 32 bytes in base64url",
        ),
        (json!({"kty": 7}), "not a JSON Web Key"),
        (json!("a string"), "not a JSON Web Key"),
    ];
    for (bad, reason) in cases {
        let set = json!({"keys": [p256.clone(), bad.clone()]});
        let expected = JwksError::InvalidKey { index: 1, reason };
        assert_eq!(read(&set).err(), Some(expected), "{bad}");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let invalid = JwksError::InvalidKey {
        index: 2,
        reason: "not a JSON Web Key",
    };
    assert_eq!(invalid.to_string(), "key 2: not a JSON Web Key");
    assert_eq!(
        JwksError::NotAKeySet.to_string(),
        "not a JSON object with a `keys` array"
    );
    assert_eq!(
        JwksError::NoUsableKey.to_string(),
        "no RS256 or ES256 signing key"
    );
}

#[test]
fn an_issuer_names_itself_and_its_audience_in_debug() {
    let (set, _) = p256_set();
    let trusted = read(&set).expect("key set").audience("ocient");
    assert_eq!(trusted.issuer(), "https://idp.example");
    let printed = format!("{trusted:?}");
    assert!(printed.contains(r#"audience: Some("ocient")"#), "{printed}");
}
