//! What users see of the layer's types in `Debug`: enough to tell them apart and see their
//! state, and never a secret.

use std::time::Duration;

use ocient_mock::MockOcient;
use tower::Service;
use tower_token_refresh::{Grant, OcientAuth, Secret, TokenRefreshLayer};

use crate::common::{auth, layered, query};

#[test]
fn a_secret_and_a_grant_show_their_shape_but_not_the_token() {
    let secret = Secret::new("t0k3n-abc").unwrap();
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    let grant = Grant::new(secret, Duration::from_secs(60));
    let shown = format!("{grant:?}");
    assert!(!shown.contains("t0k3n-abc"), "{shown}");
    assert!(shown.starts_with("Grant {"), "{shown}");
    assert!(shown.contains("lifetime: 60s"), "{shown}");
}

#[test]
fn the_layer_shows_its_configuration_but_not_the_password() {
    let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials("jdoe", "pa55");
    let layer = TokenRefreshLayer::new(auth)
        .refresh_at(0.3)
        .refresh_when_idle(true);
    let shown = format!("{layer:?}");
    assert_shows_but_hides(
        &shown,
        &[
            "TokenRefreshLayer",
            "jdoe",
            "refresh_at: 0.3",
            "refresh_when_idle: true",
        ],
        "pa55",
    );
}

/// `shown` names every one of `fields` and nowhere shows `secret`.
fn assert_shows_but_hides(shown: &str, fields: &[&str], secret: &str) {
    assert!(!shown.contains(secret), "{shown}");
    for field in fields {
        assert!(shown.contains(field), "{field} missing from {shown}");
    }
}

#[test]
fn the_service_shows_the_inner_service_and_the_node_but_no_secret() {
    let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials("jdoe", "pa55");
    let service = tower::Layer::layer(&TokenRefreshLayer::new(auth), MockOcient::new());
    let shown = format!("{service:?}");
    assert_shows_but_hides(
        &shown,
        &[
            "TokenRefresh",
            "inner: MockOcient",
            "https://sql-node/",
            "token:",
        ],
        "pa55",
    );
    assert!(
        !shown.contains("<redacted>@"),
        "no userinfo to hide: {shown}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_future_says_whether_it_was_sent_or_waits() {
    let (mut service, _recorder) = layered(MockOcient::new(), TokenRefreshLayer::new(auth()));
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    let waiting = service.call(query());
    assert_eq!(
        format!("{waiting:?}"),
        r#"ResponseFuture { kind: "Waiting" }"#
    );
    waiting.await.unwrap();
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    let sent = service.call(query());
    assert_eq!(format!("{sent:?}"), r#"ResponseFuture { kind: "Called" }"#);
    sent.await.unwrap();
}
