//! The mock's answers against Ocient's OpenAPI 3.1 document: every 200
//! answer of every endpoint it serves must validate against that
//! operation's `responses."200".content."application/json".schema`.
//!
//! `data/ocient-openapi.json` is a copy of the public document, kept here
//! so the test needs nothing outside the repository. Its schemas are JSON
//! Schema 2020-12. Another endpoint is one more row in [`CASES`]; single
//! sign-on, whose answers need a setup of their own, has its own test.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonschema::Validator;
use ocient_mock::{DeviceApproval, MockOcient, SsoAnswer};
use serde_json::{json, Value};
use tower::ServiceExt;

const DOCUMENT: &str = include_str!("data/ocient-openapi.json");

/// Which rows an execute answer carries, and so which schema it must fit.
#[derive(Debug, Clone, Copy)]
enum Rows {
    /// Not an execute, or `format: "collection"`: the document's schema as
    /// it stands (its `data` items are objects keyed by column name).
    AsDocumented,
    /// `format: "array"`, the default: the document's schema with each row
    /// an array of its column values instead (see [`with_array_rows`]).
    Arrays,
}

/// One request the mock answers with 200, and the operation it belongs to.
struct Case {
    /// The operation's key under `paths`, e.g. `/v1/execute/{database}`.
    path: &'static str,
    /// The operation's key under its path: `post`, `get`.
    method: &'static str,
    /// What the request is sent to.
    uri: &'static str,
    /// Whether it carries `Authorization: Bearer` with a fresh login's token.
    bearer: bool,
    body: &'static str,
    rows: Rows,
}

const fn case(
    path: &'static str,
    method: &'static str,
    uri: &'static str,
    bearer: bool,
    body: &'static str,
    rows: Rows,
) -> Case {
    Case {
        path,
        method,
        uri,
        bearer,
        body,
        rows,
    }
}

const LOGIN: &str = r#"{"username": "jdoe", "password": "secret", "database": "retail"}"#;
const EXECUTE: &str = "/v1/execute/{database}";

