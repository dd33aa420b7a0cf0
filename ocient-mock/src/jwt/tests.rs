//! JWTs at `/v1/sso_token`, from a [`TestIdentityProvider`] and from an
//! RS256 vector made outside this crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::{json, Value};

use crate::base64url::encode as base64url_encode;
use crate::idp::TestIdentityProvider;
use crate::jwks::TrustedIssuer;
use crate::mock::MockOcient;
use crate::test_support::*;
use crate::wire::ApiStatus;

/// An RS256 vector made once with `openssl genrsa -out key.pem 2048`, then
/// Python's `cryptography` (`key.sign(input, PKCS1v15(), SHA256())`) over
/// the header and claims below; the private key was thrown away. `n` and `e`
/// are the key's public numbers, big-endian, base64url.
const RSA_ISSUER: &str = "https://rsa.idp.example";
const RSA_JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"rsa-test-2026","alg":"RS256","use":"sig","n":"lTm9wnOcG6u81BnIPn0iNRyrQ50HxMsLW5fMJ8t3LsSyNvqT8-1q4lwugJBFo3Sd_OGmJtS7XI5AqCGxUVhJsdJXK0c2U3Rmpo_7-KYcoi99tL5hK-6KU7DNIExUHqJpo6dc288AYR2Q8M-BfRj8ePeGGBqsI5HU0GJ2UH25rYoWFBBUiDdPd6IsjtQGz8p1gZZ0neZ3RH9xx_uyM29KEkpHjva52uFRMrU9H9AL9XH7XeQS7Ivo34PYCZOkLofrLwslHL93NWqcdYQlisZZYp1HzdqsJDD7pQ86eiN3drGVSSFBy-jzg8WYb8IH2u7L18WDy_sNme8nBMmiXscoEQ","e":"AQAB"}]}"#;
/// Header `{"alg":"RS256","typ":"JWT","kid":"rsa-test-2026"}`, claims
/// `{"iss":"https://rsa.idp.example","sub":"rsa-user","aud":["ocient","reporting"],
/// "iat":1767225600,"nbf":1767225600,"exp":4102444800}`: valid until 2100.
pub(crate) const RSA_JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYS10ZXN0LTIwMjYifQ.eyJpc3MiOiJodHRwczovL3JzYS5pZHAuZXhhbXBsZSIsInN1YiI6InJzYS11c2VyIiwiYXVkIjpbIm9jaWVudCIsInJlcG9ydGluZyJdLCJpYXQiOjE3NjcyMjU2MDAsIm5iZiI6MTc2NzIyNTYwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.AjPsnhoOBsXAKtUhZgQrg9qnZ8WGpg38-79pdxgESqrV6sIAUyonSQvebrCxPfZz7CDgubdc1S-Wv9P2plG88SnCMpSeJ35zc7NhYFc9toY3QEUX6rWxnco0xjFBYsKlSICIP1-pesHV9dtmzP6CAvPIylr2XJKajVcVDCheMp-5t897u3gLnp14f6nLGdzBbfSEVRoPHG8nJKBBMRW30Gf7rNEnIsqXu50hTLp9NmjSUQJ6amcndiGclmCwQmMGZeHN9d16RsnSDXXdoWQd7l2JgFMunS2hGOPwxYvgeb3FQcDaRNg9ANln8oc5kZTqFysIGTwplyGEGIKcft1qNA";

const HOUR: Duration = Duration::from_secs(3600);

fn idp() -> TestIdentityProvider {
    TestIdentityProvider::new("https://idp.example")
}

