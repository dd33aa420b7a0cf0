//! The Ocient wire format: status objects, JSON answers and request bodies.

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::body::BoxError;
use crate::body::MockBody;

const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct ApiStatus {
    reason: &'static str,
    sql_state: &'static str,
    vendor_code: i64,
}

impl ApiStatus {
    pub(crate) const fn new(
        vendor_code: i64,
        sql_state: &'static str,
        reason: &'static str,
    ) -> Self {
        Self {
            reason,
            sql_state,
            vendor_code,
        }
    }

    pub(crate) const AUTHENTICATED: Self = Self::new(0, "00000", "Authentication successful");
    pub(crate) const QUERY_OK: Self = Self::new(0, "00000", "ok");
    pub(crate) const BAD_CREDENTIALS: Self =
        Self::new(-304, "08004", "invalid username or password");
    pub(crate) const NO_SESSION: Self = Self::new(-1204, "08003", "no session");
    pub(crate) const TOKEN_INVALID: Self = Self::new(-1205, "08004", "security token invalid");
    pub(crate) const TOKEN_EXPIRED: Self = Self::new(-1208, "08004", "security token expired");
    pub(crate) const SIGNATURE_MISMATCH: Self =
        Self::new(-1206, "08004", "token signature mismatch");
    pub(crate) const UNKNOWN_ISSUER: Self =
        Self::new(-1207, "08004", "token signed by an unknown issuer");
    pub(crate) const REFRESH_EXPIRED: Self =
        Self::new(-733, "42502", "session expired, refresh necessary");
    /// Not an Ocient answer: the mock's word that a query's token was issued
    /// to someone other than its `x-mock-identity` header says sent it.
    pub(crate) const WRONG_IDENTITY: Self =
        Self::new(-1205, "08004", "token belongs to another identity");
    pub(crate) const INJECTED: Self = Self::new(-1, "58000", "injected failure");

    pub(crate) fn reason_for(vendor_code: i64) -> &'static str {
        [
            Self::BAD_CREDENTIALS,
            Self::NO_SESSION,
            Self::TOKEN_INVALID,
            Self::TOKEN_EXPIRED,
            Self::SIGNATURE_MISMATCH,
            Self::UNKNOWN_ISSUER,
            Self::REFRESH_EXPIRED,
        ]
        .iter()
        .find(|known| known.vendor_code == vendor_code)
        .map_or(Self::INJECTED.reason, |known| known.reason)
    }
}

#[derive(Serialize)]
struct StatusOnly {
    status: ApiStatus,
}

#[derive(Serialize)]
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) username: String,
    pub(crate) database: String,
    pub(crate) expires_in: u64,
    pub(crate) status: ApiStatus,
}

#[derive(Serialize)]
pub(crate) struct QueryAnswer {
    pub(crate) query_id: String,
    pub(crate) status: ApiStatus,
    /// Rows as arrays or as objects, as the query's `format` asked.
    pub(crate) data: serde_json::Value,
}

#[derive(Deserialize)]
pub(crate) struct LoginRequest {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) database: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct RefreshRequest {
    pub(crate) database: Option<String>,
}

/// A refusal: a status object and the HTTP status that carries it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure {
    pub(crate) http: StatusCode,
    pub(crate) status: ApiStatus,
}

impl Failure {
    pub(crate) fn auth(status: ApiStatus, in_band: bool) -> Self {
        let http = if in_band {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        Self { http, status }
    }

    /// Protocol errors keep their HTTP status even with `errors_in_band`,
    /// which is about how the server reports authentication outcomes.
    pub(crate) fn protocol(
        http: StatusCode,
        sql_state: &'static str,
        reason: &'static str,
    ) -> Self {
        Self {
            http,
            status: ApiStatus::new(-1, sql_state, reason),
        }
    }

    pub(crate) fn malformed_json() -> Self {
        Self::protocol(StatusCode::BAD_REQUEST, "22000", "malformed JSON body")
    }

    pub(crate) fn into_response(self) -> Response<MockBody> {
        json(
            self.http,
            &StatusOnly {
                status: self.status,
            },
        )
    }
}

/// `Authorization: Bearer <token>`; a missing header is "no session", any
/// other shape is an invalid token.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiStatus> {
    let value = headers.get(AUTHORIZATION).ok_or(ApiStatus::NO_SESSION)?;
    let (scheme, token) = value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .ok_or(ApiStatus::TOKEN_INVALID)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(token.trim())
    } else {
        Err(ApiStatus::TOKEN_INVALID)
    }
}

/// Whether `Content-Type` names `mime`, whatever its parameters and case.
pub(crate) fn has_media_type(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|named| named.trim().eq_ignore_ascii_case(mime))
}

pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), Failure> {
    if has_media_type(headers, "application/json") {
        Ok(())
    } else {
        Err(Failure::protocol(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "22000",
            "Content-Type must be application/json",
        ))
    }
}

