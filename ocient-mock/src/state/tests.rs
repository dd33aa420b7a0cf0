use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::PRUNE_FLOOR;
use crate::device::DeviceApproval;
use crate::fault::Fault;
use crate::mock::MockOcient;
use crate::test_support::*;

#[tokio::test]
async fn refresh_issues_a_newer_token_and_keeps_the_old_one() {
    let mock = MockOcient::new();
    let first = login(&mock).await;
    let (status, answer) = refresh(&mock, &first).await;
    assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
    let second = token_of(&answer);
    assert_ne!(first, second);
    assert!(generation_of(&second) > generation_of(&first));
    assert_eq!(mock.current_generation(), 2);
    assert_eq!(answer["database"], "system");
    assert_eq!(execute(&mock, &first).await, (StatusCode::OK, 0));
    assert_eq!(execute(&mock, &second).await, (StatusCode::OK, 0));
    let counters = mock.counters();
    assert_eq!(
        (counters.logins, counters.refreshes, counters.queries_ok),
        (1, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn expired_token_is_refused_for_execute_and_refresh() {
    let mock = MockOcient::new().token_lifetime(Duration::from_secs(10));
    let token = login(&mock).await;
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(execute(&mock, &token).await, (StatusCode::OK, 0));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        execute(&mock, &token).await,
        (StatusCode::UNAUTHORIZED, -1208)
    );
    let (status, answer) = refresh(&mock, &token).await;
    assert_eq!(
        (status, vendor_code(&answer)),
        (StatusCode::UNAUTHORIZED, -1208)
    );
    assert_eq!(answer["status"]["reason"], "security token expired");
    let counters = mock.counters();
    assert_eq!((counters.queries_ok, counters.queries_bad_token), (1, 1));
    assert_eq!(counters.failed_token_requests, 1);
}

#[tokio::test(start_paused = true)]
async fn expired_token_can_be_refreshed_when_allowed() {
    let mock = MockOcient::new()
        .token_lifetime(Duration::from_secs(10))
        .refresh_expired_tokens(true);
    let token = login(&mock).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(execute(&mock, &token).await.1, -1208, "expired for queries");
    let (status, answer) = refresh(&mock, &token).await;
    assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
    assert_eq!(
        execute(&mock, &token_of(&answer)).await,
        (StatusCode::OK, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn sub_second_lifetimes_expire_exactly_but_advertise_one_second() {
    let mock = MockOcient::new().token_lifetime(Duration::from_millis(500));
    let (_, answer) = send(&mock, login_request("jdoe", "secret")).await;
    assert_eq!(answer["expires_in"], 1);
    let token = token_of(&answer);
    tokio::time::advance(Duration::from_millis(499)).await;
    assert_eq!(execute(&mock, &token).await.1, 0);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(execute(&mock, &token).await.1, -1208);
    mock.set_token_lifetime(Duration::from_millis(2_001));
    let (_, answer) = send(&mock, login_request("jdoe", "secret")).await;
    assert_eq!(answer["expires_in"], 3);
}

#[tokio::test(start_paused = true)]
async fn refresh_lifetime_counts_from_the_login() {
    let mock = MockOcient::new()
        .token_lifetime(Duration::from_secs(3600))
        .refresh_lifetime(Duration::from_secs(60));
    let first = login(&mock).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    let (_, answer) = refresh(&mock, &first).await;
    assert_eq!(vendor_code(&answer), 0);
    let second = token_of(&answer);
    tokio::time::advance(Duration::from_secs(1)).await;
    let (status, answer) = refresh(&mock, &second).await;
    assert_eq!(
        (status, vendor_code(&answer)),
        (StatusCode::UNAUTHORIZED, -733)
    );
    assert_eq!(answer["status"]["sql_state"], "42502");
    // Still valid for queries: only refreshing is over.
    assert_eq!(execute(&mock, &second).await.1, 0);
}

#[tokio::test]
async fn refresh_can_revoke_the_old_token() {
    let mock = MockOcient::new().old_token_survives_refresh(false);
    let first = login(&mock).await;
    let second = token_of(&refresh(&mock, &first).await.1);
    assert_eq!(execute(&mock, &first).await.1, -1205);
    assert_eq!(execute(&mock, &second).await.1, 0);
    assert_eq!(vendor_code(&refresh(&mock, &first).await.1), -1205);
}

#[tokio::test(start_paused = true)]
async fn dead_tokens_are_pruned_but_live_ones_kept() {
    let mock = MockOcient::new()
        .token_lifetime(Duration::from_secs(1))
        .refresh_lifetime(Duration::from_secs(3600));
    // Expired but still refreshable: must survive the sweep.
    let keeper = login(&mock).await;
    mock.lock().knobs.refresh_lifetime = Duration::from_secs(1);
    let oldest = login(&mock).await;
    for _ in 2..PRUNE_FLOOR {
        login(&mock).await;
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(execute(&mock, &oldest).await.1, -1208);
    let fresh = login(&mock).await;
    assert_eq!(mock.lock().sessions.len(), 2);
    assert_eq!(execute(&mock, &fresh).await.1, 0);
    assert_eq!(execute(&mock, &oldest).await.1, -1205);
    assert_eq!(execute(&mock, &keeper).await.1, -1208);
}

// A sweep walks every token, so it runs only once the table has reached the floor or
// doubled since the last one: a login stays amortised O(1). Until then a dead token is
// still known, and answers "expired" rather than "invalid".
#[tokio::test(start_paused = true)]
async fn dead_tokens_are_swept_only_once_the_table_has_doubled() {
    let mock = MockOcient::new()
        .token_lifetime(Duration::from_secs(1))
        .refresh_lifetime(Duration::from_secs(1));
    let first = login(&mock).await;
    tokio::time::advance(Duration::from_secs(2)).await;
    for _ in 1..PRUNE_FLOOR {
        login(&mock).await;
    }
    assert_eq!(execute(&mock, &first).await.1, -1208, "below the floor");
    let last = login(&mock).await;
    assert_eq!(execute(&mock, &first).await.1, -1205, "swept at the floor");

    // PRUNE_FLOOR tokens outlived that sweep: the next one waits for twice as many.
    tokio::time::advance(Duration::from_secs(2)).await;
    for _ in 0..PRUNE_FLOOR / 2 {
        login(&mock).await;
    }
    assert_eq!(execute(&mock, &last).await.1, -1208, "not doubled yet");
}

#[tokio::test]
async fn tokens_cannot_be_guessed_from_another_server() {
    let (one, other) = (MockOcient::new(), MockOcient::new());
    let token = login(&one).await;
    assert_ne!(token, login(&other).await);
    assert_eq!(execute(&other, &token).await.1, -1205);
}

type Request = http::Request<http_body_util::Full<bytes::Bytes>>;

/// `request` sent through the mock's `Service` on a task of its own; its HTTP status.
fn spawn_call(mock: &MockOcient, request: Request) -> JoinHandle<StatusCode> {
    let mock = mock.clone();
    tokio::spawn(async move { call(&mock, request).await.status() })
}

#[tokio::test(start_paused = true)]
async fn token_requests_that_overlap_are_counted_at_their_peak() {
    const LOGINS: u64 = 5;
    let mock = MockOcient::new().latency(Duration::from_millis(100));
    let started = Instant::now();
    let logins: Vec<_> = (0..LOGINS)
        .map(|_| spawn_call(&mock, login_request("jdoe", "secret")))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(mock.token_requests_in_flight(), LOGINS, "all waiting");
    for login in logins {
        assert_eq!(login.await.expect("login task"), StatusCode::OK);
    }
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "side by side"
    );
    assert_eq!(mock.token_requests_in_flight(), 0);
    assert_eq!(mock.counters().peak_token_requests_in_flight, LOGINS);

    // One at a time, they never raise it.
    let token = login(&mock).await;
    refresh(&mock, &token).await;
    let counters = mock.counters();
    assert_eq!(counters.peak_token_requests_in_flight, LOGINS);
    assert_eq!(counters.token_requests(), LOGINS + 2);
}

// The same set `Counters::token_requests` counts: a held device poll and a query are not
// token requests, however long they take.
#[tokio::test(start_paused = true)]
async fn every_kind_of_token_request_is_in_flight_and_nothing_else() {
    let mock = MockOcient::new().sso_tokens(["idp-token"]);
    let token = login(&mock).await;
    let (_, grant) = send(
        &mock,
        request(Method::POST, "/v1/sso_device_grant", None, ""),
    )
    .await;
    let poll = json!({ "user_code": grant["user_code"] }).to_string();
    let held = spawn_call(
        &mock,
        request(Method::POST, "/v1/sso_device_grant_verify", None, &poll),
    );
    mock.set_latency(Duration::from_millis(100));
    let exchange = json!({"id_token": "idp-token"});
    let requests = [
        login_request("jdoe", "secret"),
        refresh_request(&token),
        sso_request(&exchange),
        request(Method::POST, "/v1/sso_device_grant", None, ""),
    ];
    let calls: Vec<_> = requests
        .into_iter()
        .map(|request| spawn_call(&mock, request))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(execute(&mock, &token).await, (StatusCode::OK, 0));
    assert_eq!(mock.token_requests_in_flight(), 4);
    for call in calls {
        assert_eq!(call.await.expect("token request task"), StatusCode::OK);
    }
    mock.set_device_approval(DeviceApproval::Deny);
    assert_eq!(held.await.expect("poll task"), StatusCode::FORBIDDEN);
    assert_eq!(mock.token_requests_in_flight(), 0);
    let counters = mock.counters();
    assert_eq!(counters.peak_token_requests_in_flight, 4);
    assert_eq!(counters.device_polls, 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_request_dropped_before_its_answer_is_no_longer_in_flight() {
    let mock = MockOcient::new().latency(Duration::from_millis(100));
    let gave_up = tokio::time::timeout(
        Duration::from_millis(10),
        call(&mock, login_request("jdoe", "secret")),
    )
    .await;
    assert!(gave_up.is_err(), "the login was still waiting");
    assert_eq!(mock.token_requests_in_flight(), 0);
    assert_eq!(mock.current_generation(), 0, "nothing issued");

    // A hung answer stays in flight until its task is cancelled.
    mock.set_latency(Duration::ZERO);
    mock.fail_token_requests(Fault::Hang, 1);
    let hung = spawn_call(&mock, login_request("jdoe", "secret"));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(mock.token_requests_in_flight(), 1);
    hung.abort();
    assert!(hung.await.expect_err("aborted").is_cancelled());
    assert_eq!(mock.token_requests_in_flight(), 0);
    let counters = mock.counters();
    assert_eq!(
        (counters.logins, counters.peak_token_requests_in_flight),
        (2, 1)
    );
}
