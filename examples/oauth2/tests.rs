//! The OAuth 2.0 example's grant and authorization server, tested: the protocol trait fits
//! a second protocol. `cargo test` runs them (the example is marked `test = true`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_token_refresh::{
    Answer, Error, ErrorCode, Exchange, FailureKind, Secret, TokenEndpoint, TokenRefreshLayer,
};

use crate::oauth2::answer::oauth_error;
use crate::oauth2::encoding::{form_body, form_decode, form_encode, parse_form, BASE64, FORM};
use crate::oauth2::server::TokenServer;
use crate::oauth2::{
    client_secret, http_client, say_hello, ACCESS_LIFETIME, CLIENT_ID, CLIENT_SECRET, DEADLINE,
};
use crate::{grant_for, ClientAuth, OAuth2RefreshGrant};

fn answer_with(status: StatusCode, _: &HeaderMap, body: &str) -> Answer {
    Answer::new(Exchange::Refresh, status, HeaderMap::new(), body.to_owned())
}

/// What each answer here trades in.
fn traded() -> Secret {
    Secret::new("traded-refresh").unwrap()
}

fn offline_grant(client_auth: ClientAuth) -> OAuth2RefreshGrant {
    OAuth2RefreshGrant {
        token_url: "http://127.0.0.1:9/oauth/token".parse().unwrap(),
        api: "http://127.0.0.1:9/".parse().unwrap(),
        client_id: "s6BhdRkqt3".to_owned(),
        client_auth,
        refresh_token: Secret::new("tGzv3JOkF0XG5Qx2TlKWIA").unwrap(),
        default_lifetime: Duration::from_secs(60),
        rotated: Arc::default(),
    }
}

#[test]
fn an_answer_without_a_refresh_token_keeps_the_old_one() {
    let grant = offline_grant(ClientAuth::Body(Secret::new("x").unwrap()));
    let kept = Secret::new("kept-refresh").unwrap();
    let headers = HeaderMap::new();
    let body = r#"{"access_token":"new-access","token_type":"Bearer","expires_in":60}"#;
    let answer = answer_with(StatusCode::OK, &headers, body);
    let refreshed = grant.read_answer(answer, &kept).unwrap();
    assert_eq!(refreshed.access_token().expose(), "new-access");
    assert_eq!(refreshed.refresh_token().unwrap().expose(), "kept-refresh");
}

#[test]
fn base64_matches_rfc_4648_and_round_trips() {
    // The engine HTTP Basic goes through: RFC 4648's alphabet, padded, strict on decoding.
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in vectors {
        assert_eq!(BASE64.encode(plain), encoded);
        assert_eq!(BASE64.decode(encoded).unwrap(), plain.as_bytes());
    }
    for bad in ["Zg=", "Z===", "Zg==Zg==", "Z!==", "Zm9v=Zm9"] {
        assert!(BASE64.decode(bad).is_err(), "{bad}");
    }
}

#[test]
fn form_encoding_round_trips() {
    let value = "a+b/c= d&e%f~";
    let encoded = form_encode(value);
    assert_eq!(encoded, "a%2Bb%2Fc%3D+d%26e%25f%7E");
    assert_eq!(form_decode(&encoded).unwrap(), value);
    assert!(
        parse_form(b"a=1&a=2").is_none(),
        "repeated names are refused"
    );
    for bad in ["%", "%4", "%+F", "%zz", "%FF"] {
        assert!(form_decode(bad).is_none(), "{bad}");
    }
}

#[test]
fn refresh_request_is_rfc_6749_section_6() {
    // RFC 6749 section 2.3.1's example client and section 6's example refresh token.
    let grant = offline_grant(ClientAuth::Basic(Secret::new("gX1fBat3bV").unwrap()));
    let request = grant.refresh_request(&grant.refresh_token);
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri(), &grant.token_url);
    assert_eq!(request.headers()[CONTENT_TYPE], FORM);
    assert_eq!(
        request.headers()[AUTHORIZATION],
        "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"
    );
    assert!(request.headers()[AUTHORIZATION].is_sensitive());
    assert_eq!(
        request.body().as_ref(),
        b"grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA&client_id=s6BhdRkqt3"
    );

    let grant = offline_grant(ClientAuth::Body(Secret::new("gX1fBat3bV").unwrap()));
    let request = grant.refresh_request(&grant.refresh_token);
    assert!(request.headers().get(AUTHORIZATION).is_none());
    let form = parse_form(request.body()).unwrap();
    assert_eq!(form["client_secret"], "gX1fBat3bV");
    assert!(
        !format!("{grant:?}").contains("gX1fBat3bV"),
        "Debug hides the secret"
    );
}

