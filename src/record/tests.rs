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
        (Error::NoIdentity, "no_identity"),
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
        let no_exchange = ["no_runtime", "no_identity"];
        assert_eq!(failure.ends_exchanges(), !no_exchange.contains(&label));
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

/// The gauges' values, by name, as the recorder holds them.
fn gauges(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<(String, f64)> {
    use metrics_util::debugging::DebugValue;
    let mut gauges: Vec<(String, f64)> = (snapshotter.snapshot().into_vec().into_iter())
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Gauge(value) => Some((key.key().name().to_owned(), value.into_inner())),
            _ => None,
        })
        .collect();
    gauges.sort_by(|a, b| a.0.cmp(&b.0));
    gauges
}

#[test]
fn the_gauges_never_go_back_to_an_older_token_whatever_order_they_hear_in() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let metrics = Metrics::new("test", true);
        let now = Instant::now();
        let installed = |generation, expires_in| Transition::Installed {
            generation,
            expires_at: now + Duration::from_secs(expires_in),
            obtained: None,
        };
        metrics.hear(&installed(2, 600));
        // Told late: the older token's install, and its revocation.
        metrics.hear(&installed(1, 300));
        metrics.hear(&Transition::Revoked { generation: 1 });
        let shown = gauges(&snapshotter);
        assert_eq!(shown[1], ("token_generation".to_owned(), 2.0));
        let expiry = shown[0].1 - unix_seconds(now);
        assert!(
            (expiry - 600.0).abs() < 1.0,
            "still the newer token's: {expiry}"
        );
        // The current token's revocation shows it unusable from now.
        metrics.hear(&Transition::Revoked { generation: 2 });
        let (name, expiry) = gauges(&snapshotter).remove(0);
        assert_eq!(name, "token_expiry_timestamp_seconds");
        let unix_now = unix_seconds(now);
        assert!((expiry - unix_now).abs() < 1.0, "{expiry} vs {unix_now}");
    });
}
