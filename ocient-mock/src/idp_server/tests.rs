//! The provider over loopback, with the client a test's code would use.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::IdentityProviderServer;
use crate::idp::TestIdentityProvider;
use crate::jwks::TrustedIssuer;
use crate::mock::MockOcient;
use crate::test_support::*;

const FORM: &str = "application/x-www-form-urlencoded";

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(idp: &IdentityProviderServer, path: &str) -> (StatusCode, Value) {
    let uri = format!("{}{path}", idp.issuer());
    let request = Request::get(uri).body(Full::default()).expect("request");
    json_of(client().request(request).await.expect("an answer")).await
}

/// A `/token` request with this body, as a form unless `content_type` says otherwise.
fn token_request(
    idp: &IdentityProviderServer,
    content_type: &str,
    form: &str,
) -> Request<Full<Bytes>> {
    Request::post(idp.token_endpoint())
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::copy_from_slice(form.as_bytes())))
        .expect("request")
}

async fn ask(request: Request<Full<Bytes>>) -> (StatusCode, Value) {
    json_of(client().request(request).await.expect("an answer")).await
}

#[tokio::test]
async fn client_credentials_get_tokens_the_mock_accepts() {
    let idp = TestIdentityProvider::serve().await.expect("bind loopback");
    let mock = MockOcient::new().trust_issuer(idp.trusted_issuer());
    let form = "grant_type=client_credentials&client_id=reporting&client_secret=s3cret";
    let response = client()
        .request(token_request(&idp, FORM, form))
        .await
        .expect("an answer");
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let (status, answer) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (&answer["token_type"], &answer["expires_in"]),
        (&json!("Bearer"), &json!(300))
    );
    for kind in ["access_token", "id_token"] {
        let token = answer[kind].as_str().expect("a token");
        assert_eq!(jwt_claims(token)["iss"], idp.issuer(), "{kind}");
        let (status, signed_in) = exchange(&mock, json!({ kind: token })).await;
        assert_eq!(
            (status, &signed_in["username"]),
            (StatusCode::OK, &json!("reporting"))
        );
    }
    assert_eq!(idp.tokens_issued(), 1);
    assert_eq!(idp.provider().issuer(), idp.issuer());
}

#[tokio::test]
async fn a_client_may_authenticate_with_http_basic_or_not_at_all() {
    let idp = TestIdentityProvider::serve().await.expect("bind loopback");
    let mut basic = token_request(&idp, FORM, "grant_type=client_credentials");
    // base64("billing:pw")
    let credentials = "Basic YmlsbGluZzpwdw==".parse().expect("header");
    basic.headers_mut().insert(AUTHORIZATION, credentials);
    let (status, answer) = ask(basic).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        jwt_claims(answer["access_token"].as_str().expect("token"))["sub"],
        "billing"
    );
    let anonymous = token_request(
        &idp,
        "application/x-www-form-urlencoded; charset=utf-8",
        "grant_type=client_credentials",
    );
    let (_, answer) = ask(anonymous).await;
    assert_eq!(
        jwt_claims(answer["id_token"].as_str().expect("token"))["sub"],
        "test-client"
    );
    assert_eq!(idp.tokens_issued(), 2);
}

#[tokio::test]
async fn other_grants_and_other_bodies_get_oauth_errors() {
    let idp = TestIdentityProvider::serve().await.expect("bind loopback");
    let cases = [
        (
            FORM,
            "grant_type=password&username=u&password=p",
            "unsupported_grant_type",
        ),
        (
            FORM,
            "grant_type=authorization_code&code=x",
            "unsupported_grant_type",
        ),
        (FORM, "client_id=x", "invalid_request"),
        (FORM, "", "invalid_request"),
        (
            "application/json",
            r#"{"grant_type": "client_credentials"}"#,
            "invalid_request",
        ),
    ];
    for (content_type, form, error) in cases {
        let (status, answer) = ask(token_request(&idp, content_type, form)).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, json!({ "error": error })),
            "{form}"
        );
    }
    assert_eq!(idp.tokens_issued(), 0);
}

#[tokio::test]
async fn it_publishes_its_key_set_and_discovery_document() {
    let idp = TestIdentityProvider::serve_with_audience("reporting")
        .await
        .expect("bind");
    assert_eq!(idp.issuer(), format!("http://{}", idp.addr()));
    assert_eq!(idp.uri().to_string(), format!("{}/", idp.issuer()));

    let (status, jwks) = get(&idp, "/jwks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks.to_string(), idp.provider().jwks());
    let (status, discovery) = get(&idp, "/.well-known/openid-configuration").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(discovery["issuer"], idp.issuer());
    assert_eq!(
        discovery["token_endpoint"],
        idp.token_endpoint().to_string()
    );
    assert_eq!(discovery["jwks_uri"], idp.jwks_uri().to_string());
    assert_eq!(
        discovery["token_endpoint"],
        format!("{}/token", idp.issuer())
    );

    // A relying party that reads the published set trusts what it signs.
    let trusted = TrustedIssuer::new(idp.issuer(), &jwks.to_string()).expect("key set");
    let mock = MockOcient::new().trust_issuer(trusted.audience("reporting"));
    let token = idp
        .provider()
        .issue("jdoe", std::time::Duration::from_secs(60));
    assert_eq!(
        exchange(&mock, json!({"id_token": token})).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused_and_shutdown_stops_it() {
    let idp = TestIdentityProvider::serve().await.expect("bind loopback");
    assert_eq!(
        get(&idp, "/authorize").await,
        (StatusCode::NOT_FOUND, json!({"error": "not_found"}))
    );
    assert_eq!(get(&idp, "/token").await.0, StatusCode::METHOD_NOT_ALLOWED);
    let post = Request::builder()
        .method(Method::POST)
        .uri(idp.jwks_uri())
        .body(Full::default())
        .expect("request");
    assert_eq!(ask(post).await.0, StatusCode::METHOD_NOT_ALLOWED);
    let addr = idp.addr();
    idp.shutdown();
    assert!(
        refuses_connections(addr).await,
        "still accepting after shutdown"
    );
}
