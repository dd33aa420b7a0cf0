//! Single sign-on by device grant (`OcientAuth::device_grant`): one prompt, polls until the
//! user approves, a typed error when they do not, one device grant for every waiting caller,
//! and a new one only when nothing else can help. On tokio's paused clock over the
//! in-process mock.

use std::sync::{Arc, Mutex};

use http::StatusCode;
use ocient_mock::{DeviceApproval, MockOcient};
use tokio::time::{sleep, Instant};
use tower_token_refresh::{DeviceCode, DeviceGrantEnd, Error, OcientAuth, TokenRefreshLayer};

use crate::common::{
    all_ok_at_once, layered, query, secs, send, switched, through_a_revocation, token_error, BASE,
};

/// A device-grant login whose prompts land in the returned list.
fn device() -> (OcientAuth, Arc<Mutex<Vec<DeviceCode>>>) {
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&prompts);
    let auth = OcientAuth::new(BASE.parse().unwrap())
        .database("retail_analytics")
        .device_grant(move |code| seen.lock().unwrap().push(code.clone()));
    (auth, prompts)
}

fn ended(error: &Error) -> DeviceGrantEnd {
    match error {
        Error::DeviceGrant { ended, .. } => *ended,
        other => panic!("expected a device grant error, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn approval_after_three_polls_is_one_token_refreshed_like_any_other() {
    let mock = MockOcient::new()
        .device_approval(DeviceApproval::ApproveAtPoll(3))
        .token_lifetime(secs(100));
    let (auth, prompts) = device();
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    service
        .warm_up::<http_body_util::Full<bytes::Bytes>>()
        .await
        .unwrap();
    {
        let prompts = prompts.lock().unwrap();
        assert_eq!(prompts.len(), 1, "prompted once");
        assert_eq!(prompts[0].verification_uri, "https://idp.example/device");
        assert_eq!(prompts[0].user_code.len(), 8);
        let complete = prompts[0].verification_uri_complete.as_deref().unwrap();
        assert!(complete.ends_with(&prompts[0].user_code), "{complete}");
    }
    let counters = mock.counters();
    assert_eq!((counters.device_grants, counters.device_polls), (1, 3));

    for _ in 0..10 {
        let response = send(&service, query()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        sleep(secs(20)).await;
    }
    let counters = mock.counters();
    assert!(
        counters.refreshes >= 3,
        "refreshed, not signed in again: {counters:?}"
    );
    assert_eq!(counters.device_grants, 1);
    assert_eq!(prompts.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_wait_for_one_device_grant() {
    let mock = MockOcient::new().device_approval(DeviceApproval::ApproveAtPoll(2));
    let (auth, prompts) = device();
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    all_ok_at_once(&service, 100).await;
    assert_eq!(mock.counters().device_grants, 1);
    assert_eq!(prompts.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_denial_is_a_typed_error_and_the_user_is_not_asked_again_at_once() {
    let mock = MockOcient::new().device_approval(DeviceApproval::Deny);
    let (auth, prompts) = device();
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    let error = service
        .warm_up::<http_body_util::Full<bytes::Bytes>>()
        .await
        .unwrap_err();
    assert_eq!(ended(&error), DeviceGrantEnd::Denied);
    assert!(error.to_string().contains("access_denied"), "{error}");
    let error = send(&service, query()).await.unwrap_err();
    assert_eq!(ended(token_error(&error)), DeviceGrantEnd::Denied);
    assert_eq!(
        mock.counters().device_grants,
        1,
        "backed off: no second prompt at once"
    );
    assert_eq!(prompts.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_approval_in_time_is_a_typed_timeout() {
    // The mock holds each poll for the wait it is asked for, then says it timed out.
    let mock = MockOcient::new();
    let (auth, _) = device();
    let auth = auth.approval_timeout(secs(60));
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    let started = Instant::now();
    let error = service
        .warm_up::<http_body_util::Full<bytes::Bytes>>()
        .await
        .unwrap_err();
    assert_eq!(ended(&error), DeviceGrantEnd::TimedOut);
    let took = started.elapsed();
    assert!(
        (secs(60)..secs(70)).contains(&took),
        "gave up once the minute had passed: {took:?}"
    );
    assert!(mock.counters().device_polls >= 3, "{:?}", mock.counters());
}

#[tokio::test(start_paused = true)]
async fn an_approval_longer_than_the_refresh_timeout_is_no_timeout() {
    // Each poll is bounded by the refresh timeout; the wait for the user is not.
    let mock = MockOcient::new();
    let (auth, _) = device();
    let layer = TokenRefreshLayer::new(auth).refresh_timeout(secs(10));
    let (service, _) = layered(mock.clone(), layer);
    let approver = mock.clone();
    tokio::spawn(async move {
        sleep(secs(45)).await;
        approver.set_device_approval(DeviceApproval::Approve);
    });
    let started = Instant::now();
    service
        .warm_up::<http_body_util::Full<bytes::Bytes>>()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        (secs(45)..secs(46)).contains(&took),
        "the held poll woke with the approval: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_leads_to_a_new_device_grant() {
    let mock = MockOcient::new().device_approval(DeviceApproval::Approve);
    let (auth, prompts) = device();
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    through_a_revocation(&service, &mock).await;
    assert_eq!(mock.counters().device_grants, 2);
    assert_eq!(prompts.lock().unwrap().len(), 2, "nothing else could help");
}

#[tokio::test(start_paused = true)]
async fn a_node_away_while_the_user_approves_costs_no_second_prompt() {
    let mock = MockOcient::new().device_approval(DeviceApproval::ApproveAtPoll(2));
    let (auth, prompts) = device();
    let (service, switch) = switched(mock.clone(), TokenRefreshLayer::new(auth));
    let warm_up = tokio::spawn(service.warm_up::<http_body_util::Full<bytes::Bytes>>());
    sleep(secs(1)).await;
    assert_eq!(
        mock.counters().device_polls,
        1,
        "asked once, not approved yet"
    );
    switch.set_down(true);
    sleep(secs(11)).await; // the polls at 5 and 10 s meet a closed port
    switch.set_down(false);
    warm_up.await.unwrap().unwrap();
    let counters = mock.counters();
    assert_eq!((counters.device_grants, counters.device_polls), (1, 2));
    assert_eq!(prompts.lock().unwrap().len(), 1, "the same code all along");
}
