use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use super::{Identity, IDENTITY_HEADER};
use crate::device::DeviceApproval;
use crate::mock::MockOcient;
use crate::state::Counters;
use crate::test_support::*;

/// A login's token, for `database` if one is given.
async fn login_as(mock: &MockOcient, username: &str, database: Option<&str>) -> String {
    let mut body = json!({ "username": username, "password": "pw" });
    if let Some(database) = database {
        body["database"] = Value::from(database);
    }
    let login = request(Method::POST, "/v1/login", None, &body.to_string());
    let (status, answer) = send(mock, login).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    token_of(&answer)
}

/// A query with `token`, the test saying `identity` sent it.
async fn query_as(mock: &MockOcient, token: Option<&str>, identity: &str) -> (StatusCode, Value) {
    let mut query = execute_request(token);
    let identity = HeaderValue::from_str(identity).expect("a header value");
    query.headers_mut().insert(IDENTITY_HEADER, identity);
    send(mock, query).await
}

/// The answer's HTTP status and `vendor_code`.
async fn outcome(mock: &MockOcient, token: &str, identity: &str) -> (StatusCode, i64) {
    let (status, answer) = query_as(mock, Some(token), identity).await;
    (status, vendor_code(&answer))
}

const OK: (StatusCode, i64) = (StatusCode::OK, 0);
const REFUSED: (StatusCode, i64) = (StatusCode::FORBIDDEN, -1205);

fn users() -> MockOcient {
    MockOcient::new().user("alice", "pw").user("bob", "pw")
}

#[tokio::test]
async fn a_token_sent_for_another_user_is_refused_and_counted() {
    let mock = users();
    let alice = login_as(&mock, "alice", None).await;
    let (status, answer) = query_as(&mock, Some(&alice), "bob").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer,
        json!({"status": {"reason": "token belongs to another identity", "sql_state": "08004", "vendor_code": -1205}})
    );
    let (status, answer) = query_as(&mock, Some(&alice), "alice").await;
    assert_eq!((status, vendor_code(&answer)), OK);
    assert_eq!(answer["data"], json!([[1]]));
    let expected = Counters {
        logins: 1,
        queries_ok: 1,
        queries_wrong_identity: 1,
        peak_token_requests_in_flight: 1,
        ..Counters::default()
    };
    assert_eq!(mock.counters(), expected);
}

// The token's database, not the path's: the query goes to `/v1/execute/system` throughout.
#[tokio::test]
async fn a_named_database_must_be_the_one_the_token_was_issued_for() {
    let mock = users();
    let sales = login_as(&mock, "alice", Some("sales")).await;
    assert_eq!(outcome(&mock, &sales, "alice/sales").await, OK);
    assert_eq!(outcome(&mock, &sales, "alice").await, OK, "any database");
    assert_eq!(outcome(&mock, &sales, "alice/system").await, REFUSED);
    assert_eq!(outcome(&mock, &sales, "bob/sales").await, REFUSED);
    assert_eq!(outcome(&mock, &sales, "alice/").await, REFUSED);
    let counters = mock.counters();
    assert_eq!(
        (counters.queries_ok, counters.queries_wrong_identity),
        (2, 3)
    );
}

#[tokio::test]
async fn a_refreshed_token_keeps_its_user_and_takes_the_refreshs_database() {
    let mock = users();
    let sales = login_as(&mock, "alice", Some("sales")).await;
    let body = r#"{"database": "hr"}"#;
    let to_hr = request(Method::POST, "/v1/token_refresh", Some(&sales), body);
    let hr = token_of(&send(&mock, to_hr).await.1);
    assert_eq!(outcome(&mock, &hr, "alice/hr").await, OK);
    assert_eq!(outcome(&mock, &hr, "alice/sales").await, REFUSED);
    assert_eq!(outcome(&mock, &hr, "jdoe").await, REFUSED);
    assert_eq!(
        outcome(&mock, &sales, "alice/sales").await,
        OK,
        "the old one"
    );

    let again = token_of(&refresh(&mock, &hr).await.1);
    assert_eq!(outcome(&mock, &again, "alice/hr").await, OK, "no body");
    assert_eq!(outcome(&mock, &again, "bob").await, REFUSED);
}

