//! Single sign-on by token exchange: the request, the answer shapes Ocient leaves open, the
//! identity provider's token as a secret.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::*;

fn sso(token: IdentityToken) -> OcientAuth {
    OcientAuth::new("https://sql-node".parse().unwrap())
        .sso_token_from(move || std::future::ready(Ok(token.clone())))
}

#[tokio::test]
async fn an_id_token_and_an_access_token_each_go_in_their_own_field() {
    let request = login(&sso(IdentityToken::id_token("idp.id.token\n"))).await;
    assert_eq!(request.uri(), "https://sql-node/v1/sso_token");
    assert_eq!(
        request.headers()[http::header::CONTENT_TYPE],
        "application/json"
    );
    assert_eq!(
        body_of(&request),
        serde_json::json!({"id_token": "idp.id.token", "database": "system"}),
        "trimmed, and the database the document requires"
    );
    let request = login(&sso(IdentityToken::access_token("idp-access")).database("sales")).await;
    assert_eq!(
        body_of(&request),
        serde_json::json!({"access_token": "idp-access", "database": "sales"})
    );
}

#[tokio::test]
async fn the_provider_is_asked_at_each_exchange() {
    let asked = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&asked);
    let auth = OcientAuth::new("https://sql-node".parse().unwrap()).sso_token_from(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        std::future::ready(Ok(IdentityToken::id_token(format!("idp-{n}"))))
    });
    assert!(
        auth.can_log_in(),
        "asking whether it can log in asks nobody"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 0);
    assert_eq!(body_of(&login(&auth).await)["id_token"], "idp-1");
    assert_eq!(body_of(&login(&auth).await)["id_token"], "idp-2");
}

fn read_sso(status: u16, body: &str) -> Result<Grant, Error> {
    let auth = sso(IdentityToken::id_token("idp"));
    answered(status, body, |answer| auth.read_answer(answer))
}

fn lifetime(body: &str) -> Duration {
    read_sso(200, body).unwrap().lifetime()
}

#[test]
fn an_answer_like_logins_is_read_like_logins() {
    let body = r#"{"access_token":"ocient-tok","expires_in":1800,"status":{"vendor_code":0}}"#;
    let grant = read_sso(200, body).unwrap();
    assert_eq!(grant.access_token().expose(), "ocient-tok");
    assert_eq!(grant.lifetime(), Duration::from_secs(1800));
}

#[test]
fn an_id_token_only_answer_lives_until_its_exp() {
    let token = jwt_expiring_in(600);
    let grant = read_sso(
        200,
        &format!(r#"{{"id_token":"{token}","database":"sales"}}"#),
    )
    .unwrap();
    assert_eq!(grant.access_token().expose(), token);
    let lifetime = grant.lifetime().as_secs_f64();
    assert!((598.0..=600.0).contains(&lifetime), "{lifetime}");
}

#[test]
fn expires_in_wins_over_exp_and_exp_over_the_default() {
    let token = jwt_expiring_in(600);
    let both = format!(r#"{{"access_token":"{token}","expires_in":90}}"#);
    assert_eq!(lifetime(&both), Duration::from_secs(90));
    let opaque = r#"{"id_token":"mock.1.0123456789abcdef","database":"sales"}"#;
    assert_eq!(lifetime(opaque), answer::UNSTATED_LIFETIME);
    let access_first = r#"{"access_token":"a.b","id_token":"i.d"}"#;
    assert_eq!(
        read_sso(200, access_first).unwrap().access_token().expose(),
        "a.b"
    );
}

#[test]
fn a_missing_token_is_an_invalid_answer_and_a_past_exp_a_clock_to_doubt() {
    for body in [
        r#"{"database":"sales"}"#,
        r#"{"id_token":42}"#,
        r#"{"id_token":""}"#,
    ] {
        let error = read_sso(200, body).unwrap_err();
        assert!(
            matches!(error, Error::InvalidResponse { .. }),
            "{body}: {error}"
        );
    }
    // The server just issued it: an `exp` already past says the clocks disagree, so the
    // token is refreshed on the default schedule (a 401 revokes it if it is really dead).
    let past = {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        format!(
            "e30.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"exp":1000000000}"#)
        )
    };
    let body = format!(r#"{{"id_token":"{past}"}}"#);
    assert_eq!(lifetime(&body), answer::UNSTATED_LIFETIME);
}

#[test]
fn a_refresh_answer_still_needs_expires_in() {
    let auth = sso(IdentityToken::id_token("idp"));
    let body = format!(r#"{{"access_token":"{}"}}"#, jwt_expiring_in(600));
    let answer = Answer::new(Exchange::Refresh, StatusCode::OK, HeaderMap::new(), body);
    let error = auth.read_answer(answer).unwrap_err();
    assert!(
        error.to_string().contains("expires_in is missing"),
        "{error}"
    );
}

#[tokio::test]
async fn the_identity_token_is_a_secret_everywhere() {
    let auth = sso(IdentityToken::access_token("idp-s3cret"));
    assert!(!format!("{auth:?}").contains("idp-s3cret"));
    assert!(format!("{auth:?}").contains(r#"sign_in: Some("sso_token")"#));
    let token = IdentityToken::id_token("idp-s3cret");
    assert_eq!(format!("{token:?}"), "IdentityToken(id_token: <redacted>)");
    login(&auth).await;
    let echo = r#"{"status":{"vendor_code":-1205,"sql_state":"08004","reason":"bad idp-s3cret"}}"#;
    let error = answered(401, echo, |answer| auth.read_answer(answer)).unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("idp-s3cret"), "{shown}");
    assert_eq!(error.vendor_code(), Some(-1205));
    assert_eq!(
        auth.classify(&error),
        FailureKind::Refused,
        "an identity token the node refuses is not asked for again unasked"
    );
}

#[tokio::test]
async fn a_failing_provider_is_a_provider_error() {
    let auth = OcientAuth::new("https://sql-node".parse().unwrap())
        .sso_token_from(|| async { Err("token file missing".into()) });
    let error = Script::default().login(&auth, Duration::from_secs(1)).await;
    let error = error.unwrap_err();
    assert!(matches!(error, Error::Provider { .. }), "{error}");
}
