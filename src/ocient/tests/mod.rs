//! OcientAuth: its requests, its answers, its secrets and its nodes.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};

use super::*;
use crate::endpoint::script::Script;
use crate::error::Exchange;

fn auth() -> OcientAuth {
    OcientAuth::new("http://user:hunter2@sql-node:9090".parse().unwrap())
        .credentials("jdoe", "s3cret-pw")
}

/// The first request of a login of `auth` now.
async fn login(auth: &OcientAuth) -> Request<Bytes> {
    let mut script = Script::default();
    let _ = script.login(auth, Duration::from_secs(30)).await;
    script.sent.remove(0)
}

/// The request a refresh of `current` by `auth` sends.
async fn refresh(auth: &OcientAuth, current: &Grant) -> Request<Bytes> {
    let mut script = Script::default();
    let _ = script.refresh(auth, current).await;
    script.sent.remove(0)
}

fn read(status: u16, body: &str) -> Result<Grant, Error> {
    answered(status, body, |answer| auth().read_answer(answer))
}

// Found while fuzzing: `sql_state` came back unscrubbed.
#[test]
fn server_text_never_carries_the_password() {
    let echo =
        r#"{"status":{"sql_state":"s3cret-pw","vendor_code":-304,"reason":"bad s3cret-pw"}}"#;
    let error = read(401, echo).unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert_eq!(error.vendor_code(), Some(-304));

    // Scrubbed before it is shortened, so a secret across the cut leaves no prefix.
    let padded = format!(
        r#"{{"status":{{"vendor_code":-1,"reason":"{}s3cret-pw"}}}}"#,
        "x".repeat(256 - 4)
    );
    let shown = read(500, &padded).unwrap_err().to_string();
    assert!(!shown.contains("s3cr"), "{shown}");
}

#[tokio::test]
async fn a_provided_password_is_scrubbed_once_it_was_used() {
    let auth = OcientAuth::new("https://sql-node".parse().unwrap())
        .credentials_from(|| async { Ok(("jdoe".to_owned(), "r0tated-pw".to_owned())) });
    let login = login(&auth).await;
    assert!(String::from_utf8_lossy(login.body()).contains("r0tated-pw"));
    let echo = r#"{"status":{"vendor_code":-304,"reason":"bad r0tated-pw"}}"#;
    let shown = answered(401, echo, |answer| auth.read_answer(answer));
    let shown = shown.unwrap_err().to_string();
    assert!(!shown.contains("r0tated-pw"), "{shown}");
    assert!(!format!("{auth:?}").contains("r0tated-pw"));
}

#[tokio::test]
async fn a_failing_provider_is_a_credentials_error() {
    let auth = OcientAuth::new("https://sql-node".parse().unwrap())
        .credentials_from(|| async { Err("vault sealed".into()) });
    let mut script = Script::default();
    let error = script.login(&auth, Duration::from_secs(1)).await;
    let error = error.unwrap_err();
    assert!(matches!(error, Error::Provider { .. }), "{error}");
    assert!(script.sent.is_empty(), "nothing sent without credentials");
    let source = std::error::Error::source(&error).expect("the provider's error");
    assert_eq!(source.to_string(), "vault sealed");
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains("sealed"),
        "neither message nor Debug says it: {shown}"
    );
}

#[tokio::test]
async fn nodes_fail_over_in_turn_and_stay_where_they_moved() {
    let auth = OcientAuth::new("https://u:p@node-a:9443/ocient".parse().unwrap())
        .node("https://node-b".parse().unwrap())
        .credentials("jdoe", "pw");
    assert_eq!(
        login(&auth).await.uri(),
        "https://node-a:9443/ocient/v1/login"
    );
    assert_eq!(
        auth.other_origins(),
        vec![Uri::from_static("https://node-b")]
    );
    let (from, to) = auth.fail_over().unwrap();
    assert_eq!(
        (from.to_string(), to.to_string()),
        (
            "https://node-a:9443/ocient".into(),
            "https://node-b/".into()
        )
    );
    assert_eq!(login(&auth).await.uri(), "https://node-b/v1/login");
    assert_eq!(
        login(&auth.clone()).await.uri(),
        "https://node-b/v1/login",
        "clones share it"
    );
    auth.fail_over().unwrap();
    assert_eq!(
        login(&auth).await.uri(),
        "https://node-a:9443/ocient/v1/login"
    );
    assert!(OcientAuth::new("https://solo".parse().unwrap())
        .fail_over()
        .is_none());
}

