//! [`Fault`]: failures a test injects into token request answers.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use crate::body::MockBody;
use crate::wire::{respond_with, ApiStatus, Failure};

/// A failure injected into the next token requests (logins, token
/// refreshes, SSO exchanges, device grants) with
/// [`MockOcient::fail_token_requests`](crate::MockOcient::fail_token_requests).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Fault {
    /// That HTTP status with a status object: `vendor_code` -1,
    /// `sql_state` `58000`, reason `injected failure`.
    Status(StatusCode),
    /// A status object with this vendor code, e.g. HTTP 200 with -1208 or
    /// HTTP 401 with -733. Known codes get their usual reason text.
    VendorCode {
        /// HTTP status of the answer.
        http: StatusCode,
        /// The status object's `vendor_code`.
        vendor_code: i64,
        /// The status object's `sql_state`.
        sql_state: &'static str,
    },
    /// This exact answer: malformed JSON, hostile tokens, huge bodies.
    Body {
        /// HTTP status of the answer.
        status: StatusCode,
        /// The `Content-Type` header; omitted if it is not a valid header value.
        content_type: &'static str,
        /// The raw body.
        body: Bytes,
    },
    /// That HTTP status (429 or 503, typically) with the injected status
    /// object and a `Retry-After` header of this value: whole seconds such as
    /// `"3"`, or an HTTP date such as `"Wed, 02 Dec 2026 18:00:07 GMT"`. A
    /// value that is not a valid header value is left out.
    RetryAfter {
        /// HTTP status of the answer.
        status: StatusCode,
        /// The `Retry-After` header, as sent.
        retry_after: String,
    },
    /// Never answer: the response future stays pending and, over HTTP, the
    /// connection stalls.
    Hang,
    /// HTTP 200 headers with a `Content-Length`, then the body fails part-way;
    /// over HTTP the client sees an incomplete body or a connection error.
    CutOff,
}

impl Fault {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Status(_) => "Status",
            Self::VendorCode { .. } => "VendorCode",
            Self::Body { .. } => "Body",
            Self::RetryAfter { .. } => "RetryAfter",
            Self::Hang => "Hang",
            Self::CutOff => "CutOff",
        }
    }

    pub(crate) async fn into_response(self) -> Response<MockBody> {
        match self {
            Self::Status(http) => Failure {
                http,
                status: ApiStatus::INJECTED,
            }
            .into_response(),
            Self::VendorCode {
                http,
                vendor_code,
                sql_state,
            } => {
                let reason = ApiStatus::reason_for(vendor_code);
                let status = ApiStatus::new(vendor_code, sql_state, reason);
                Failure { http, status }.into_response()
            }
            Self::Body {
                status,
                content_type,
                body,
            } => {
                let content_type = HeaderValue::from_str(content_type).ok();
                respond_with(status, content_type, MockBody::full(body))
            }
            Self::RetryAfter {
                status,
                retry_after,
            } => {
                let injected = Failure {
                    http: status,
                    status: ApiStatus::INJECTED,
                };
                let mut response = injected.into_response();
                if let Ok(value) = HeaderValue::from_str(&retry_after) {
                    response.headers_mut().insert(RETRY_AFTER, value);
                }
                response
            }
            Self::Hang => std::future::pending().await,
            Self::CutOff => cut_off(),
        }
    }
}

