//! The device grant as a state machine, driven by hand: each answer in, the next request
//! (or the outcome) out, on tokio's paused clock.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::*;
use crate::endpoint::LoginReader;
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

/// The request a step asks for, and the reader of its answer.
async fn next(step: LoginStep<'_>) -> (Request<Bytes>, LoginReader<'_>) {
    match step {
        LoginStep::Continue { next, then } => (next.await.unwrap(), then),
        LoginStep::Done(outcome) => panic!("over early: {:?}", outcome.err()),
    }
}

fn outcome(step: LoginStep<'_>) -> Result<Grant, Error> {
    match step {
        LoginStep::Done(outcome) => outcome,
        LoginStep::Continue { .. } => panic!("not over"),
    }
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
        step = answered(400, answer, read);
    }
    let (request, read) = next(step).await;
    sent.push((Instant::now(), body_of(&request)));
    let token = jwt_expiring_in(900);
    let approved = format!(r#"{{"access_token":"{token}","username":"jdoe","database":"sales"}}"#);
    let grant = outcome(answered(200, &approved, read)).unwrap();
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
    // Under the 30 s the layer gives a request, less the interval waited before it.
    let asked: Vec<_> = sent
        .iter()
        .map(|(_, body)| body["timeout"].clone())
        .collect();
    assert_eq!(asked, ["22", "17", "17"]);
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
    let step = answered(408, TIMED_OUT, read);
    let (request, _) = next(step).await;
    assert_eq!(Instant::now(), held_until, "no interval after a long poll");
    assert_eq!(body_of(&request)["user_code"], "BCDFGHJK");
}

#[tokio::test(start_paused = true)]
async fn a_denial_ends_the_device_grant_as_denied() {
    let (auth, _) = device();
    let (_, read) = next(started(&auth).await).await;
    let error = outcome(answered(403, DENIED, read)).unwrap_err();
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
        match answered(400, PENDING, read) {
            LoginStep::Done(outcome) => break outcome.unwrap_err(),
            more => step = more,
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
async fn a_server_failure_while_polling_stays_a_rejection() {
    let (auth, _) = device();
    let (_, read) = next(started(&auth).await).await;
    let failed = r#"{"status":{"reason":"internal error","sql_state":"58000","vendor_code":-1}}"#;
    let error = outcome(answered(503, failed, read)).unwrap_err();
    assert!(matches!(error, Error::Rejected { .. }), "{error}");
}

#[tokio::test(start_paused = true)]
async fn the_node_asks_for_less_wait_than_the_layer_gives_a_request() {
    for (request_timeout, asked) in [(30, "22"), (60, "45"), (4, "3"), (1, "1"), (3600, "600")] {
        let (auth, _) = device();
        let auth = auth.approval_timeout(Duration::from_secs(7200));
        login(&auth).await;
        let headers = http::HeaderMap::new();
        let answer = Answer::new(
            Exchange::Login,
            StatusCode::OK,
            &headers,
            STARTED.as_bytes(),
        )
        .within(Duration::from_secs(request_timeout));
        let (request, _) = next(auth.read_login_answer(answer)).await;
        assert_eq!(
            body_of(&request)["timeout"],
            asked,
            "for {request_timeout} s"
        );
    }
    let (auth, _) = device();
    login(&auth).await;
    let headers = http::HeaderMap::new();
    let answer = Answer::new(
        Exchange::Login,
        StatusCode::OK,
        &headers,
        STARTED.as_bytes(),
    )
    .within(Duration::from_secs(3600));
    let (request, _) = next(auth.read_login_answer(answer)).await;
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

    for (status, body) in [
        (200, r#"{"verification_uri":"https://idp.example/device"}"#),
        (200, r#"{"user_code":"ABCD"}"#),
        (200, r#"["https://idp.example/device","ABCD"]"#),
        (
            500,
            r#"{"status":{"vendor_code":-1,"reason":"no SSO configured"}}"#,
        ),
    ] {
        let error = outcome(answered(status, body, |a| auth.read_login_answer(a))).unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidResponse { .. } | Error::Rejected { .. }
            ),
            "{body}: {error}"
        );
    }
    assert_eq!(prompts.lock().unwrap().len(), 1, "no prompt without a code");
}

#[test]
fn debug_names_the_device_grant_and_hides_the_user_code() {
    let (auth, _) = device();
    assert!(format!("{auth:?}").contains(r#"sign_in: Some("device_grant")"#));
    let code = DeviceCode {
        verification_uri: "https://idp.example/device".into(),
        verification_uri_complete: None,
        user_code: "BCDFGHJK".into(),
    };
    let shown = format!("{code:?}");
    assert!(
        !shown.contains("BCDFGHJK") && shown.contains("idp.example"),
        "{shown}"
    );
}