/// Every endpoint the mock serves; both execute methods in both formats.
/// A table, one request a line.
#[rustfmt::skip]
const CASES: &[Case] = &[
    case("/v1/login", "post", "/v1/login", false, LOGIN, Rows::AsDocumented),
    case("/v1/token_refresh", "post", "/v1/token_refresh", true, "", Rows::AsDocumented),
    case("/v1/token_refresh", "post", "/v1/token_refresh", true, r#"{"database": "sales"}"#, Rows::AsDocumented),
    case(EXECUTE, "post", "/v1/execute/system", true, r#"{"statement": "SELECT 1", "format": "collection"}"#, Rows::AsDocumented),
    case(EXECUTE, "post", "/v1/execute/system", true, r#"{"statement": "SELECT 1"}"#, Rows::Arrays),
    case(EXECUTE, "post", "/v1/execute/system", true, r#"{"statement": "SELECT 1", "format": "array"}"#, Rows::Arrays),
    case(EXECUTE, "get", "/v1/execute/system?statement=SELECT%201&format=collection", true, "", Rows::AsDocumented),
    case(EXECUTE, "get", "/v1/execute/system?statement=SELECT%201", true, "", Rows::Arrays),
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("the OpenAPI document is JSON")
}

/// The schema of an operation's 200 `application/json` answer.
fn schema_for(document: &Value, path: &str, method: &str) -> Value {
    let schema = &document["paths"][path][method]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "the document has no 200 JSON schema for {method} {path}"
    );
    schema.clone()
}

/// The document shows only collection rows, so `array` rows, the
/// documented default, fit it nowhere. This is its schema with one change:
/// each row is an array whose items are the document's `c1` column.
fn with_array_rows(mut schema: Value) -> Value {
    let items = &mut schema["properties"]["data"]["items"];
    let column = items["properties"]["c1"].take();
    assert!(
        column.is_object(),
        "the document's rows have no c1: {items}"
    );
    *items = json!({"type": "array", "items": column});
    schema
}

fn validator(schema: &Value) -> Validator {
    jsonschema::draft202012::new(schema).expect("a valid JSON Schema 2020-12")
}

fn assert_valid(validator: &Validator, body: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {body} does not fit: {errors:?}");
}

fn assert_invalid(validator: &Validator, body: &Value, what: &str) {
    assert!(!validator.is_valid(body), "{what}: {body} should not fit");
}

/// Sends one request in-process; the answer must be a 200 JSON success.
async fn answer(
    mock: &MockOcient,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> Value {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("a method");
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .expect("a request");
    let response = match mock.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    assert_eq!(response.status(), StatusCode::OK, "{uri}");
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "application/json",
        "{uri}"
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
    // The document's `sso_token` answer carries no status object at all.
    if answer.get("status").is_some() {
        assert_eq!(answer["status"]["vendor_code"], 0, "{uri}: {answer}");
    }
    answer
}

async fn token(mock: &MockOcient) -> String {
    let login = answer(mock, "post", "/v1/login", None, LOGIN).await;
    login["access_token"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn every_answer_the_mock_serves_fits_the_document() {
    let document = document();
    let mock = MockOcient::new();
    for case in CASES {
        let what = format!("{} {} {}", case.method, case.uri, case.body);
        let mut schema = schema_for(&document, case.path, case.method);
        if let Rows::Arrays = case.rows {
            schema = with_array_rows(schema);
        }
        let token = if case.bearer {
            Some(token(&mock).await)
        } else {
            None
        };
        let body = answer(&mock, case.method, case.uri, token.as_deref(), case.body).await;
        assert_valid(&validator(&schema), &body, &what);
    }
}

/// Without this, a validator that accepted anything would pass the test above.
#[tokio::test]
async fn the_validator_rejects_answers_the_document_does_not_allow() {
    let document = document();
    let mock = MockOcient::new();
    let token = token(&mock).await;

    let login = validator(&schema_for(&document, "/v1/login", "post"));
    let mut issued = answer(&mock, "post", "/v1/login", None, LOGIN).await;
    assert_valid(&login, &issued, "login");
    issued["expires_in"] = json!("3600");
    assert_invalid(&login, &issued, "expires_in as a string");
    issued["expires_in"] = json!(3600.5);
    assert_invalid(&login, &issued, "expires_in with a fraction");

    let documented = validator(&schema_for(&document, EXECUTE, "post"));
    let arrays = validator(&with_array_rows(schema_for(&document, EXECUTE, "post")));
    let uri = "/v1/execute/system";
    let array_answer = answer(&mock, "post", uri, Some(&token), "{}").await;
    assert_eq!(array_answer["data"], json!([[1]]));
    assert_invalid(
        &documented,
        &array_answer,
        "array rows, where the document has objects",
    );
    let body = r#"{"format": "collection"}"#;
    let mut collection = answer(&mock, "post", uri, Some(&token), body).await;
    assert_eq!(collection["data"], json!([{"c1": 1}]));
    assert_invalid(
        &arrays,
        &collection,
        "collection rows, where arrays are asked for",
    );
    collection["data"] = json!([{"c1": "1"}]);
    assert_invalid(&documented, &collection, "a column value as a string");
    collection["status"]["vendor_code"] = json!("0");
    collection["data"] = json!([{"c1": 1}]);
    assert_invalid(&documented, &collection, "vendor_code as a string");
}

#[test]
fn every_case_names_an_operation_of_the_document() {
    let document = document();
    for case in CASES {
        schema_for(&document, case.path, case.method);
    }
    let executes = CASES.iter().filter(|case| case.path == EXECUTE);
    let shapes: Vec<(&str, bool)> = executes
        .map(|case| (case.method, matches!(case.rows, Rows::Arrays)))
        .collect();
    for method in ["post", "get"] {
        for arrays in [false, true] {
            assert!(
                shapes.contains(&(method, arrays)),
                "{method} arrays={arrays}"
            );
        }
    }
}

/// Single sign-on: `/v1/sso_token` in each answer shape, and the device grant from its start
/// to the approved poll (which needs the user code the start handed out).
#[tokio::test]
async fn every_single_sign_on_answer_fits_the_document() {
    let document = document();
    let sso_token = validator(&schema_for(&document, "/v1/sso_token", "post"));
    let body = r#"{"id_token": "idp-token", "database": "retail"}"#;
    for shape in [
        SsoAnswer::LikeLogin,
        SsoAnswer::IdTokenWithExp,
        SsoAnswer::IdTokenOpaque,
    ] {
        let mock = MockOcient::new()
            .sso_tokens(["idp-token"])
            .sso_answer(shape);
        let issued = answer(&mock, "post", "/v1/sso_token", None, body).await;
        assert_valid(&sso_token, &issued, &format!("sso_token {shape:?}"));
    }

    let mock = MockOcient::new().device_approval(DeviceApproval::Approve);
    let started = answer(&mock, "post", "/v1/sso_device_grant", None, "{}").await;
    let start = validator(&schema_for(&document, "/v1/sso_device_grant", "post"));
    assert_valid(&start, &started, "sso_device_grant");
    let user_code = started["user_code"].as_str().expect("a user code");
    let poll = json!({"user_code": user_code, "timeout": "5"}).to_string();
    let path = "/v1/sso_device_grant_verify";
    let approved = answer(&mock, "post", path, None, &poll).await;
    assert_valid(
        &validator(&schema_for(&document, path, "post")),
        &approved,
        path,
    );
    let mut wrong = approved.clone();
    wrong["access_token"] = json!(42);
    let verify = validator(&schema_for(&document, path, "post"));
    assert_invalid(&verify, &wrong, "a token that is not a string");
}