fn trusting(idp: &TestIdentityProvider) -> MockOcient {
    MockOcient::new().trust_issuer(idp.trusted_issuer())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Claims as [`TestIdentityProvider::issue`] makes them, valid for an hour.
fn claims(idp: &TestIdentityProvider) -> Value {
    let now = now();
    json!({"iss": idp.issuer(), "sub": "jdoe", "aud": "ocient", "iat": now, "nbf": now, "exp": now + 3600})
}

fn es256_header(idp: &TestIdentityProvider) -> Value {
    json!({"alg": "ES256", "typ": "JWT", "kid": idp.kid()})
}

/// The exchange's HTTP status and vendor code, checking the token is not
/// echoed whatever the answer.
async fn sign_in_with(mock: &MockOcient, token: &str) -> (StatusCode, i64) {
    let (status, answer) = exchange(mock, json!({"id_token": token})).await;
    assert!(
        token.is_empty() || !answer.to_string().contains(token),
        "{answer}"
    );
    let vendor_code = vendor_code(&answer);
    if vendor_code == 0 {
        assert_eq!(execute(mock, &token_of(&answer)).await.1, 0);
    }
    (status, vendor_code)
}

/// `token` with its part at `index` replaced.
fn with_part(token: &str, index: usize, part: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = part;
    parts.join(".")
}

#[tokio::test]
async fn a_test_provider_jwt_signs_in_its_subject() {
    let idp = idp();
    let mock = trusting(&idp);
    let token = idp.issue("jdoe", HOUR);
    let (status, answer) = exchange(&mock, json!({"id_token": token, "database": "d"})).await;
    assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
    assert_eq!(
        (&answer["username"], &answer["database"]),
        (&json!("jdoe"), &json!("d"))
    );
    let (status, answer) = exchange(&mock, json!({"access_token": idp.issue("ann", HOUR)})).await;
    assert_eq!(
        (status, &answer["username"]),
        (StatusCode::OK, &json!("ann"))
    );
    assert_eq!(execute(&mock, &token_of(&answer)).await.1, 0);
    assert_eq!(mock.counters().sso_exchanges, 2);
}

#[tokio::test]
async fn an_rs256_jwt_from_a_published_key_set_signs_in() {
    let trusted = TrustedIssuer::new(RSA_ISSUER, RSA_JWKS).expect("the vector's key set");
    let mock = MockOcient::new().trust_issuer(trusted.clone().audience("reporting"));
    let (status, answer) = exchange(&mock, json!({"id_token": RSA_JWT})).await;
    assert_eq!(
        (status, &answer["username"]),
        (StatusCode::OK, &json!("rsa-user"))
    );

    // One bit of the signature off, and it is no longer the issuer's.
    let signature = RSA_JWT.rsplit('.').next().expect("a signature");
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = with_part(RSA_JWT, 2, &format!("{flipped}{}", &signature[1..]));
    assert_eq!(
        sign_in_with(&mock, &forged).await,
        (StatusCode::UNAUTHORIZED, -1206)
    );
    let mock = MockOcient::new().trust_issuer(trusted.audience("billing"));
    assert_eq!(
        sign_in_with(&mock, RSA_JWT).await.1,
        -1205,
        "aud holds no billing"
    );
}

#[tokio::test]
async fn an_rsa_modulus_with_a_leading_zero_still_verifies() {
    let mut jwks: Value = serde_json::from_str(RSA_JWKS).expect("JSON");
    let n = jwks["keys"][0]["n"].as_str().expect("n");
    let mut padded = vec![0];
    padded.extend(crate::base64url::decode(n).expect("base64url"));
    jwks["keys"][0]["n"] = json!(base64url_encode(padded));
    let trusted = TrustedIssuer::new(RSA_ISSUER, &jwks.to_string()).expect("key set");
    let mock = MockOcient::new().trust_issuer(trusted);
    assert_eq!(sign_in_with(&mock, RSA_JWT).await, (StatusCode::OK, 0));
}

#[tokio::test]
async fn another_issuer_is_1207() {
    let idp = idp();
    let elsewhere = TrustedIssuer::new("https://elsewhere.example", &idp.jwks()).expect("jwks");
    let mock = MockOcient::new().trust_issuer(elsewhere);
    let token = idp.issue("jdoe", HOUR);
    assert_eq!(
        sign_in_with(&mock, &token).await,
        (StatusCode::UNAUTHORIZED, -1207)
    );
    let (_, answer) = exchange(&mock, json!({"id_token": token})).await;
    assert_eq!(answer["status"]["sql_state"], "08004");

    let mock = mock.errors_in_band(true);
    assert_eq!(sign_in_with(&mock, &token).await, (StatusCode::OK, -1207));
    assert_eq!(mock.counters().failed_token_requests, 3);
}

#[tokio::test]
async fn another_audience_is_refused_unless_none_is_required() {
    let idp = idp().audience("someone-else");
    let token = idp.issue("jdoe", HOUR);
    let strict = MockOcient::new().trust_issuer(idp.trusted_issuer().audience("ocient"));
    assert_eq!(
        sign_in_with(&strict, &token).await,
        (StatusCode::UNAUTHORIZED, -1205)
    );
    let lax = TrustedIssuer::new(idp.issuer(), &idp.jwks()).expect("jwks");
    let lax = MockOcient::new().trust_issuer(lax);
    assert_eq!(sign_in_with(&lax, &token).await.0, StatusCode::OK);
    assert_eq!(
        sign_in_with(&trusting(&idp), &token).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_expired_jwt_is_1208() {
    let idp = idp();
    let mock = trusting(&idp);
    let at_once = idp.issue("jdoe", Duration::ZERO);
    assert_eq!(
        sign_in_with(&mock, &at_once).await,
        (StatusCode::UNAUTHORIZED, -1208)
    );
    let mut past = claims(&idp);
    past["exp"] = json!(now() - 60);
    let token = idp.sign(&es256_header(&idp), &past);
    assert_eq!(sign_in_with(&mock, &token).await.1, -1208);
    past["exp"] = json!(now() as f64 + 60.5);
    let token = idp.sign(&es256_header(&idp), &past);
    assert_eq!(sign_in_with(&mock, &token).await.1, 0, "a fractional exp");
}

#[tokio::test]
async fn a_tampered_payload_or_signature_is_1206() {
    let idp = idp();
    let mock = trusting(&idp);
    let token = idp.issue("jdoe", HOUR);
    let mut admin = claims(&idp);
    admin["sub"] = json!("admin");
    let tampered = with_part(&token, 1, &base64url_encode(admin.to_string()));
    assert_eq!(
        sign_in_with(&mock, &tampered).await,
        (StatusCode::UNAUTHORIZED, -1206)
    );
    let other = TestIdentityProvider::new(idp.issuer());
    assert_eq!(
        sign_in_with(&mock, &other.issue("jdoe", HOUR)).await.1,
        -1206
    );
    for signature in ["", "!!not-base64!!", "AAAA"] {
        let unsigned = with_part(&token, 2, signature);
        assert_eq!(
            sign_in_with(&mock, &unsigned).await.1,
            -1206,
            "{signature:?}"
        );
    }
    assert_eq!(mock.current_generation(), 0);
}

#[tokio::test]
async fn alg_none_and_other_algorithms_are_refused() {
    let idp = idp();
    let mock = trusting(&idp);
    for alg in ["none", "None", "HS256", "RS256", "ES384", "PS256"] {
        // Signed with the provider's own key, but claiming another algorithm.
        let header = json!({"alg": alg, "typ": "JWT", "kid": idp.kid()});
        let token = idp.sign(&header, &claims(&idp));
        assert_eq!(
            sign_in_with(&mock, &token).await,
            (StatusCode::UNAUTHORIZED, -1206),
            "{alg}"
        );
        let unsigned = with_part(&token, 2, "");
        assert_eq!(
            sign_in_with(&mock, &unsigned).await.1,
            -1206,
            "{alg} unsigned"
        );
    }
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": idp.kid()});
    let token = idp.sign(&header, &claims(&idp));
    assert_eq!(sign_in_with(&mock, &token).await.1, 0, "the same, honest");
}

#[tokio::test]
async fn the_kid_picks_the_key_and_without_one_each_key_is_tried() {
    let (first, second) = (idp(), idp());
    let mut jwks: Value = serde_json::from_str(&first.jwks()).expect("JSON");
    let second_jwks: Value = serde_json::from_str(&second.jwks()).expect("JSON");
    jwks["keys"]
        .as_array_mut()
        .expect("keys")
        .push(second_jwks["keys"][0].clone());
    let both = TrustedIssuer::new(first.issuer(), &jwks.to_string()).expect("two keys");
    let mock = MockOcient::new().trust_issuer(both);
    assert_eq!(
        sign_in_with(&mock, &first.issue("a", HOUR)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        sign_in_with(&mock, &second.issue("b", HOUR)).await.0,
        StatusCode::OK
    );

    let no_kid = json!({"alg": "ES256", "typ": "JWT"});
    let token = second.sign(&no_kid, &claims(&second));
    assert_eq!(sign_in_with(&mock, &token).await.0, StatusCode::OK);
    let wrong_kid = json!({"alg": "ES256", "kid": first.kid()});
    let token = second.sign(&wrong_kid, &claims(&second));
    assert_eq!(sign_in_with(&mock, &token).await.1, -1206);
    let unknown_kid = json!({"alg": "ES256", "kid": "rotated-away"});
    let token = first.sign(&unknown_kid, &claims(&first));
    assert_eq!(sign_in_with(&mock, &token).await.1, -1206);
}

#[tokio::test]
async fn trusting_an_issuer_again_replaces_its_keys() {
    let (old, new) = (idp(), idp());
    let mock = trusting(&old).trust_issuer(new.trusted_issuer());
    assert_eq!(sign_in_with(&mock, &old.issue("jdoe", HOUR)).await.1, -1206);
    assert_eq!(sign_in_with(&mock, &new.issue("jdoe", HOUR)).await.1, 0);
    let other = TestIdentityProvider::new("https://other.example");
    let mock = mock.trust_issuer(other.trusted_issuer());
    assert_eq!(sign_in_with(&mock, &other.issue("x", HOUR)).await.1, 0);
    assert_eq!(sign_in_with(&mock, &new.issue("y", HOUR)).await.1, 0);
    let printed = format!("{mock:?}");
    assert!(printed.contains("https://other.example"), "{printed}");
}

#[tokio::test]
async fn nbf_may_run_30_seconds_ahead_and_no_more() {
    let idp = idp();
    let mock = trusting(&idp);
    let mut early = claims(&idp);
    early["nbf"] = json!(now() + 20);
    let token = idp.sign(&es256_header(&idp), &early);
    assert_eq!(sign_in_with(&mock, &token).await.1, 0);
    early["nbf"] = json!(now() + 120);
    let token = idp.sign(&es256_header(&idp), &early);
    assert_eq!(
        sign_in_with(&mock, &token).await,
        (StatusCode::UNAUTHORIZED, -1205)
    );
}

#[tokio::test]
async fn a_jwt_missing_a_claim_or_not_a_jwt_is_1205() {
    let idp = idp();
    let mock = trusting(&idp);
    for missing in ["iss", "sub", "exp"] {
        let mut partial = claims(&idp);
        partial.as_object_mut().expect("object").remove(missing);
        let token = idp.sign(&es256_header(&idp), &partial);
        assert_eq!(sign_in_with(&mock, &token).await.1, -1205, "no {missing}");
    }
    let mut odd = claims(&idp);
    odd["exp"] = json!("tomorrow");
    let token = idp.sign(&es256_header(&idp), &odd);
    assert_eq!(sign_in_with(&mock, &token).await.1, -1205, "a string exp");
    let good = idp.issue("jdoe", HOUR);
    let not_json = base64url_encode("not json");
    for token in [
        "",
        "plain",
        "a.b",
        "a.b.c.d",
        "%%%.%%%.%%%",
        &with_part(&good, 0, &not_json),
        &with_part(&good, 1, &not_json),
        &format!("{good}.extra"),
    ] {
        assert_eq!(sign_in_with(&mock, token).await.1, -1205, "{token:.30}");
    }
}

#[tokio::test]
async fn with_no_issuer_trusted_a_jwt_is_as_unknown_as_any_string() {
    let idp = idp();
    let token = idp.issue("jdoe", HOUR);
    let mock = MockOcient::new().sso_tokens(["fixed"]);
    assert_eq!(
        sign_in_with(&mock, &token).await,
        (StatusCode::UNAUTHORIZED, -1205)
    );
    // Fixed tokens still work beside an issuer.
    let mock = mock.trust_issuer(idp.trusted_issuer());
    let (status, answer) = exchange(&mock, json!({"id_token": "fixed"})).await;
    assert_eq!(
        (status, &answer["username"]),
        (StatusCode::OK, &json!("sso-user"))
    );
    assert_eq!(sign_in_with(&mock, "unfixed").await.1, -1205);
}

// `exp` gets no leeway: valid up to the second it names, expired from it on.
#[test]
fn a_jwt_expires_exactly_at_its_exp() {
    let idp = idp();
    let token = idp.issue("jdoe", HOUR);
    let exp = jwt_claims(&token)["exp"].as_u64().expect("exp");
    let at = |offset: Duration, later: bool| {
        let exp = UNIX_EPOCH + Duration::from_secs(exp);
        let now = if later { exp + offset } else { exp - offset };
        super::subject(&[idp.trusted_issuer()], &token, now)
    };
    assert_eq!(at(Duration::from_millis(1), false), Ok("jdoe".to_owned()));
    assert_eq!(at(Duration::ZERO, true), Err(ApiStatus::TOKEN_EXPIRED));
}