#[tokio::test]
async fn sso_and_device_tokens_belong_to_whom_they_signed_in() {
    let mock = MockOcient::new()
        .sso_tokens(["idp-token"])
        .device_approval(DeviceApproval::Approve);
    let (_, answer) = exchange(&mock, json!({"id_token": "idp-token", "database": "sales"})).await;
    let sso = token_of(&answer);
    assert_eq!(outcome(&mock, &sso, "sso-user/sales").await, OK);
    assert_eq!(outcome(&mock, &sso, "jdoe").await, REFUSED);

    let grant = request(
        Method::POST,
        "/v1/sso_device_grant",
        None,
        r#"{"database": "hr"}"#,
    );
    let (_, answer) = send(&mock, grant).await;
    let poll = json!({ "user_code": answer["user_code"] }).to_string();
    let poll = request(Method::POST, "/v1/sso_device_grant_verify", None, &poll);
    let device = token_of(&send(&mock, poll).await.1);
    assert_eq!(outcome(&mock, &device, "device-user/hr").await, OK);
    assert_eq!(outcome(&mock, &device, "sso-user/hr").await, REFUSED);
}

// Only a valid token is held to the claim: a stale or missing one is refused and counted as
// it would be without it, and without the header nothing is checked.
#[tokio::test(start_paused = true)]
async fn without_the_header_or_a_valid_token_queries_are_answered_as_before() {
    let mock = users().token_lifetime(Duration::from_secs(10));
    let alice = login_as(&mock, "alice", Some("sales")).await;
    assert_eq!(execute(&mock, &alice).await, OK);
    let (status, answer) = query_as(&mock, Some("mock.9.0000000000000000"), "bob").await;
    assert_eq!(
        (status, vendor_code(&answer)),
        (StatusCode::UNAUTHORIZED, -1205)
    );
    assert_eq!(answer["status"]["reason"], "security token invalid");
    let (status, answer) = query_as(&mock, None, "bob").await;
    assert_eq!(
        (status, vendor_code(&answer)),
        (StatusCode::UNAUTHORIZED, -1204)
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        outcome(&mock, &alice, "bob").await,
        (StatusCode::UNAUTHORIZED, -1208)
    );
    let expected = Counters {
        logins: 1,
        queries_ok: 1,
        queries_bad_token: 2,
        queries_no_token: 1,
        peak_token_requests_in_flight: 1,
        ..Counters::default()
    };
    assert_eq!(mock.counters(), expected);
}

#[tokio::test]
async fn errors_in_band_leave_a_wrong_identity_a_403() {
    let mock = users().errors_in_band(true);
    let alice = login_as(&mock, "alice", None).await;
    assert_eq!(outcome(&mock, &alice, "bob").await, REFUSED);
    assert_eq!(
        execute(&mock, "mock.9.0000000000000000").await,
        (StatusCode::OK, -1205),
        "a bad token is still in band"
    );
}

#[tokio::test]
async fn a_username_with_a_slash_is_named_with_its_database() {
    let mock = MockOcient::new().user("team/alice", "pw");
    let token = login_as(&mock, "team/alice", None).await;
    assert_eq!(outcome(&mock, &token, "team/alice/system").await, OK);
    assert_eq!(
        outcome(&mock, &token, "team/alice").await,
        REFUSED,
        "user team, database alice"
    );
    assert_eq!(outcome(&mock, &token, "team").await, REFUSED);
}

/// Headers carrying this identity header value.
fn headers(value: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_bytes(value).expect("a header value");
    headers.insert(IDENTITY_HEADER, value);
    headers
}

#[test]
fn the_claim_is_read_trimmed_and_byte_for_byte() {
    assert_eq!(Identity::claimed(&HeaderMap::new()), None);
    let alice = headers(b" alice/sales\t");
    let alice = Identity::claimed(&alice).expect("a claim");
    assert!(alice.owns("alice", "sales"));
    assert!(!alice.owns("alice", "sales "));
    assert!(!alice.owns("Alice", "sales"));
    let anywhere = headers(b"alice");
    let anywhere = Identity::claimed(&anywhere).expect("a claim");
    assert!(anywhere.owns("alice", "sales") && anywhere.owns("alice", ""));
    let not_ascii = headers("zoë".as_bytes());
    let not_ascii = Identity::claimed(&not_ascii).expect("a claim");
    assert!(not_ascii.owns("zoë", "system"));
    assert!(!not_ascii.owns("zoe", "system"));
}
