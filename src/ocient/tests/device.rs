//! The device grant as a state machine, driven by hand: each answer in, the next request
//! (or the outcome) out, on tokio's paused clock.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::*;
use crate::endpoint::Reader;
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

/// The request a step asks for once its wait is over, and the reader of what comes of it.
async fn next(step: LoginStep<'_>) -> (Request<Bytes>, Reader<'_>) {
    match step.into_parts() {
        Err(next) => {
            tokio::time::sleep(next.wait).await;
            (next.next.await.unwrap(), next.read)
        }
        Ok(outcome) => panic!("over early: {:?}", outcome.err()),
    }
}

fn outcome(step: LoginStep<'_>) -> Result<Grant, Error> {
    step.into_parts().unwrap_or_else(|_| panic!("not over"))
}

/// `read` given an answer with `status` and `body`.
fn reply<'a>(read: Reader<'a>, status: u16, body: &str) -> LoginStep<'a> {
    answered(status, body, |answer| read(Ok(answer)))
}

/// The first poll of a device grant whose start the layer gave `request_timeout`.
async fn first_poll(auth: &OcientAuth, request_timeout: Duration) -> Request<Bytes> {
    login(auth).await;
    let started = |answer: Answer<'_>| auth.read_login_answer(answer.within(request_timeout));
    next(answered(200, STARTED, started)).await.0
}

/// The device grant started: the prompt has been shown; returns the first poll's step.
async fn started(auth: &OcientAuth) -> LoginStep<'_> {
    let request = login(auth).await;
    assert_eq!(request.uri(), "https://sql-node/v1/sso_device_grant");
    assert_eq!(body_of(&request), serde_json::json!({"database": "sales"}));
    answered(200, STARTED, |answer| auth.read_login_answer(answer))
}

