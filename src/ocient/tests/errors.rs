//! The Ocient words of `Error`: a vendor code and SQLSTATE in a rejection, and how a device
//! grant ended.

use super::*;
use crate::error::MAX_REASON;

fn rejected(reason: &str) -> Error {
    let code = ErrorCode::Ocient {
        vendor_code: -1205,
        sql_state: "08004".into(),
    };
    let status = StatusCode::UNAUTHORIZED;
    Error::rejected(Exchange::Refresh, status, Some(code), reason)
}

#[test]
fn a_rejection_by_a_node_says_its_vendor_code_and_sql_state() {
    let ocient = rejected("no");
    assert_eq!(ocient.vendor_code(), Some(-1205));
    assert_eq!(
        ocient.to_string(),
        "token refresh rejected: HTTP 401 Unauthorized, vendor_code -1205, sql_state 08004: no"
    );
    let named = ErrorCode::Named("invalid_grant".into());
    let oauth = Error::rejected(Exchange::Login, StatusCode::BAD_REQUEST, Some(named), "");
    assert_eq!(
        oauth.vendor_code(),
        None,
        "no vendor code in another protocol's"
    );
    let bare = Error::rejected(Exchange::Login, StatusCode::FORBIDDEN, None, "");
    assert_eq!(bare.vendor_code(), None);
}

#[test]
fn a_sql_state_the_server_wrote_is_cleaned_and_a_secret_in_it_redacted() {
    let odd_state = ErrorCode::Ocient {
        vendor_code: -1,
        sql_state: "0\u{1b}[2J8".into(),
    };
    let status = StatusCode::BAD_REQUEST;
    let error = Error::rejected(Exchange::Login, status, Some(odd_state), "");
    assert!(error.to_string().ends_with("sql_state 0[2J8"), "{error}");
    let echoed = ErrorCode::Ocient {
        vendor_code: -1,
        sql_state: "t0k3n".into(),
    };
    let error = Error::rejected(Exchange::Login, status, Some(echoed), "").without_secret("t0k3n");
    assert!(!format!("{error} {error:?}").contains("t0k3n"), "{error}");
}

#[test]
fn a_device_grant_says_how_it_ended_in_the_servers_words_cleaned_and_cut() {
    let denied = Error::device_grant(DeviceGrantEnd::Denied, "access_denied\u{1b}[2J: no");
    assert_eq!(
        denied.to_string(),
        "device sign-in denied: access_denied[2J: no"
    );
    let timed_out = Error::device_grant(DeviceGrantEnd::TimedOut, "");
    assert_eq!(timed_out.to_string(), "device sign-in not approved in time");
    let long = Error::device_grant(DeviceGrantEnd::Denied, &"x".repeat(1000)).shortened();
    assert_eq!(
        long.to_string().len(),
        "device sign-in denied: ".len() + MAX_REASON
    );
    let echoed = Error::device_grant(DeviceGrantEnd::Denied, "t0k3n is unknown, t0k3n!");
    let echoed = echoed.without_secret("t0k3n");
    let shown = format!("{echoed} {echoed:?}");
    assert_eq!(shown.matches("<redacted>").count(), 4, "{shown}");
}
