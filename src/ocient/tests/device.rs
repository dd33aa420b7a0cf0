//! The device grant played against a scripted server: what it sends, when, and what comes
//! of each answer, on tokio's paused clock.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::*;
use crate::error::DeviceGrantEnd;

const STARTED: &str = r#"{"verification_uri_complete":"https://idp.example/device?code=BCDFGHJK",
    "verification_uri":"https://idp.example/device","user_code":"BCDFGHJK",
    "status":{"reason":"ok","sql_state":"00000","vendor_code":0}}"#;
const PENDING: &str =
    r#"{"status":{"reason":"authorization_pending","sql_state":"HYT00","vendor_code":-1}}"#;
const TIMED_OUT: &str = r#"{"status":{"reason":"device authorization timed out","sql_state":"HYT00","vendor_code":-1}}"#;
const DENIED: &str = r#"{"status":{"reason":"access_denied: the user said no","sql_state":"28000","vendor_code":-1}}"#;

/// A device-grant login whose prompts land in the returned list.
fn device() -> (OcientAuth, Arc<Mutex<Vec<DeviceCode>>>) {
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&prompts);
    let auth = OcientAuth::new("https://sql-node".parse().unwrap())
        .database("sales")
        .device_grant(move |code| seen.lock().unwrap().push(code.clone()));
    (auth, prompts)
}

/// A server that has handed out the code `BCDFGHJK`.
fn started() -> Script {
    Script::default().answer(200, STARTED)
}