/// `Ok(None)` for an empty body, which a token refresh allows.
pub(crate) async fn read_json<T, B>(body: B) -> Result<Option<T>, Failure>
where
    T: DeserializeOwned,
    B: Body,
    B::Error: Into<BoxError>,
{
    let bytes = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return Err(Failure::protocol(
                StatusCode::PAYLOAD_TOO_LARGE,
                "22000",
                "request body too large",
            ));
        }
        Err(_) => {
            return Err(Failure::protocol(
                StatusCode::BAD_REQUEST,
                "22000",
                "unreadable request body",
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| Failure::malformed_json())
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<MockBody> {
    // These plain structs always serialize; the fallback only keeps this total.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    respond_with(
        status,
        Some(HeaderValue::from_static("application/json")),
        MockBody::full(body.into()),
    )
}

pub(crate) fn respond_with(
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: MockBody,
) -> Response<MockBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, content_type);
    }
    response
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::header::{AUTHORIZATION, CONTENT_TYPE};
    use http::{Method, Request, StatusCode};
    use http_body_util::Full;
    use serde_json::Value;

    use super::BODY_LIMIT;
    use crate::mock::MockOcient;
    use crate::test_support::*;

    #[tokio::test]
    async fn login_requires_a_json_content_type() {
        let mock = MockOcient::new();
        let body = r#"{"username": "jdoe", "password": "secret"}"#;
        for content_type in [None, Some("text/plain")] {
            let mut builder = Request::post("/v1/login");
            if let Some(content_type) = content_type {
                builder = builder.header(CONTENT_TYPE, content_type);
            }
            let request = builder.body(Full::new(Bytes::from(body))).expect("request");
            let (status, answer) = send(&mock, request).await;
            assert_eq!(
                (status, vendor_code(&answer)),
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, -1)
            );
        }
        let with_charset = Request::post("/v1/login")
            .header(CONTENT_TYPE, "Application/JSON; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        assert_eq!(send(&mock, with_charset).await.0, StatusCode::OK);
        let counters = mock.counters();
        assert_eq!((counters.logins, counters.failed_token_requests), (3, 2));
    }

    #[tokio::test]
    async fn bad_login_bodies_are_rejected_not_panicked_on() {
        let mock = MockOcient::new();
        let huge = "x".repeat(BODY_LIMIT + 1);
        let cases = [
            ("", StatusCode::BAD_REQUEST),
            ("{not json", StatusCode::BAD_REQUEST),
            (r#"{"username": "jdoe"}"#, StatusCode::BAD_REQUEST),
            ("[1, 2]", StatusCode::BAD_REQUEST),
            (huge.as_str(), StatusCode::PAYLOAD_TOO_LARGE),
        ];
        for (body, expected) in cases {
            let (status, answer) =
                send(&mock, request(Method::POST, "/v1/login", None, body)).await;
            assert_eq!(
                (status, vendor_code(&answer)),
                (expected, -1),
                "body {:.20}",
                body
            );
        }
        assert_eq!(mock.counters().failed_token_requests, 5);
    }

    #[tokio::test]
    async fn refresh_accepts_empty_object_and_database_bodies() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        let (_, answer) = send(
            &mock,
            request(Method::POST, "/v1/token_refresh", Some(&token), "{}"),
        )
        .await;
        assert_eq!(
            (vendor_code(&answer), &answer["database"]),
            (0, &Value::from("system"))
        );
        let body = r#"{"database": "sales"}"#;
        let (_, answer) = send(
            &mock,
            request(Method::POST, "/v1/token_refresh", Some(&token), body),
        )
        .await;
        assert_eq!(
            (vendor_code(&answer), &answer["database"]),
            (0, &Value::from("sales"))
        );
    }

    #[tokio::test]
    async fn refresh_without_a_usable_token_is_refused() {
        let mock = MockOcient::new();
        let (status, answer) =
            send(&mock, request(Method::POST, "/v1/token_refresh", None, "")).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -1204)
        );
        assert_eq!(answer["status"]["sql_state"], "08003");
        let (status, answer) = refresh(&mock, "garbage").await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -1205)
        );
        let token = login(&mock).await;
        let basic = Request::post("/v1/token_refresh")
            .header(CONTENT_TYPE, JSON)
            .header(AUTHORIZATION, format!("Basic {token}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        assert_eq!(vendor_code(&send(&mock, basic).await.1), -1205);
        assert_eq!(mock.counters().failed_token_requests, 3);
    }

    // The limit is 64 KiB: a body well past a few kilobytes is still read.
    #[tokio::test]
    async fn a_login_body_of_sixty_kibibytes_is_read() {
        let long = "p".repeat(60 * 1024);
        let mock = MockOcient::new().user("jdoe", long.as_str());
        let (status, answer) = send(&mock, login_request("jdoe", &long)).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
    }

    /// A body the client could not finish sending.
    struct Broken;

    impl http_body::Body for Broken {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Ready(Some(Err(std::io::Error::other("connection reset"))))
        }
    }

    #[tokio::test]
    async fn an_unreadable_body_is_a_bad_request_not_a_large_one() {
        let mock = MockOcient::new();
        let request = Request::post("/v1/login")
            .header(CONTENT_TYPE, JSON)
            .body(Broken)
            .expect("request");
        let response = tower_service::Service::call(&mut mock.clone(), request).await;
        let (status, answer) = json_of(response.unwrap_or_else(|never| match never {})).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::BAD_REQUEST, -1)
        );
        assert_eq!(answer["status"]["reason"], "unreadable request body");
    }
}
