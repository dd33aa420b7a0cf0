use std::time::Duration;

use http::StatusCode;

use super::PRUNE_FLOOR;
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
