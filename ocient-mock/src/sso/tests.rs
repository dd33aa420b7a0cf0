use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::SsoAnswer;
use crate::fault::Fault;
use crate::mock::MockOcient;
use crate::state::Counters;
use crate::test_support::*;

/// The answer's member names, sorted.
fn members(answer: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = answer
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn a_fixed_id_token_signs_in_like_a_login() {
    let mock = MockOcient::new().sso_tokens(["idp-token"]);
    let body = json!({"database": "sales", "id_token": "idp-token"});
    let (status, answer) = exchange(&mock, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        members(&answer),
        [
            "access_token",
            "database",
            "expires_in",
            "status",
            "username"
        ]
    );
    assert_eq!(answer["username"], "sso-user");
    assert_eq!(answer["database"], "sales");
    assert_eq!(answer["expires_in"], 3600);
    assert_eq!(
        answer["status"],
        json!({"reason": "Authentication successful", "sql_state": "00000", "vendor_code": 0})
    );
    let token = token_of(&answer);
    assert_eq!(generation_of(&token), 1);
    assert_eq!(execute(&mock, &token).await, (StatusCode::OK, 0));
    let (status, refreshed) = refresh(&mock, &token).await;
    assert_eq!(
        (status, &refreshed["username"]),
        (StatusCode::OK, &json!("sso-user"))
    );
    assert_eq!(
        refreshed["database"], "sales",
        "the database is the token's"
    );
    mock.revoke_all();
    assert_eq!(execute(&mock, &token).await.1, -1205);
}

#[tokio::test]
async fn a_fixed_access_token_signs_in_alike_and_the_database_defaults_to_system() {
    let mock = MockOcient::new().sso_tokens(["one", "two"]);
    let (status, answer) = exchange(&mock, json!({"access_token": "two"})).await;
    assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
    assert_eq!(answer["database"], "system");
    assert_eq!(execute(&mock, &token_of(&answer)).await.1, 0);
    let counters = mock.counters();
    assert_eq!((counters.sso_exchanges, counters.logins), (1, 0));
    assert_eq!(counters.token_requests(), 1);
}

#[tokio::test]
async fn both_tokens_or_neither_is_a_bad_request() {
    let mock = MockOcient::new().sso_tokens(["idp-token"]);
    for body in [
        json!({"database": "system", "id_token": "idp-token", "access_token": "idp-token"}),
        json!({"database": "system"}),
        json!({"id_token": null, "access_token": null}),
    ] {
        let (status, answer) = exchange(&mock, body.clone()).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::BAD_REQUEST, -1),
            "{body}"
        );
        assert_eq!(answer["status"]["sql_state"], "22000");
    }
    // The spec's property name has a stray tab; the real one is `access_token`.
    let tabbed = json!({"access_token\t": "idp-token"});
    assert_eq!(exchange(&mock, tabbed).await.0, StatusCode::BAD_REQUEST);
    let counters = mock.counters();
    assert_eq!(
        (counters.sso_exchanges, counters.failed_token_requests),
        (4, 4)
    );
    assert_eq!(mock.current_generation(), 0);
}

