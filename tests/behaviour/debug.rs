//! What users see of the layer's types in `Debug`: enough to tell them apart and see their
//! state, and never a secret. The one place that checks the `Debug` of every public type:
//! the layer and its service, `OcientAuth`, `Secret` and `Grant`, every `Error`,
//! `TokenEvent`, `TokenStatus`, `Answer`, `ResponseFuture` and `RetryUnauthorized`, and
//! single sign-on's `IdentityToken` and `DeviceCode`.
//! (`secrets` checks, after real traffic, that no output shows the secrets seen on the way.)

use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use ocient_mock::MockOcient;
use tower::Service;
use tower_token_refresh::{
    Answer, DeviceCode, Error, ErrorCode, Exchange, Grant, IdentityToken, OcientAuth, Secret,
    TokenEvent, TokenRefreshLayer,
};

use crate::common::{auth, layered, query, secs, send, BASE};

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

#[test]
fn single_sign_on_shows_which_way_and_no_token_or_code() {
    let id = IdentityToken::id_token("idp-t0ken");
    let access = IdentityToken::access_token("idp-t0ken");
    assert_eq!(format!("{id:?}"), "IdentityToken(id_token: <redacted>)");
    assert_eq!(
        format!("{access:?}"),
        "IdentityToken(access_token: <redacted>)"
    );
    let code = DeviceCode::new("https://idp.example/device", "BCDF-GHJK");
    assert_shows_but_hides(&format!("{code:?}"), &["DeviceCode", "idp.example"], "BCDF");
    let auth = OcientAuth::new(BASE.parse().unwrap())
        .sso_token_from(move || std::future::ready(Ok(id.clone())));
    let shown = format!("{auth:?}");
    assert_shows_but_hides(
        &shown,
        &["sso_token", "approval_timeout: 300s"],
        "idp-t0ken",
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

/// `shown` contains none of `secrets`.
fn assert_hides(shown: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn ocient_auth_shows_its_nodes_user_and_database_but_no_password_userinfo_or_token() {
    let auth = OcientAuth::new("https://ops:url-pa55@sql-node-1:9443".parse().unwrap())
        .node("https://sql-node-2".parse().unwrap())
        .credentials("jdoe", "pa55")
        .database("retail_analytics")
        .initial_token("t0k3n", secs(60));
    let shown = format!("{auth:?}");
    assert_shows_but_hides(
        &shown,
        &[
            "OcientAuth",
            "sql-node-1:9443",
            "sql-node-2",
            r#"username: Some("jdoe")"#,
            r#"password: Some("<redacted>")"#,
            r#"database: Some("retail_analytics")"#,
            r#"initial_token: Some("<redacted>")"#,
            "allow_plain_http: false",
        ],
        "pa55",
    );
    assert_hides(&shown, &["ops:", "t0k3n"]);

    let provided = OcientAuth::new(BASE.parse().unwrap())
        .credentials_from(|| async { Ok(("jdoe".to_owned(), "pa55".to_owned())) });
    let shown = format!("{provided:?}");
    assert_shows_but_hides(
        &shown,
        &[
            r#"username: Some("<provided>")"#,
            r#"password: Some("<provided>")"#,
        ],
        "pa55",
    );
}

#[test]
fn every_error_shows_its_fields() {
    let refused: Arc<dyn std::error::Error + Send + Sync> =
        Arc::new(std::io::Error::other("connection refused"));
    let errors: [(Error, &[&str]); 8] = [
        (
            Error::rejected(
                Exchange::Login,
                StatusCode::UNAUTHORIZED,
                Some(ErrorCode::Ocient {
                    vendor_code: -304,
                    sql_state: "08004".into(),
                }),
                "bad password",
            ),
            &[
                "Rejected",
                "exchange: Login",
                "status: 401",
                "vendor_code: -304",
                r#"sql_state: "08004""#,
                r#"reason: "bad password""#,
            ],
        ),
        (
            Error::rejected(
                Exchange::Refresh,
                StatusCode::BAD_REQUEST,
                Some(ErrorCode::Named("invalid_grant".into())),
                "spent",
            ),
            &[
                "Rejected",
                "exchange: Refresh",
                "status: 400",
                r#"Named("invalid_grant")"#,
                r#"reason: "spent""#,
            ],
        ),
        (
            Error::InvalidResponse {
                exchange: Exchange::Refresh,
                reason: "access_token is missing".into(),
            },
            &[
                "InvalidResponse",
                "exchange: Refresh",
                r#"reason: "access_token is missing""#,
            ],
        ),
        (
            Error::Transport {
                exchange: Exchange::Login,
                source: refused,
            },
            &["Transport", "exchange: Login", "connection refused"],
        ),
        (
            Error::Timeout {
                exchange: Exchange::Refresh,
                after: secs(30),
            },
            &["Timeout", "exchange: Refresh", "after: 30s"],
        ),
        (Error::MissingCredentials, &["MissingCredentials"]),
        (Error::NoRuntime, &["NoRuntime"]),
        (
            Error::InsecureTransport {
                origin: "http://sql-node.test:80".into(),
            },
            &["InsecureTransport", r#"origin: "http://sql-node.test:80""#],
        ),
    ];
    for (error, fields) in errors {
        let shown = format!("{error:?}");
        for field in fields {
            assert!(shown.contains(field), "{field} missing from {shown}");
        }
    }
}

/// A credentials provider's error may quote a secret: `Debug` shows that there was one, not
/// what it says.
#[tokio::test(start_paused = true)]
async fn a_credentials_error_hides_what_the_provider_said() {
    let auth = OcientAuth::new(BASE.parse().unwrap())
        .credentials_from(|| async { Err("vault sealed, pa55 kept".into()) });
    let (service, _recorder) = layered(MockOcient::new(), TokenRefreshLayer::new(auth));
    let error = service.warm_up().await.unwrap_err();
    let shown = format!("{error:?}");
    assert_shows_but_hides(&shown, &["Provider", "ProviderError(<not shown>)"], "pa55");
}

#[test]
fn an_invalid_secret_says_why_but_not_what() {
    let error = Secret::new("t0k3n with a space").unwrap_err();
    assert_eq!(format!("{error:?}"), "NotVisibleAscii");
}

#[test]
fn an_invalid_lifetime_says_why() {
    let token = Secret::new("t0k3n").unwrap();
    let error = Grant::from_expires_in(token, 1e-15).unwrap_err();
    assert_eq!(format!("{error:?}"), "UnderOneSecond");
}

#[test]
fn token_events_show_what_happened_but_no_token() {
    let grant = Grant::new(Secret::new("t0k3n").unwrap(), secs(60))
        .with_refresh_token(Secret::new("r3fresh").unwrap());
    let error = Error::Timeout {
        exchange: Exchange::Refresh,
        after: secs(30),
    };
    let from: Uri = "https://sql-node-1/".parse().unwrap();
    let to: Uri = "https://sql-node-2/".parse().unwrap();
    let events: [(TokenEvent<'_>, &[&str]); 4] = [
        (
            TokenEvent::Obtained {
                generation: 2,
                grant: &grant,
            },
            &["Obtained", "generation: 2", "Grant {", "lifetime: 60s"],
        ),
        (
            TokenEvent::Failed {
                error: &error,
                consecutive_failures: 3,
                retry_in: secs(4),
            },
            &[
                "Failed",
                "Timeout",
                "consecutive_failures: 3",
                "retry_in: 4s",
            ],
        ),
        (
            TokenEvent::FailedOver {
                from: &from,
                to: &to,
                error: &error,
            },
            &["FailedOver", "sql-node-1", "sql-node-2", "Timeout"],
        ),
        (
            TokenEvent::Revoked { generation: 2 },
            &["Revoked", "generation: 2"],
        ),
    ];
    for (event, fields) in &events {
        let shown = format!("{event:?}");
        assert_shows_but_hides(&shown, fields, "t0k3n");
        assert_hides(&shown, &["r3fresh"]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_status_shows_where_the_token_is_but_not_the_token() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let (service, recorder) = layered(mock, TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    let sent = &recorder.seen_at("/v1/execute/retail_analytics")[0];
    let bearer = sent.headers[AUTHORIZATION].to_str().unwrap();
    let token = bearer.trim_start_matches("Bearer ");
    let shown = format!("{:?}", service.status());
    assert_shows_but_hides(
        &shown,
        &[
            "TokenStatus {",
            "generation: 1",
            "phase: Fresh",
            "expires_in: Some(",
            "refreshing: false",
            "consecutive_failures: 0",
            "last_error: None",
        ],
        token,
    );
}

#[test]
fn an_answer_shows_its_status_and_sizes_but_not_its_body() {
    let headers =
        HeaderMap::from_iter([(CONTENT_TYPE, HeaderValue::from_static("application/json"))]);
    let body = r#"{"access_token":"t0k3n-in-body","expires_in":60}"#;
    let answer = Answer::new(Exchange::Refresh, StatusCode::OK, headers, body);
    let shown = format!("{answer:?}");
    let body_len = format!("body_len: {}", body.len());
    assert_shows_but_hides(
        &shown,
        &[
            "Answer {",
            "exchange: Refresh",
            "status: 200",
            "headers: 1",
            &body_len,
        ],
        "t0k3n-in-body",
    );
}

#[cfg(feature = "retry")]
#[test]
fn retry_unauthorized_shows_whether_it_has_retried() {
    let policy = tower_token_refresh::RetryUnauthorized::default();
    assert_eq!(
        format!("{policy:?}"),
        "RetryUnauthorized { retried: false }"
    );
}

#[test]
fn a_per_identity_layer_and_its_service_show_their_settings_but_no_identity_or_secret() {
    #[derive(Clone, PartialEq, Eq, Hash)]
    struct User(&'static str);
    let layer = tower_token_refresh::PerIdentityLayer::new(|user: &User| {
        OcientAuth::new("https://sql-node".parse().unwrap()).credentials(user.0, "pa55")
    })
    .default_identity(User("service-account"))
    .max_identities(100)
    .name("gateway");
    let shown = format!("{layer:?}");
    assert_shows_but_hides(
        &shown,
        &["PerIdentityLayer", "max_identities: 100", "gateway"],
        "service-account",
    );
    let service = tower::Layer::layer(&layer, MockOcient::new());
    let shown = format!("{service:?}");
    assert_shows_but_hides(&shown, &["PerIdentity", "inner: MockOcient"], "pa55");
}