#[test]
fn debug_names_the_user_and_hides_the_password_fixed_or_provided() {
    let fixed = format!("{:?}", auth());
    assert!(fixed.contains(r#"username: Some("jdoe")"#), "{fixed}");
    assert!(fixed.contains(r#"password: Some("<redacted>")"#), "{fixed}");
    let provided = OcientAuth::new("https://sql-node".parse().unwrap())
        .credentials_from(|| async { Ok(("jdoe".to_owned(), "pw".to_owned())) });
    let provided = format!("{provided:?}");
    assert!(
        provided.contains(r#"username: Some("<provided>")"#),
        "{provided}"
    );
    assert!(
        provided.contains(r#"password: Some("<provided>")"#),
        "{provided}"
    );
    let anonymous = format!("{:?}", OcientAuth::new("https://sql-node".parse().unwrap()));
    assert!(
        anonymous.contains("username: None, password: None"),
        "{anonymous}"
    );
}

#[test]
fn an_empty_password_redacts_nothing() {
    let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials("jdoe", "");
    let body = r#"{"status":{"vendor_code":-304,"reason":"bad password"}}"#;
    let shown = answered(401, body, |answer| auth.read_answer(answer));
    let shown = shown.unwrap_err().to_string();
    assert!(shown.ends_with(": bad password"), "{shown}");
}

#[test]
fn debug_shows_neither_password_nor_userinfo() {
    let shown = format!(
        "{:?}",
        auth().initial_token("t0ken", Duration::from_secs(1))
    );
    for secret in ["s3cret-pw", "hunter2", "t0ken"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("sql-node:9090"), "{shown}");
}

#[tokio::test]
async fn requests_never_carry_the_base_uris_userinfo() {
    let auth = auth();
    let login = login(&auth).await;
    assert_eq!(login.uri(), "http://sql-node:9090/v1/login");
    let grant = Grant::new(Secret::new("t").unwrap(), Duration::from_secs(1));
    let refresh = refresh(&auth, &grant).await;
    assert_eq!(refresh.uri(), "http://sql-node:9090/v1/token_refresh");
    assert_eq!(refresh.headers()[http::header::AUTHORIZATION], "Bearer t");

    let behind_a_proxy = OcientAuth::new("https://gw.example/ocient/".parse().unwrap());
    let grant = Grant::new(Secret::new("t").unwrap(), Duration::from_secs(1));
    let refresh = super::tests::refresh(&behind_a_proxy, &grant).await;
    assert_eq!(refresh.uri(), "https://gw.example/ocient/v1/token_refresh");
}

#[test]
fn answer_debug_hides_the_body() {
    let body = r#"{"access_token":"t0ken-in-body"}"#;
    let answer = Answer::new(Exchange::Login, StatusCode::OK, HeaderMap::new(), body);
    let shown = format!("{answer:?}");
    assert!(!shown.contains("t0ken-in-body"), "{shown}");
    assert!(
        shown.contains("status: 200") && shown.contains("body_len: 32"),
        "{shown}"
    );
}

mod device;
mod errors;
mod sso;

/// `body` as a login answer with `status`, read by `read`.
fn answered<T>(status: u16, body: &str, read: impl FnOnce(Answer) -> T) -> T {
    let status = StatusCode::from_u16(status).unwrap();
    read(Answer::new(
        Exchange::Login,
        status,
        HeaderMap::new(),
        body.to_owned(),
    ))
}

/// A JWT (unsigned: the layer never verifies one) whose `exp` is `seconds` from now.
fn jwt_expiring_in(seconds: u64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = format!(r#"{{"sub":"jdoe","exp":{}}}"#, now + seconds);
    let encode = |text: &str| URL_SAFE_NO_PAD.encode(text);
    format!("{}.{}.c2ln", encode(r#"{"alg":"HS256"}"#), encode(&claims))
}

/// The JSON body of `request`.
fn body_of(request: &Request<Bytes>) -> serde_json::Value {
    serde_json::from_slice(request.body()).unwrap()
}