fn cut_off() -> Response<MockBody> {
    const PREFIX: &[u8] = br#"{"access_token":"mock.0."#;
    const DECLARED: u64 = 256;
    let mut response = respond_with(
        StatusCode::OK,
        Some(HeaderValue::from_static("application/json")),
        MockBody::cut_off(Bytes::from_static(PREFIX), DECLARED),
    );
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(DECLARED));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    use http::StatusCode;
    use http_body::Body;
    use http_body_util::BodyExt;

    use super::Fault;
    use crate::mock::MockOcient;
    use crate::test_support::*;

    #[tokio::test]
    async fn status_fault_applies_to_the_next_requests_only() {
        let mock = MockOcient::new();
        mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 2);
        for _ in 0..2 {
            let (status, answer) = send(&mock, login_request("jdoe", "secret")).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                answer["status"],
                serde_json::json!({"reason": "injected failure", "sql_state": "58000", "vendor_code": -1})
            );
        }
        // No times at all is no fault.
        mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 0);
        login(&mock).await;
        let counters = mock.counters();
        assert_eq!((counters.logins, counters.failed_token_requests), (3, 2));
        assert_eq!(counters.token_requests(), 3, "logins plus refreshes");
    }

    #[tokio::test]
    async fn faults_queue_in_order_and_hit_refreshes_too() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        mock.fail_token_requests(
            Fault::VendorCode {
                http: StatusCode::OK,
                vendor_code: -1208,
                sql_state: "08004",
            },
            1,
        );
        mock.fail_token_requests(
            Fault::VendorCode {
                http: StatusCode::UNAUTHORIZED,
                vendor_code: -42,
                sql_state: "XX000",
            },
            1,
        );
        let (status, answer) = refresh(&mock, &token).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, -1208));
        assert_eq!(answer["status"]["reason"], "security token expired");
        let (status, answer) = refresh(&mock, &token).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -42)
        );
        assert_eq!(answer["status"]["sql_state"], "XX000");
        assert_eq!(vendor_code(&refresh(&mock, &token).await.1), 0);
        assert_eq!(mock.counters().failed_token_requests, 2);
    }

    #[tokio::test]
    async fn body_fault_is_sent_verbatim() {
        let mock = MockOcient::new();
        let body = Bytes::from_static(b"{\"access_token\": \"\x01\x7f\"");
        mock.fail_token_requests(
            Fault::Body {
                status: StatusCode::OK,
                content_type: "text/html",
                body: body.clone(),
            },
            1,
        );
        let response = call(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html");
        assert_eq!(
            response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes(),
            body
        );
    }

    #[tokio::test]
    async fn body_fault_with_an_invalid_content_type_omits_the_header() {
        let mock = MockOcient::new();
        mock.fail_token_requests(
            Fault::Body {
                status: StatusCode::OK,
                content_type: "bad\nvalue",
                body: Bytes::new(),
            },
            1,
        );
        let response = call(&mock, login_request("jdoe", "secret")).await;
        assert!(response.headers().get(CONTENT_TYPE).is_none());
        assert!(response.body().is_end_stream());
    }

    #[tokio::test(start_paused = true)]
    async fn hang_fault_never_answers() {
        let mock = MockOcient::new();
        mock.fail_token_requests(Fault::Hang, 1);
        let pending = call(&mock, login_request("jdoe", "secret"));
        let outcome = tokio::time::timeout(Duration::from_secs(3600), pending).await;
        assert!(outcome.is_err(), "a hung request answered");
        let counters = mock.counters();
        assert_eq!((counters.logins, counters.failed_token_requests), (1, 1));
        login(&mock).await;
    }

    #[tokio::test]
    async fn cut_off_fault_fails_the_body_midway() {
        let mock = MockOcient::new();
        mock.fail_token_requests(Fault::CutOff, 1);
        let response = call(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let declared: u64 = response.headers()[CONTENT_LENGTH]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        assert_eq!(response.body().size_hint().exact(), Some(declared));
        let mut body = response.into_body();
        let first = body.frame().await.expect("a frame").expect("data first");
        assert!((first.data_ref().map_or(0, Bytes::len) as u64) < declared);
        assert!(body.frame().await.expect("a frame").is_err());
        assert!(body.frame().await.is_none());
        assert_eq!(mock.counters().failed_token_requests, 1);
    }

    #[tokio::test]
    async fn clear_faults_restores_normal_answers() {
        let mock = MockOcient::new();
        mock.fail_token_requests(Fault::Status(StatusCode::INTERNAL_SERVER_ERROR), usize::MAX);
        mock.fail_token_requests(Fault::Hang, usize::MAX);
        assert!(format!("{mock:?}").contains(&format!("pending_faults: {}", usize::MAX)));
        assert_eq!(
            send(&mock, login_request("jdoe", "secret")).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        mock.clear_faults();
        login(&mock).await;
    }

    #[tokio::test]
    async fn retry_after_fault_names_when_to_come_back() {
        let mock = MockOcient::new();
        let fault = |retry_after: &str| Fault::RetryAfter {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: retry_after.to_owned(),
        };
        mock.fail_token_requests(fault("3"), 1);
        mock.fail_token_requests(fault("bad\nvalue"), 1);
        let response = call(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "3");
        let response = call(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().get(http::header::RETRY_AFTER).is_none());
        assert_eq!(mock.counters().failed_token_requests, 2);
    }

    // The log line says which kind of fault was injected, never the answer it carries.
    #[test]
    fn a_fault_is_logged_by_its_kind_alone() {
        let faults = [
            Fault::Status(StatusCode::BAD_GATEWAY),
            Fault::VendorCode {
                http: StatusCode::OK,
                vendor_code: -1208,
                sql_state: "08001",
            },
            Fault::Body {
                status: StatusCode::OK,
                content_type: JSON,
                body: Bytes::from_static(br#"{"access_token":"leaked"}"#),
            },
            Fault::RetryAfter {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after: "3".into(),
            },
            Fault::Hang,
            Fault::CutOff,
        ];
        let kinds: Vec<&str> = faults.iter().map(Fault::name).collect();
        assert_eq!(
            kinds,
            [
                "Status",
                "VendorCode",
                "Body",
                "RetryAfter",
                "Hang",
                "CutOff"
            ]
        );
    }
}