/// The approval, carrying `token`.
fn approval(token: &str) -> String {
    format!(r#"{{"access_token":"{token}","username":"jdoe","database":"sales"}}"#)
}

/// `auth`'s login played against `script`, the layer giving each request
/// `request_timeout`. Every device grant starts the same way, so that is checked here.
async fn run_with(
    auth: &OcientAuth,
    mut script: Script,
    request_timeout: Duration,
) -> (Result<Grant, Error>, Script) {
    let outcome = script.login(auth, request_timeout).await;
    assert_eq!(script.sent[0].uri(), "https://sql-node/v1/sso_device_grant");
    assert_eq!(script.body(0), serde_json::json!({"database": "sales"}));
    for poll in &script.sent[1..] {
        assert_eq!(poll.uri(), "https://sql-node/v1/sso_device_grant_verify");
    }
    (outcome, script)
}

/// [`run_with`] the 30 s a layer gives a request by default.
async fn run(auth: &OcientAuth, script: Script) -> (Result<Grant, Error>, Script) {
    run_with(auth, script, Duration::from_secs(30)).await
}

/// `field` of each poll's body, in order.
fn polled(script: &Script, field: &str) -> Vec<serde_json::Value> {
    (1..script.sent.len())
        .map(|n| script.body(n)[field].clone())
        .collect()
}

/// The time between each poll and the next.
fn gaps(script: &Script) -> Vec<Duration> {
    script.sent_at[1..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect()
}

/// The wait the first poll asks the server for, when the layer gives `request_timeout`.
async fn first_wait(auth: &OcientAuth, request_timeout: Duration) -> serde_json::Value {
    // The denial ends it after that poll.
    let script = started().answer(403, DENIED);
    let (_, script) = run_with(auth, script, request_timeout).await;
    script.body(1)["timeout"].clone()
}

#[tokio::test(start_paused = true)]
async fn approval_after_three_polls_is_one_token_and_one_prompt() {
    let (auth, prompts) = device();
    let token = jwt_expiring_in(900);
    let script = started().answer(400, PENDING).answer(400, PENDING);
    let (grant, script) = run(&auth, script.answer(200, &approval(&token))).await;
    let grant = grant.unwrap();
    assert_eq!(grant.access_token().expose(), token);
    assert!(grant.lifetime() > Duration::from_secs(890), "from exp");

    let prompts = prompts.lock().unwrap();
    assert_eq!(prompts.len(), 1, "one prompt");
    assert_eq!(prompts[0].verification_uri, "https://idp.example/device");
    assert_eq!(
        prompts[0].verification_uri_complete.as_deref(),
        Some("https://idp.example/device?code=BCDFGHJK")
    );
    assert_eq!(prompts[0].user_code, "BCDFGHJK");
    assert_eq!(script.sent.len(), 4, "the start and three polls");
    assert_eq!(polled(&script, "user_code"), ["BCDFGHJK"; 3]);
    assert_eq!(polled(&script, "database"), ["sales"; 3]);
    // Under the 30 s the layer gives a request: the interval is waited outside it.
    assert_eq!(polled(&script, "timeout"), ["22"; 3]);
    assert_eq!(
        gaps(&script),
        [Duration::from_secs(5); 2],
        "a server that answers at once is asked every 5 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_that_held_the_poll_is_asked_again_at_once() {
    let (auth, _) = device();
    // The server holds the first poll for its whole wait before saying it timed out.
    let held = started().answer_after(Duration::from_secs(22), 408, TIMED_OUT);
    let approved = approval(&jwt_expiring_in(600));
    let (grant, script) = run(&auth, held.answer(200, &approved)).await;
    assert!(grant.is_ok(), "{:?}", grant.err());
    assert_eq!(
        gaps(&script),
        [Duration::from_secs(22)],
        "no interval after a long poll"
    );
    assert_eq!(polled(&script, "user_code"), ["BCDFGHJK"; 2]);
}

#[tokio::test(start_paused = true)]
async fn a_denial_ends_the_device_grant_as_denied() {
    let (auth, _) = device();
    let (error, script) = run(&auth, started().answer(403, DENIED)).await;
    let error = error.unwrap_err();
    match &error {
        Error::DeviceGrant { ended, reason } => {
            assert_eq!(*ended, DeviceGrantEnd::Denied);
            assert_eq!(reason, "access_denied: the user said no");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "device sign-in denied: access_denied: the user said no"
    );
    assert_eq!(script.sent.len(), 2, "no poll after a denial");
}

#[tokio::test(start_paused = true)]
async fn no_approval_in_time_ends_it_as_timed_out_and_never_asks_the_server_to_wait_longer() {
    let (auth, _) = device();
    let auth = auth.approval_timeout(Duration::from_secs(12));
    let started_at = Instant::now();
    let pending = (0..8).fold(started(), |script, _| script.answer(400, PENDING));
    let (error, script) = run(&auth, pending).await;
    let error = error.unwrap_err();
    assert!(
        matches!(
            error,
            Error::DeviceGrant {
                ended: DeviceGrantEnd::TimedOut,
                ..
            }
        ),
        "{error}"
    );
    // Polls at 0, 5, 10 and 15 s, and then the end.
    assert_eq!(script.sent_at[1], started_at);
    assert_eq!(gaps(&script), [Duration::from_secs(5); 3]);
    assert_eq!(started_at.elapsed(), Duration::from_secs(15));
    // What is left of the 12 s, and never less than the server's least, one second.
    assert_eq!(polled(&script, "timeout"), ["12", "7", "2", "1"]);
}

#[tokio::test(start_paused = true)]
async fn a_server_failure_while_polling_is_asked_again_and_a_missing_endpoint_is_no_denial() {
    let (auth, _) = device();
    let failed = r#"{"status":{"reason":"internal error","sql_state":"58000","vendor_code":-1}}"#;
    let not_found = r#"{"status":{"reason":"no SSO configured","vendor_code":-1}}"#;
    let script = started().answer(503, failed).answer(404, not_found);
    let (error, script) = run(&auth, script).await;
    assert_eq!(
        polled(&script, "user_code"),
        ["BCDFGHJK"; 2],
        "the same code, asked again"
    );
    match error.unwrap_err() {
        Error::Rejected { status, .. } => assert_eq!(status, StatusCode::NOT_FOUND),
        other => panic!("a node without SSO is no denial: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_node_asks_for_less_wait_than_the_layer_gives_a_request() {
    for (request_timeout, asked) in [(30, "22"), (60, "45"), (4, "3"), (2, "1"), (3600, "600")] {
        let (auth, _) = device();
        let auth = auth.approval_timeout(Duration::from_secs(7200));
        let wait = first_wait(&auth, Duration::from_secs(request_timeout)).await;
        assert_eq!(wait, asked, "for {request_timeout} s");
    }
    let (auth, _) = device();
    assert_eq!(
        first_wait(&auth, Duration::from_secs(3600)).await,
        "300",
        "five minutes to approve by default"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hostile_device_answer_is_cleaned_or_refused() {
    let (auth, prompts) = device();
    let escapes =
        r#"{"verification_uri":"https://idp.example/\u001b[2Jdevice","user_code":" AB\u0007CD "}"#;
    let script = Script::default().answer(200, escapes).answer(403, DENIED);
    let (_, script) = run(&auth, script).await;
    assert_eq!(script.body(1)["user_code"], "ABCD");
    assert_eq!(
        prompts.lock().unwrap()[0].verification_uri,
        "https://idp.example/[2Jdevice"
    );

    let refused = |status: u16, body: &str| {
        let auth = &auth;
        let script = Script::default().answer(status, body);
        async move {
            let (error, script) = run(auth, script).await;
            assert_eq!(script.sent.len(), 1, "no poll without a code");
            error.unwrap_err()
        }
    };
    let invalid = |error: Error| match error {
        Error::InvalidResponse { reason, .. } => reason,
        other => panic!("expected an unusable answer, got {other:?}"),
    };
    let no_code = r#"{"verification_uri":"https://idp.example/device"}"#;
    assert_eq!(invalid(refused(200, no_code).await), "user_code is missing");
    // The complete URI holds the code, so it does not stand in for the plain one.
    let complete_only = r#"{"user_code":"ABCD","verification_uri_complete":"https://i/d?c=ABCD"}"#;
    assert_eq!(
        invalid(refused(200, complete_only).await),
        "verification_uri is missing"
    );
    let empty_code = r#"{"verification_uri":"https://i/d","user_code":"  "}"#;
    assert_eq!(
        invalid(refused(200, empty_code).await),
        "user_code is missing"
    );
    let endless = format!(
        r#"{{"verification_uri":"https://i/d","user_code":"{}"}}"#,
        "A".repeat(2049)
    );
    assert_eq!(
        invalid(refused(200, &endless).await),
        "user_code is missing",
        "over 2 KiB"
    );
    let listed = r#"["https://idp.example/device","ABCD"]"#;
    assert_eq!(
        invalid(refused(200, listed).await),
        "not a device grant answer"
    );
    let odd_status =
        r#"{"verification_uri":"https://i/d","user_code":"ABCD","status":{"vendor_code":"-1"}}"#;
    assert_eq!(
        invalid(refused(200, odd_status).await),
        "not a device grant answer"
    );
    let unconfigured = r#"{"status":{"vendor_code":-1,"reason":"no SSO configured"}}"#;
    let error = refused(500, unconfigured).await;
    assert!(matches!(error, Error::Rejected { .. }), "{error}");
    assert_eq!(prompts.lock().unwrap().len(), 1, "no prompt without a code");
}

#[test]
fn debug_names_the_device_grant_and_hides_the_user_code() {
    let (auth, _) = device();
    assert!(format!("{auth:?}").contains(r#"sign_in: Some("device_grant")"#));
    let code = DeviceCode::new("https://idp.example/device", "BCDFGHJK");
    let shown = format!("{code:?}");
    assert!(
        !shown.contains("BCDFGHJK") && shown.contains("idp.example"),
        "{shown}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_poll_that_failed_in_transit_is_sent_again_with_the_same_code() {
    let (auth, prompts) = device();
    let lost = Error::transport(Exchange::Login, "connection reset");
    let slow = Error::Timeout {
        exchange: Exchange::Login,
        after: Duration::from_secs(30),
    };
    let approved = approval(&jwt_expiring_in(600));
    let script = started().fail(lost).fail(slow).answer(200, &approved);
    let (grant, script) = run(&auth, script).await;
    assert!(grant.is_ok(), "{:?}", grant.err());
    assert_eq!(polled(&script, "user_code"), ["BCDFGHJK"; 3]);
    assert_eq!(
        gaps(&script),
        [Duration::from_secs(5); 2],
        "after the interval"
    );
    assert_eq!(prompts.lock().unwrap().len(), 1, "the user was asked once");

    // What no other poll can change ends it.
    let refused = Error::InsecureTransport {
        origin: "http://sql-node".into(),
    };
    let (error, script) = run(&auth, started().fail(refused)).await;
    let error = error.unwrap_err();
    assert!(matches!(error, Error::InsecureTransport { .. }), "{error}");
    assert_eq!(script.sent.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn slow_down_adds_five_seconds_to_the_interval() {
    let (auth, _) = device();
    let slow_down = r#"{"status":{"reason":"slow_down","sql_state":"","vendor_code":-1}}"#;
    let approved = approval(&jwt_expiring_in(600));
    let script = started().answer(400, slow_down).answer(400, PENDING);
    let (grant, script) = run(&auth, script.answer(200, &approved)).await;
    assert!(grant.is_ok(), "{:?}", grant.err());
    assert_eq!(
        gaps(&script),
        [Duration::from_secs(10); 2],
        "10 s, and it stays so"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_failing_until_the_deadline_says_so_rather_than_timed_out() {
    let (auth, _) = device();
    let auth = auth.approval_timeout(Duration::from_secs(8));
    // A 5xx that speaks of a timeout is the server failing, not the user deciding.
    let failing =
        r#"{"status":{"reason":"upstream timeout","sql_state":"HYT00","vendor_code":-1}}"#;
    let script = (0..6).fold(started(), |script, _| script.answer(503, failing));
    let (error, script) = run(&auth, script).await;
    match error.unwrap_err() {
        Error::Rejected { status, .. } => assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE),
        other => panic!("expected the server's failure, got {other:?}"),
    }
    assert_eq!(script.sent.len(), 4, "polls at 0, 5 and 10 s");
}

#[tokio::test(start_paused = true)]
async fn an_endless_approval_time_is_a_day_and_no_panic() {
    let (auth, _) = device();
    let auth = auth.approval_timeout(Duration::MAX);
    assert!(format!("{auth:?}").contains("approval_timeout: 86400s"));
    assert_eq!(first_wait(&auth, Duration::from_secs(3600)).await, "600");
}

/// Whether the server was polled again after answering the first poll `status` with
/// `body`: the next poll is approved, so the login then succeeds.
async fn polled_again(status: u16, body: &str) -> bool {
    let (auth, _) = device();
    let approved = approval(&jwt_expiring_in(600));
    let script = started().answer(status, body).answer(200, &approved);
    let (outcome, script) = run(&auth, script).await;
    let again = outcome.is_ok();
    assert_eq!(script.sent.len(), if again { 3 } else { 2 });
    again
}

/// What each answer to a poll means, one signal at a time: any one of them says "not yet".
#[tokio::test(start_paused = true)]
async fn each_sign_of_waiting_alone_means_not_yet_and_a_token_wins_over_all() {
    assert!(polled_again(408, "").await, "a 408 with no body");
    assert!(
        polled_again(408, r#"{"status":{"vendor_code":-1}}"#).await,
        "a 408 alone"
    );
    let hyt = r#"{"status":{"sql_state":"HYT01","vendor_code":-1}}"#;
    assert!(polled_again(400, hyt).await, "SQLSTATE class HYT alone");
    assert!(
        !polled_again(400, "not json").await,
        "a 400 that says nothing is an answer"
    );

    let (auth, _) = device();
    let token = jwt_expiring_in(600);
    let approved = format!(
        r#"{{"access_token":"{token}","status":{{"reason":"no longer pending","vendor_code":0}}}}"#
    );
    let (grant, script) = run(&auth, started().answer(200, &approved)).await;
    assert_eq!(grant.unwrap().access_token().expose(), token);
    assert_eq!(script.sent.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_device_grant_the_node_refuses_in_band_is_its_rejection() {
    let (auth, prompts) = device();
    let in_band =
        r#"{"status":{"reason":"no SSO for sales","sql_state":"28000","vendor_code":-1205}}"#;
    for status in [200, 403] {
        let (error, script) = run(&auth, Script::default().answer(status, in_band)).await;
        let error = error.unwrap_err();
        assert_eq!(error.vendor_code(), Some(-1205), "{status}: {error}");
        assert_eq!(script.sent.len(), 1, "no poll");
    }
    assert!(prompts.lock().unwrap().is_empty());
}
