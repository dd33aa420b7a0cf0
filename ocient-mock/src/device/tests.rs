use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::DeviceApproval;
use crate::ids::USER_CODE_LETTERS;
use crate::mock::MockOcient;
use crate::state::Counters;
use crate::test_support::*;

async fn grant(mock: &MockOcient, body: &str) -> (StatusCode, Value) {
    send(
        mock,
        request(Method::POST, "/v1/sso_device_grant", None, body),
    )
    .await
}

/// A fresh grant's user code.
async fn user_code(mock: &MockOcient) -> String {
    let (status, answer) = grant(mock, "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["user_code"].as_str().expect("user_code").to_owned()
}

async fn poll(mock: &MockOcient, body: Value) -> (StatusCode, Value) {
    let path = "/v1/sso_device_grant_verify";
    send(mock, request(Method::POST, path, None, &body.to_string())).await
}

/// A poll with this body on a task of its own, left waiting for a decision.
async fn held_poll(mock: &MockOcient, body: Value) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let in_flight = tokio::spawn({
        let mock = mock.clone();
        async move { poll(&mock, body).await }
    });
    tokio::task::yield_now().await;
    assert_eq!(
        mock.lock().devices.held_polls(),
        1,
        "the poll is not waiting"
    );
    in_flight
}

fn assert_status(answer: &Value, sql_state: &str, reason: &str) {
    assert_eq!(
        answer["status"],
        json!({"reason": reason, "sql_state": sql_state, "vendor_code": -1})
    );
}

fn assert_pending(answer: &Value) {
    assert_status(
        answer,
        "HYT00",
        "authorization_pending: the user has not approved yet",
    );
}

