//! Requests and answers the unit tests share.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::body::MockBody;
use crate::mock::MockOcient;

pub(crate) const JSON: &str = "application/json";

pub(crate) fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    builder
        .header(CONTENT_TYPE, JSON)
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .expect("valid test request")
}

pub(crate) fn login_request(username: &str, password: &str) -> Request<Full<Bytes>> {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    request(Method::POST, "/v1/login", None, &body)
}

pub(crate) fn refresh_request(token: &str) -> Request<Full<Bytes>> {
    request(Method::POST, "/v1/token_refresh", Some(token), "")
}

/// The body Ocient documents, which the mock reads for its `format`.
pub(crate) fn execute_request(token: Option<&str>) -> Request<Full<Bytes>> {
    request(
        Method::POST,
        "/v1/execute/system",
        token,
        r#"{"statement": "SELECT 1"}"#,
    )
}

pub(crate) fn sso_request(body: &Value) -> Request<Full<Bytes>> {
    request(Method::POST, "/v1/sso_token", None, &body.to_string())
}

/// An SSO token exchange with this body.
pub(crate) async fn exchange(mock: &MockOcient, body: Value) -> (StatusCode, Value) {
    send(mock, sso_request(&body)).await
}

/// The payload of a JWT-shaped token, not checked.
pub(crate) fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

pub(crate) async fn call(mock: &MockOcient, request: Request<Full<Bytes>>) -> Response<MockBody> {
    match mock.clone().call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

pub(crate) async fn send(mock: &MockOcient, request: Request<Full<Bytes>>) -> (StatusCode, Value) {
    json_of(call(mock, request).await).await
}

/// A response's status and JSON body, in-process or over a socket.
pub(crate) async fn json_of<B>(response: Response<B>) -> (StatusCode, Value)
where
    B: Body,
    B::Error: Debug,
{
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("complete body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

pub(crate) fn vendor_code(answer: &Value) -> i64 {
    answer["status"]["vendor_code"]
        .as_i64()
        .expect("vendor_code")
}

pub(crate) fn token_of(answer: &Value) -> String {
    answer["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

pub(crate) fn generation_of(token: &str) -> u64 {
    token
        .split('.')
        .nth(1)
        .and_then(|g| g.parse().ok())
        .expect("generation")
}

pub(crate) async fn login(mock: &MockOcient) -> String {
    let (status, answer) = send(mock, login_request("jdoe", "secret")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    token_of(&answer)
}

pub(crate) async fn refresh(mock: &MockOcient, token: &str) -> (StatusCode, Value) {
    send(mock, refresh_request(token)).await
}

pub(crate) async fn execute(mock: &MockOcient, token: &str) -> (StatusCode, i64) {
    let (status, answer) = send(mock, execute_request(Some(token))).await;
    (status, vendor_code(&answer))
}

/// Whether connecting to `addr` is refused within a second: shutdown is
/// asynchronous, so the listener may take a moment to close.
pub(crate) async fn refuses_connections(addr: SocketAddr) -> bool {
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