#[tokio::test]
async fn bad_exchange_bodies_are_rejected_not_panicked_on() {
    let mock = MockOcient::new().sso_tokens(["idp-token"]);
    for (body, expected) in [
        ("", StatusCode::BAD_REQUEST),
        ("{not json", StatusCode::BAD_REQUEST),
        (r#"{"id_token": 7}"#, StatusCode::BAD_REQUEST),
        ("[]", StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) =
            send(&mock, request(Method::POST, "/v1/sso_token", None, body)).await;
        assert_eq!((status, vendor_code(&answer)), (expected, -1), "{body}");
    }
    let mut plain = sso_request(&json!({"id_token": "idp-token"}));
    plain.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "text/plain".parse().expect("header"),
    );
    assert_eq!(
        send(&mock, plain).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let get = request(Method::GET, "/v1/sso_token", None, "");
    assert_eq!(send(&mock, get).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_refused_token_is_401_1205_and_never_echoed() {
    let secret = "eyJ-not-a-token-we-know";
    let mock = MockOcient::new().sso_tokens(["idp-token"]);
    let response = call(&mock, sso_request(&json!({"id_token": secret}))).await;
    assert!(!format!("{:?}", response.headers()).contains(secret));
    let (status, answer) = json_of(response).await;
    assert_eq!(
        (status, vendor_code(&answer)),
        (StatusCode::UNAUTHORIZED, -1205)
    );
    assert_eq!(answer["status"]["sql_state"], "08004");
    assert!(!answer.to_string().contains(secret), "{answer}");
    assert!(!format!("{mock:?}").contains("idp-token"), "{mock:?}");

    mock.lock().knobs.errors_in_band = true;
    let (status, answer) = exchange(&mock, json!({"access_token": secret})).await;
    assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, -1205));
    assert_eq!(mock.counters().failed_token_requests, 2);
}

#[tokio::test]
async fn new_fixed_tokens_replace_the_old_but_issued_tokens_stay() {
    let mock = MockOcient::new().sso_tokens(["old"]);
    let (_, answer) = exchange(&mock, json!({"id_token": "old"})).await;
    let issued = token_of(&answer);
    mock.set_sso_tokens(["new"]);
    assert_eq!(
        exchange(&mock, json!({"id_token": "old"})).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        exchange(&mock, json!({"id_token": "new"})).await.0,
        StatusCode::OK
    );
    assert_eq!(execute(&mock, &issued).await.1, 0);
    mock.set_sso_tokens(Vec::<String>::new());
    assert_eq!(
        exchange(&mock, json!({"id_token": "new"})).await.1["status"]["vendor_code"],
        -1205
    );
}

#[tokio::test]
async fn id_token_with_exp_answers_a_jwt_shaped_token_only() {
    let lifetime = Duration::from_secs(900);
    let mock = MockOcient::new()
        .token_lifetime(lifetime)
        .sso_tokens(["idp-token"])
        .sso_answer(SsoAnswer::IdTokenWithExp);
    let (status, answer) =
        exchange(&mock, json!({"id_token": "idp-token", "database": "db1"})).await;
    let expected_exp = (SystemTime::now() + lifetime)
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(members(&answer), ["database", "id_token"]);
    assert_eq!(answer["database"], "db1");
    let token = answer["id_token"].as_str().expect("id_token").to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let claims = jwt_claims(&token);
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(
        exp.abs_diff(expected_exp) <= 1,
        "exp {exp}, expected {expected_exp}"
    );
    assert_eq!(claims["sub"], "sso-user");
    assert_eq!(generation_of(claims["jti"].as_str().expect("jti")), 1);

    assert_eq!(execute(&mock, &token).await, (StatusCode::OK, 0));
    let (status, refreshed) = refresh(&mock, &token).await;
    assert_eq!((status, vendor_code(&refreshed)), (StatusCode::OK, 0));
    assert_eq!(refreshed["username"], "sso-user");
}

#[tokio::test]
async fn id_token_opaque_says_nothing_of_its_lifetime() {
    let mock = MockOcient::new()
        .sso_tokens(["idp-token"])
        .sso_answer(SsoAnswer::IdTokenOpaque);
    let (status, answer) = exchange(&mock, json!({"access_token": "idp-token"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(members(&answer), ["database", "id_token"]);
    let token = answer["id_token"].as_str().expect("id_token");
    assert!(token.starts_with("mock.1."), "{token}");
    assert_eq!(execute(&mock, token).await.1, 0);
    assert_eq!(vendor_code(&refresh(&mock, token).await.1), 0);

    mock.set_sso_answer(SsoAnswer::LikeLogin);
    let (_, answer) = exchange(&mock, json!({"access_token": "idp-token"})).await;
    assert_eq!(answer["expires_in"], 3600);
}

#[tokio::test(start_paused = true)]
async fn an_exchanged_token_expires_and_its_refresh_lifetime_starts_at_the_exchange() {
    let mock = MockOcient::new()
        .token_lifetime(Duration::from_secs(10))
        .refresh_lifetime(Duration::from_secs(60))
        .sso_tokens(["idp-token"]);
    let (_, answer) = exchange(&mock, json!({"id_token": "idp-token"})).await;
    let token = token_of(&answer);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(execute(&mock, &token).await.1, -1208);
    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(vendor_code(&refresh(&mock, &token).await.1), -733);
}

#[tokio::test]
async fn token_request_faults_hit_exchanges_and_device_grants_too() {
    let mock = MockOcient::new().sso_tokens(["idp-token"]);
    mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 2);
    let (status, answer) = exchange(&mock, json!({"id_token": "idp-token"})).await;
    assert_eq!(
        (status, vendor_code(&answer)),
        (StatusCode::SERVICE_UNAVAILABLE, -1)
    );
    let grant = request(Method::POST, "/v1/sso_device_grant", None, "");
    assert_eq!(send(&mock, grant).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        exchange(&mock, json!({"id_token": "idp-token"})).await.0,
        StatusCode::OK
    );
    let expected = Counters {
        sso_exchanges: 2,
        device_grants: 1,
        failed_token_requests: 2,
        peak_token_requests_in_flight: 1,
        ..Counters::default()
    };
    assert_eq!(mock.counters(), expected);
    assert_eq!(mock.counters().token_requests(), 3);

    // The single sign-on codes get their usual reasons when injected too.
    mock.fail_token_requests(
        Fault::VendorCode {
            http: StatusCode::UNAUTHORIZED,
            vendor_code: -1207,
            sql_state: "08004",
        },
        1,
    );
    let (_, answer) = exchange(&mock, json!({"id_token": "idp-token"})).await;
    assert_eq!(
        answer["status"]["reason"],
        "token signed by an unknown issuer"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_delays_exchanges_on_the_tokio_clock() {
    let mock = MockOcient::new()
        .sso_tokens(["idp-token"])
        .latency(Duration::from_secs(2));
    let started = tokio::time::Instant::now();
    let (status, _) = exchange(&mock, json!({"id_token": "idp-token"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}
