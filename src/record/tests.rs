use std::time::Duration;

use http::StatusCode;

use super::*;
use crate::error::ProviderError;

#[test]
fn every_error_has_one_label_as_an_outcome_and_as_a_reason() {
    let login = Exchange::Login;
    let labelled = [
        (
            Error::rejected(login, StatusCode::UNAUTHORIZED, None, ""),
            "rejected",
        ),
        (Error::transport(login, "refused"), "transport"),
        (
            Error::Timeout {
                exchange: login,
                after: Duration::from_secs(1),
            },
            "timeout",
        ),
        (Error::invalid_response(login, "not JSON"), "invalid_answer"),
        (Error::MissingCredentials, "credentials"),
        (
            Error::Provider {
                source: ProviderError::new("vault sealed"),
            },
            "credentials",
        ),
        (
            Error::InsecureTransport {
                origin: "http://sql-node".into(),
            },
            "insecure",
        ),
        (Error::NoRuntime, "no_runtime"),
    ];
    for (error, label) in labelled {
        let failure = Failure::of(&error);
        assert_eq!(failure.label(), label, "{error}");
        assert!(
            Failure::ALL.contains(&failure),
            "a reason registered at zero"
        );
        let outcome = labels::outcome(Err(&error));
        assert_eq!(outcome, label, "the same word as an outcome");
        assert_eq!(failure.ends_exchanges(), label != "no_runtime");
    }
    assert_eq!(labels::outcome(Ok(())), "ok");
}

#[cfg(feature = "ocient")]
#[test]
fn a_device_grant_the_user_denied_is_rejected_and_one_not_approved_in_time_a_timeout() {
    use crate::error::DeviceGrantEnd;
    let denied = Error::device_grant(DeviceGrantEnd::Denied, "");
    assert_eq!(Failure::of(&denied).label(), "rejected");
    let timed_out = Error::device_grant(DeviceGrantEnd::TimedOut, "");
    assert_eq!(Failure::of(&timed_out).label(), "timeout");
}

#[test]
fn an_instant_reads_as_unix_seconds_by_the_system_clock() {
    let unix_now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let now = Instant::now();
    let ahead = unix_seconds(now + Duration::from_secs(60)) - unix_now;
    let behind = unix_seconds(now - Duration::from_secs(60)) - unix_now;
    assert!((ahead - 60.0).abs() < 1.0, "{ahead}");
    assert!((behind + 60.0).abs() < 1.0, "{behind}");
}