#[test]
fn it_starts_from_a_refresh_token_alone() {
    let grant = offline_grant(ClientAuth::Body(Secret::new("x").unwrap()));
    assert!(grant.can_log_in(), "its login trades the refresh token");
    assert!(
        grant.initial_grant().is_none(),
        "no placeholder access token"
    );
}

#[test]
fn answers_rotate_the_refresh_token() {
    let grant = offline_grant(ClientAuth::Body(Secret::new("x").unwrap()));
    let headers = HeaderMap::new();
    let body = r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"bearer",
                   "expires_in":3600,"refresh_token":"new-rt"}"#;
    let next = grant
        .read_answer(answer_with(StatusCode::OK, &headers, body), &traded())
        .unwrap();
    assert_eq!(next.access_token().expose(), "2YotnFZFEjr1zCsicMWpAA");
    assert_eq!(next.lifetime(), Duration::from_secs(3600));
    assert_eq!(next.refresh_token().map(Secret::expose), Some("new-rt"));

    let no_expiry = r#"{"access_token":"a","token_type":"Bearer","refresh_token":"r"}"#;
    let next = grant
        .read_answer(answer_with(StatusCode::OK, &headers, no_expiry), &traded())
        .unwrap();
    assert_eq!(next.lifetime(), grant.default_lifetime);

    for (body, why) in [
        (
            r#"{"access_token":"a","token_type":"mac","refresh_token":"r"}"#,
            "not Bearer",
        ),
        (
            r#"{"access_token":"a","refresh_token":"r"}"#,
            "token_type is missing",
        ),
        (
            r#"{"token_type":"Bearer","refresh_token":"r"}"#,
            "access_token is missing",
        ),
        (
            r#"{"access_token":"a","token_type":"Bearer","expires_in":0,"refresh_token":"r"}"#,
            "not positive",
        ),
        ("not json at all", "not JSON"),
    ] {
        match grant.read_answer(answer_with(StatusCode::OK, &headers, body), &traded()) {
            Err(Error::InvalidResponse { reason, .. }) => {
                assert!(reason.contains(why), "{body}: {reason}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn error_answers_become_rejections() {
    let grant = offline_grant(ClientAuth::Body(Secret::new("x").unwrap()));
    let headers = HeaderMap::new();
    let body = r#"{"error":"invalid_grant","error_description":"refresh token already used"}"#;
    let error = grant
        .read_answer(
            answer_with(StatusCode::BAD_REQUEST, &headers, body),
            &traded(),
        )
        .unwrap_err();
    match &error {
        Error::Rejected {
            exchange,
            status,
            code,
            reason,
            ..
        } => {
            assert_eq!(*exchange, Exchange::Refresh);
            assert_eq!(*status, StatusCode::BAD_REQUEST);
            assert_eq!(*code, Some(ErrorCode::Named("invalid_grant".into())));
            assert_eq!(reason, "refresh token already used");
        }
        other => panic!("{other:?}"),
    }
    #[cfg(feature = "ocient")]
    assert_eq!(
        error.vendor_code(),
        None,
        "no Ocient code in an OAuth answer"
    );
    assert_eq!(grant.classify(&error), FailureKind::Revoked);

    let body = r#"{"error":"invalid_client"}"#;
    let error = grant
        .read_answer(
            answer_with(StatusCode::UNAUTHORIZED, &headers, body),
            &traded(),
        )
        .unwrap_err();
    assert_eq!(oauth_error(&error), Some("invalid_client"));
    assert_eq!(
        grant.classify(&error),
        FailureKind::Refused,
        "the refresh token may be fine, the client is not"
    );

    let error = grant
        .read_answer(
            answer_with(StatusCode::BAD_GATEWAY, &headers, "<html>"),
            &traded(),
        )
        .unwrap_err();
    assert_eq!(grant.classify(&error), FailureKind::Away);
}

#[test]
fn a_lifetime_the_crate_refuses_is_refused_here_too() {
    let grant = offline_grant(ClientAuth::Body(Secret::new("x").unwrap()));
    let headers = HeaderMap::new();
    let answer = |expires_in: &str| {
        format!(
            r#"{{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"Bearer","expires_in":{expires_in},"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA"}}"#
        )
    };
    for (expires_in, why) in [
        ("1e-15", "expires_in is under one second"),
        ("0.5", "expires_in is under one second"),
        ("0", "expires_in is not positive"),
        ("-3600", "expires_in is not positive"),
        ("\"3600\"", "expires_in is not a number"),
    ] {
        let body = answer(expires_in);
        let error = grant
            .read_answer(answer_with(StatusCode::OK, &headers, &body), &traded())
            .unwrap_err();
        match &error {
            Error::InvalidResponse { reason, .. } => assert_eq!(reason, why, "{expires_in}"),
            other => panic!("{expires_in}: {other:?}"),
        }
    }
    let body = answer("1e300");
    let grant = grant
        .read_answer(answer_with(StatusCode::OK, &headers, &body), &traded())
        .unwrap();
    assert_eq!(
        grant.lifetime(),
        Duration::from_secs(30 * 24 * 60 * 60),
        "clamped"
    );
}

/// Over real HTTP: several token lifetimes, each refresh token used once, a spent one
/// refused, and no request ever fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_across_several_lifetimes_and_reuse_refused() {
    let server = TokenServer::start(CLIENT_ID, CLIENT_SECRET, ACCESS_LIFETIME)
        .await
        .unwrap();
    let first = server.first_refresh_token();
    let grant = grant_for(&server, ClientAuth::Basic(client_secret()), first.clone());
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(grant))
        .service(http_client());

    // Concurrent callers, so refreshes race with requests: a second refresh with the
    // same refresh token would show up as a reuse.
    const WANTED: u64 = 3;
    let server = Arc::new(server);
    let deadline = Instant::now() + DEADLINE;
    let mut callers = JoinSet::new();
    for _ in 0..4 {
        let (service, server) = (service.clone(), Arc::clone(&server));
        callers.spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(50));
            let mut sent = 0_u32;
            while server.stats().refreshes < WANTED && Instant::now() < deadline {
                pace.tick().await;
                let (status, _) = say_hello(&service, &server).await.expect("no error");
                assert_eq!(status, StatusCode::OK);
                sent += 1;
            }
            sent
        });
    }
    let mut sent = 0;
    while let Some(caller) = callers.join_next().await {
        sent += caller.unwrap();
    }
    let stats = server.stats();
    assert!(
        stats.refreshes >= WANTED,
        "only {stats:?} within {DEADLINE:?}"
    );
    assert_eq!(stats.max_presentations, 1, "a refresh token was used twice");
    assert_eq!(stats.reuse_refused + stats.other_refused, 0);
    assert_eq!(stats.refresh_tokens_issued, stats.refreshes + 1);
    assert_eq!(stats.api_unauthorized, 0);
    assert_eq!(stats.api_ok, u64::from(sent));

    // The spent first refresh token, straight to the token endpoint: refused.
    let form = form_body(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", first.expose()),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ]);
    let request = Request::post(server.uri("/oauth/token"))
        .header(CONTENT_TYPE, FORM)
        .body(Full::from(form))
        .unwrap();
    let response = http_client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["error"], "invalid_grant");
    assert_eq!(server.stats().reuse_refused, 1);

    // And through the layer: the caller gets `Error::Rejected`, promptly.
    let stale = grant_for(&server, ClientAuth::Body(client_secret()), first);
    let stale_service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(stale.clone()))
        .service(http_client());
    let error = say_hello(&stale_service, &server).await.unwrap_err();
    let error = error.downcast_ref::<Error>().expect("a token error");
    assert_eq!(oauth_error(error), Some("invalid_grant"), "{error}");
    assert_eq!(
        stale.classify(error),
        FailureKind::Refused,
        "a spent refresh token at login is refused, not asked again unasked"
    );
    assert_eq!(server.stats().reuse_refused, 2);

    // The first client is unaffected.
    let (status, text) = say_hello(&service, &server).await.unwrap();
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, "hello, example-client")
    );
}