#[tokio::test]
async fn a_grant_hands_out_a_user_code_as_the_openapi_example_shows() {
    let mock = MockOcient::new();
    let (status, answer) = grant(&mock, r#"{"database": "sales"}"#).await;
    assert_eq!(status, StatusCode::OK);
    let code = answer["user_code"].as_str().expect("user_code");
    assert_eq!(code.len(), 8, "{code}");
    assert!(
        code.bytes()
            .all(|letter| USER_CODE_LETTERS.contains(&letter)),
        "{code}"
    );
    assert_eq!(answer["verification_uri"], "https://idp.example/device");
    assert_eq!(
        answer["verification_uri_complete"],
        format!("https://idp.example/device?code={code}")
    );
    assert_eq!(
        answer["status"],
        json!({"reason": "Device authorization initiated", "sql_state": "00000", "vendor_code": 0})
    );
    assert_ne!(user_code(&mock).await, code);
    let expected = Counters {
        device_grants: 2,
        peak_token_requests_in_flight: 1,
        ..Counters::default()
    };
    assert_eq!(mock.counters(), expected);
    assert_eq!(mock.counters().token_requests(), 2);
}

#[tokio::test]
async fn approve_at_the_third_poll_answers_pending_pending_approved() {
    let mock = MockOcient::new().device_approval(DeviceApproval::ApproveAtPoll(3));
    let code = user_code(&mock).await;
    for _ in 0..2 {
        let (status, answer) = poll(&mock, json!({"user_code": code})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_pending(&answer);
    }
    let (status, answer) = poll(&mock, json!({"user_code": code})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut members: Vec<&String> = answer.as_object().expect("object").keys().collect();
    members.sort_unstable();
    assert_eq!(members, ["access_token", "database", "status", "username"]);
    assert_eq!(answer["username"], "device-user");
    assert_eq!(answer["database"], "system");
    assert_eq!(answer["status"]["reason"], "Authentication successful");
    let token = token_of(&answer);
    assert!(jwt_claims(&token)["exp"].as_u64().is_some(), "{token}");
    assert_eq!(execute(&mock, &token).await, (StatusCode::OK, 0));
    assert_eq!(vendor_code(&refresh(&mock, &token).await.1), 0);

    // Later polls of the code are approved too; another code counts its own.
    assert_eq!(
        poll(&mock, json!({"user_code": code})).await.0,
        StatusCode::OK
    );
    let other = user_code(&mock).await;
    assert_eq!(
        poll(&mock, json!({"user_code": other})).await.0,
        StatusCode::BAD_REQUEST
    );
    let counters = mock.counters();
    assert_eq!((counters.device_grants, counters.device_polls), (2, 5));
    assert_eq!(
        counters.failed_token_requests, 0,
        "a poll is no token request"
    );
}

#[tokio::test]
async fn the_verify_body_may_name_the_database() {
    let mock = MockOcient::new().device_approval(DeviceApproval::Approve);
    let (_, answer) = grant(&mock, r#"{"database": "sales"}"#).await;
    let code = answer["user_code"].as_str().expect("user_code");
    assert_eq!(
        poll(&mock, json!({"user_code": code})).await.1["database"],
        "sales"
    );
    let body = json!({"user_code": code, "database": "hr"});
    assert_eq!(poll(&mock, body).await.1["database"], "hr");
}

#[tokio::test]
async fn deny_is_403_access_denied_at_once() {
    let mock = MockOcient::new().device_approval(DeviceApproval::Deny);
    let code = user_code(&mock).await;
    let (status, answer) = poll(&mock, json!({"user_code": code})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_status(
        &answer,
        "28000",
        "access_denied: the user denied the sign-in",
    );
    assert_eq!(mock.current_generation(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_pending_poll_is_held_until_its_timeout_then_408() {
    let mock = MockOcient::new();
    let code = user_code(&mock).await;
    let started = Instant::now();
    let in_flight = held_poll(&mock, json!({"user_code": code, "timeout": "5"})).await;
    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert!(!in_flight.is_finished(), "answered before its timeout");
    tokio::time::advance(Duration::from_millis(1)).await;
    let (status, answer) = in_flight.await.expect("poll task");
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_status(&answer, "HYT00", "device authorization timed out");
    assert_eq!(started.elapsed(), Duration::from_secs(5));

    // Without a timeout, the poll waits the documented 30 seconds.
    let started = Instant::now();
    assert_eq!(
        poll(&mock, json!({"user_code": code})).await.0,
        StatusCode::REQUEST_TIMEOUT
    );
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_decision_wakes_the_polls_it_holds() {
    let mock = MockOcient::new();
    let code = user_code(&mock).await;
    let started = Instant::now();

    let held = held_poll(&mock, json!({"user_code": code})).await;
    mock.set_device_approval(DeviceApproval::Approve);
    let (status, answer) = held.await.expect("poll task");
    assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));

    mock.set_device_approval(DeviceApproval::Pending);
    let held = held_poll(&mock, json!({"user_code": code})).await;
    mock.set_device_approval(DeviceApproval::Deny);
    assert_eq!(held.await.expect("poll task").0, StatusCode::FORBIDDEN);

    // This is the code's third poll: approving from the fifth on leaves it pending.
    mock.set_device_approval(DeviceApproval::Pending);
    let held = held_poll(&mock, json!({"user_code": code})).await;
    mock.set_device_approval(DeviceApproval::ApproveAtPoll(5));
    let (status, answer) = held.await.expect("poll task");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_pending(&answer);

    assert_eq!(started.elapsed(), Duration::ZERO, "a woken poll waited");
    assert_eq!(mock.lock().devices.held_polls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_poll_leaves_nothing_behind() {
    let mock = MockOcient::new();
    let code = user_code(&mock).await;
    let gave_up = tokio::time::timeout(
        Duration::from_secs(1),
        poll(&mock, json!({"user_code": code})),
    )
    .await;
    assert!(gave_up.is_err(), "a pending poll answered");
    assert_eq!(mock.lock().devices.held_polls(), 0);
    mock.set_device_approval(DeviceApproval::Approve);
    assert_eq!(
        poll(&mock, json!({"user_code": code})).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_timeout_is_whole_seconds_from_1_to_600_as_a_number_or_a_string() {
    let mock = MockOcient::new().device_approval(DeviceApproval::Approve);
    let code = user_code(&mock).await;
    for timeout in [
        json!(1),
        json!(600),
        json!("600"),
        json!(" 7 "),
        Value::Null,
    ] {
        let (status, _) = poll(&mock, json!({"user_code": code, "timeout": timeout})).await;
        assert_eq!(status, StatusCode::OK, "timeout {timeout}");
    }
    for timeout in [
        json!(0),
        json!(601),
        json!("0"),
        json!("601"),
        json!(-1),
        json!(1.5),
        json!("soon"),
        json!(true),
        json!([30]),
    ] {
        let (status, answer) = poll(&mock, json!({"user_code": code, "timeout": timeout})).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::BAD_REQUEST, -1),
            "{timeout}"
        );
        assert_eq!(answer["status"]["sql_state"], "22000");
    }
    assert_eq!(mock.counters().device_polls, 14);
}

#[tokio::test]
async fn an_unknown_or_missing_user_code_is_a_bad_request() {
    let mock = MockOcient::new().device_approval(DeviceApproval::Approve);
    for body in [
        json!({"user_code": "BCDFGHJK"}),
        json!({}),
        json!({"user_code": 5}),
    ] {
        let (status, answer) = poll(&mock, body.clone()).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::BAD_REQUEST, -1),
            "{body}"
        );
        assert_eq!(answer["status"]["sql_state"], "22000");
    }
    let path = "/v1/sso_device_grant_verify";
    let (status, _) = send(&mock, request(Method::POST, path, None, "")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(&mock, request(Method::GET, path, None, "")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = grant(&mock, "{oops").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(start_paused = true)]
async fn errors_in_band_carry_the_refusals_in_http_200() {
    let mock = MockOcient::new()
        .errors_in_band(true)
        .device_approval(DeviceApproval::ApproveAtPoll(9));
    let code = user_code(&mock).await;
    let (status, answer) = poll(&mock, json!({"user_code": code})).await;
    assert_eq!(status, StatusCode::OK);
    assert_pending(&answer);
    mock.set_device_approval(DeviceApproval::Deny);
    let (status, answer) = poll(&mock, json!({"user_code": code})).await;
    assert_eq!(
        (status, answer["status"]["sql_state"].as_str()),
        (StatusCode::OK, Some("28000"))
    );
    mock.set_device_approval(DeviceApproval::Pending);
    let (status, answer) = poll(&mock, json!({"user_code": code, "timeout": 1})).await;
    assert_eq!(
        (status, answer["status"]["sql_state"].as_str()),
        (StatusCode::OK, Some("HYT00"))
    );
    // A malformed request is no sign-in outcome: it keeps its HTTP status.
    assert_eq!(
        poll(&mock, json!({"user_code": "nope"})).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn debug_output_shows_the_decision_and_how_many_grants() {
    let mock = MockOcient::new().device_approval(DeviceApproval::ApproveAtPoll(2));
    let code = user_code(&mock).await;
    let printed = format!("{mock:?}");
    assert!(
        printed.contains("approval: ApproveAtPoll(2), grants: 1"),
        "{printed}"
    );
    assert!(!printed.contains(&code), "{printed}");
}