#[tokio::test(start_paused = true)]
async fn approval_after_three_polls_is_one_token_and_one_prompt() {
    let (auth, prompts) = device();
    let mut step = started(&auth).await;
    let mut sent = Vec::new();
    for answer in [PENDING, PENDING] {
        let (request, read) = next(step).await;
        sent.push((Instant::now(), body_of(&request)));
        step = reply(read, 400, answer);
    }
    let (request, read) = next(step).await;
    sent.push((Instant::now(), body_of(&request)));
    let token = jwt_expiring_in(900);
    let approved = format!(r#"{{"access_token":"{token}","username":"jdoe","database":"sales"}}"#);
    let grant = outcome(reply(read, 200, &approved)).unwrap();
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
    for (_, body) in &sent {
        assert_eq!(body["user_code"], "BCDFGHJK");
        assert_eq!(body["database"], "sales");
    }
    // Under the 30 s the layer gives a request: the interval is waited outside it.
    let asked: Vec<_> = sent
        .iter()
        .map(|(_, body)| body["timeout"].clone())
        .collect();
    assert_eq!(asked, ["22", "22", "22"]);
    let gaps: Vec<_> = sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert_eq!(
        gaps,
        [Duration::from_secs(5); 2],
        "a server that answers at once is asked every 5 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_that_held_the_poll_is_asked_again_at_once() {
    let (auth, _) = device();
    let (_, read) = next(started(&auth).await).await;
    // The server held the poll for its whole wait before saying it timed out.
    tokio::time::sleep(Duration::from_secs(22)).await;
    let held_until = Instant::now();
    let step = reply(read, 408, TIMED_OUT);
    let (request, _) = next(step).await;
    assert_eq!(Instant::now(), held_until, "no interval after a long poll");
    assert_eq!(body_of(&request)["user_code"], "BCDFGHJK");
}

#[tokio::test(start_paused = true)]
async fn a_denial_ends_the_device_grant_as_denied() {
    let (auth, _) = device();
    let (_, read) = next(started(&auth).await).await;
    let error = outcome(reply(read, 403, DENIED)).unwrap_err();
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
}

#[tokio::test(start_paused = true)]
async fn no_approval_in_time_ends_it_as_timed_out_and_never_asks_the_server_to_wait_longer() {
    let (auth, _) = device();
    let auth = auth.approval_timeout(Duration::from_secs(12));
    let started_at = Instant::now();
    let mut step = started(&auth).await;
    let mut polls = 0;
    let error = loop {
        let (request, read) = next(step).await;
        polls += 1;
        let left = Duration::from_secs(12).saturating_sub(started_at.elapsed());
        let asked: u64 = body_of(&request)["timeout"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            asked <= left.as_secs().max(1),
            "asked {asked} s with {left:?} left"
        );
        match reply(read, 400, PENDING).into_parts() {
            Ok(outcome) => break outcome.unwrap_err(),
            Err(more) => step = LoginStep::then(more.next, more.read).after(more.wait),
        }
    };
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
    assert_eq!(
        started_at.elapsed(),
        Duration::from_secs(15),
        "polls at 0, 5, 10 and 15 s"
    );
    assert_eq!(polls, 4);
}

#[tokio::test(start_paused = true)]
async fn a_server_failure_while_polling_is_asked_again_and_a_missing_endpoint_is_no_denial() {
    let (auth, _) = device();
    let (_, read) = next(started(&auth).await).await;
    let failed = r#"{"status":{"reason":"internal error","sql_state":"58000","vendor_code":-1}}"#;
    let (request, read) = next(reply(read, 503, failed)).await;
    assert_eq!(
        body_of(&request)["user_code"],
        "BCDFGHJK",
        "the same code, asked again"
    );
    let not_found = r#"{"status":{"reason":"no SSO configured","vendor_code":-1}}"#;
    let error = outcome(reply(read, 404, not_found)).unwrap_err();
    match &error {
        Error::Rejected { status, .. } => assert_eq!(*status, StatusCode::NOT_FOUND),
        other => panic!("a node without SSO is no denial: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_node_asks_for_less_wait_than_the_layer_gives_a_request() {
    for (request_timeout, asked) in [(30, "22"), (60, "45"), (4, "3"), (2, "1"), (3600, "600")] {
        let (auth, _) = device();
        let auth = auth.approval_timeout(Duration::from_secs(7200));
        let request = first_poll(&auth, Duration::from_secs(request_timeout)).await;
        assert_eq!(
            body_of(&request)["timeout"],
            asked,
            "for {request_timeout} s"
        );
    }
    let (auth, _) = device();
    let request = first_poll(&auth, Duration::from_secs(3600)).await;
    assert_eq!(
        body_of(&request)["timeout"],
        "300",
        "five minutes to approve by default"
    );
}

#[tokio::test]
async fn a_hostile_device_answer_is_cleaned_or_refused() {
    let (auth, prompts) = device();
    let escapes =
        r#"{"verification_uri":"https://idp.example/\u001b[2Jdevice","user_code":" AB\u0007CD "}"#;
    let (request, _) = next(answered(200, escapes, |a| auth.read_login_answer(a))).await;
    assert_eq!(body_of(&request)["user_code"], "ABCD");
    assert_eq!(
        prompts.lock().unwrap()[0].verification_uri,
        "https://idp.example/[2Jdevice"
    );

    let refused = |status: u16, body: &str| {
        outcome(answered(status, body, |a| auth.read_login_answer(a))).unwrap_err()
    };
    let invalid = |error: Error| match error {
        Error::InvalidResponse { reason, .. } => reason,
        other => panic!("expected an unusable answer, got {other:?}"),
    };
    let no_code = r#"{"verification_uri":"https://idp.example/device"}"#;
    assert_eq!(invalid(refused(200, no_code)), "user_code is missing");
    // The complete URI holds the code, so it does not stand in for the plain one.
    let complete_only = r#"{"user_code":"ABCD","verification_uri_complete":"https://i/d?c=ABCD"}"#;
    assert_eq!(
        invalid(refused(200, complete_only)),
        "verification_uri is missing"
    );
    let empty_code = r#"{"verification_uri":"https://i/d","user_code":"  "}"#;
    assert_eq!(invalid(refused(200, empty_code)), "user_code is missing");
    let endless = format!(
        r#"{{"verification_uri":"https://i/d","user_code":"{}"}}"#,
        "A".repeat(2049)
    );
    assert_eq!(
        invalid(refused(200, &endless)),
        "user_code is missing",
        "over 2 KiB"
    );
    let listed = r#"["https://idp.example/device","ABCD"]"#;
    assert_eq!(invalid(refused(200, listed)), "not a device grant answer");
    let odd_status =
        r#"{"verification_uri":"https://i/d","user_code":"ABCD","status":{"vendor_code":"-1"}}"#;
    assert_eq!(
        invalid(refused(200, odd_status)),
        "not a device grant answer"
    );
    let unconfigured = r#"{"status":{"vendor_code":-1,"reason":"no SSO configured"}}"#;
    assert!(matches!(refused(500, unconfigured), Error::Rejected { .. }));
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
    let (_, read) = next(started(&auth).await).await;
    let lost = Error::transport(Exchange::Login, "connection reset");
    let before = Instant::now();
    let (request, read) = next(read(Err(lost))).await;
    assert_eq!(
        Instant::now() - before,
        Duration::from_secs(5),
        "after the interval"
    );
    assert_eq!(body_of(&request)["user_code"], "BCDFGHJK");
    let slow = Error::Timeout {
        exchange: Exchange::Login,
        after: Duration::from_secs(30),
    };
    let (request, read) = next(read(Err(slow))).await;
    assert_eq!(body_of(&request)["user_code"], "BCDFGHJK");
    let approved = format!(r#"{{"access_token":"{}"}}"#, jwt_expiring_in(600));
    assert!(outcome(reply(read, 200, &approved)).is_ok());
    assert_eq!(prompts.lock().unwrap().len(), 1, "the user was asked once");

    // What no other poll can change ends it.
    let (_, read) = next(started(&auth).await).await;
    let refused = Error::InsecureTransport {
        origin: "http://sql-node".into(),
    };
    let error = outcome(read(Err(refused))).unwrap_err();
    assert!(matches!(error, Error::InsecureTransport { .. }), "{error}");
}

#[tokio::test(start_paused = true)]
async fn slow_down_adds_five_seconds_to_the_interval() {
    let (auth, _) = device();
    let (_, read) = next(started(&auth).await).await;
    let slow_down = r#"{"status":{"reason":"slow_down","sql_state":"","vendor_code":-1}}"#;
    let before = Instant::now();
    let (_, read) = next(reply(read, 400, slow_down)).await;
    assert_eq!(Instant::now() - before, Duration::from_secs(10));
    let before = Instant::now();
    let (_, _) = next(reply(read, 400, PENDING)).await;
    assert_eq!(
        Instant::now() - before,
        Duration::from_secs(10),
        "and it stays so"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_failing_until_the_deadline_says_so_rather_than_timed_out() {
    let (auth, _) = device();
    let auth = auth.approval_timeout(Duration::from_secs(8));
    let mut step = started(&auth).await;
    // A 5xx that speaks of a timeout is the server failing, not the user deciding.
    let failing =
        r#"{"status":{"reason":"upstream timeout","sql_state":"HYT00","vendor_code":-1}}"#;
    let error = loop {
        let (_, read) = next(step).await;
        match reply(read, 503, failing).into_parts() {
            Ok(outcome) => break outcome.unwrap_err(),
            Err(more) => step = LoginStep::then(more.next, more.read).after(more.wait),
        }
    };
    match &error {
        Error::Rejected { status, .. } => assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE),
        other => panic!("expected the server's failure, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_endless_approval_time_is_a_day_and_no_panic() {
    let (auth, _) = device();
    let auth = auth.approval_timeout(Duration::MAX);
    assert!(format!("{auth:?}").contains("approval_timeout: 86400s"));
    let request = first_poll(&auth, Duration::from_secs(3600)).await;
    assert_eq!(body_of(&request)["timeout"], "600");
}

/// What each answer to a poll means, one signal at a time: any one of them says "not yet".
#[tokio::test(start_paused = true)]
async fn each_sign_of_waiting_alone_means_not_yet_and_a_token_wins_over_all() {
    let not_yet = |status: u16, body: &'static str| async move {
        let (auth, _) = device();
        let (_, read) = next(started(&auth).await).await;
        let step = reply(read, status, body);
        !step.is_done()
    };
    assert!(not_yet(408, "").await, "a 408 with no body");
    assert!(
        not_yet(408, r#"{"status":{"vendor_code":-1}}"#).await,
        "a 408 alone"
    );
    let hyt = r#"{"status":{"sql_state":"HYT01","vendor_code":-1}}"#;
    assert!(not_yet(400, hyt).await, "SQLSTATE class HYT alone");
    assert!(
        !not_yet(400, "not json").await,
        "a 400 that says nothing is an answer"
    );

    let (auth, _) = device();
    let (_, read) = next(started(&auth).await).await;
    let token = jwt_expiring_in(600);
    let approved = format!(
        r#"{{"access_token":"{token}","status":{{"reason":"no longer pending","vendor_code":0}}}}"#
    );
    assert!(outcome(reply(read, 200, &approved)).is_ok());
}

#[tokio::test]
async fn a_device_grant_the_node_refuses_in_band_is_its_rejection() {
    let (auth, prompts) = device();
    login(&auth).await;
    let in_band =
        r#"{"status":{"reason":"no SSO for sales","sql_state":"28000","vendor_code":-1205}}"#;
    let error = outcome(answered(200, in_band, |a| auth.read_login_answer(a))).unwrap_err();
    assert_eq!(error.vendor_code(), Some(-1205), "{error}");
    let error = outcome(answered(403, in_band, |a| auth.read_login_answer(a))).unwrap_err();
    assert_eq!(error.vendor_code(), Some(-1205), "{error}");
    assert!(prompts.lock().unwrap().is_empty());
}
