//! `/v1/execute`: admitting a query by its token (and by whose the test says
//! it is, `identity.rs`), the row format it asks for, and the mock's one row
//! in that format.

use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::body::{BoxError, MockBody};
use crate::identity::Identity;
use crate::ids::query_id;
use crate::state::Shared;
use crate::wire::{bearer, has_media_type, json, read_json, ApiStatus, Failure, QueryAnswer};

/// The one column of the mock's one row, as `SELECT 1` answers it: named
/// `c1`, as in the OpenAPI document's example.
const COLUMN: &str = "c1";
const VALUE: u8 = 1;

/// How an answer lays out its rows.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// Rows as arrays, `[[1]]`: Ocient's documented default.
    Array,
    /// Rows as objects keyed by column name, `[{"c1": 1}]`.
    Collection,
}

/// What of an execute body shapes the answer. The mock runs no SQL, so
/// `statement`, `params` and the rest are left unread.
#[derive(Deserialize, Default)]
struct ExecuteBody {
    format: Option<String>,
}

impl Format {
    /// `format` from the JSON body, else from the query string, which is
    /// where a GET (no body) and a `text/plain` POST (the body is the bare
    /// statement) carry it; `array` when neither says.
    async fn requested<B>(request: &Parts, body: B) -> Result<Self, Failure>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let in_body = if body_is_json(request) {
            // An empty body asks for nothing, so it gets the defaults.
            let body: Option<ExecuteBody> = read_json(body).await?;
            body.unwrap_or_default().format
        } else {
            None
        };
        let in_query = request
            .uri
            .query()
            .and_then(|query| query_value(query, "format"));
        in_body
            .as_deref()
            .or(in_query)
            .map_or(Ok(Self::Array), Self::named)
    }

    fn named(name: &str) -> Result<Self, Failure> {
        match name {
            "array" => Ok(Self::Array),
            "collection" => Ok(Self::Collection),
            _ => Err(Failure::protocol(
                StatusCode::BAD_REQUEST,
                "22000",
                "format must be array or collection",
            )),
        }
    }

    /// The `data` of an answer: one row, one column.
    fn rows(self) -> Value {
        match self {
            Self::Array => json!([[VALUE]]),
            Self::Collection => json!([{ COLUMN: VALUE }]),
        }
    }
}

/// The token first, as for every authenticated call: a refused query's
/// body is never read. A good token counts as a good query even when its
/// body is then refused, since the counters are about tokens.
pub(super) async fn execute<B>(shared: &Shared, request: &Parts, body: B) -> Response<MockBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    if let Err(failure) = admit_query(shared, &request.headers) {
        return failure.into_response();
    }
    match Format::requested(request, body).await {
        Ok(format) => json(
            StatusCode::OK,
            &QueryAnswer {
                query_id: query_id(),
                status: ApiStatus::QUERY_OK,
                data: format.rows(),
            },
        ),
        Err(failure) => failure.into_response(),
    }
}

/// Checks the query's token, against the identity the test says sent it if
/// it says, and counts the query by it.
fn admit_query(shared: &Shared, headers: &HeaderMap) -> Result<(), Failure> {
    let now = Instant::now();
    let claimed = Identity::claimed(headers);
    let mut state = shared.lock();
    let verdict = bearer(headers).and_then(|token| state.check(token, claimed, now));
    let counter = match verdict {
        Ok(()) => &mut state.counters.queries_ok,
        Err(ApiStatus::NO_SESSION) => &mut state.counters.queries_no_token,
        Err(ApiStatus::WRONG_IDENTITY) => &mut state.counters.queries_wrong_identity,
        Err(_) => &mut state.counters.queries_bad_token,
    };
    *counter += 1;
    let in_band = state.knobs.errors_in_band;
    verdict.map_err(|status| match status {
        // 403 even with `errors_in_band`: this is no authentication outcome
        // of Ocient's but a client sending one identity's token for another,
        // and a 200 carrying -1205 would have it log in again and hide the
        // mix-up behind a retry.
        ApiStatus::WRONG_IDENTITY => Failure {
            http: StatusCode::FORBIDDEN,
            status,
        },
        status => Failure::auth(status, in_band),
    })
}

/// The mock never required a `Content-Type` for execute, so only the one
/// the API documents as "the body is the statement" is not read as JSON.
fn body_is_json(request: &Parts) -> bool {
    request.method == Method::POST && !has_media_type(&request.headers, "text/plain")
}

/// A query parameter's raw value. Not percent-decoded: `array` and
/// `collection` need no escapes, and an escaped value is one the mock
/// does not know either way.
fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::header::{AUTHORIZATION, CONTENT_TYPE};
    use http::{Method, Request, StatusCode};
    use http_body_util::Full;
    use serde_json::{json, Value};

    use crate::mock::MockOcient;
    use crate::state::Counters;
    use crate::test_support::*;

    /// An execute with a good token, the given body and `Content-Type`.
    fn query(
        token: &str,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        builder
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .expect("valid test request")
    }

    async fn data_of(mock: &MockOcient, request: Request<Full<Bytes>>) -> Value {
        let (status, answer) = send(mock, request).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::OK, 0),
            "{answer}"
        );
        answer["data"].clone()
    }

    #[tokio::test]
    async fn post_bodies_choose_the_row_format_and_default_to_arrays() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        let path = "/v1/execute/system";
        for (body, expected) in [
            (r#"{"statement": "SELECT 1"}"#, json!([[1]])),
            (
                r#"{"statement": "SELECT 1", "format": "array"}"#,
                json!([[1]]),
            ),
            (
                r#"{"statement": "SELECT 1", "format": "collection", "params": {}, "fetch_size": 0, "max_rows": 10}"#,
                json!([{"c1": 1}]),
            ),
            ("", json!([[1]])),
            (" \n", json!([[1]])),
            ("{}", json!([[1]])),
        ] {
            let request = request(Method::POST, path, Some(&token), body);
            assert_eq!(data_of(&mock, request).await, expected, "body {body}");
        }
        assert_eq!(mock.counters().queries_ok, 6);
    }

    #[tokio::test]
    async fn get_takes_the_format_from_the_query_string() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        for (uri, expected) in [
            ("/v1/execute/system", json!([[1]])),
            ("/v1/execute/system?format=array", json!([[1]])),
            ("/v1/execute/system?format=collection", json!([{"c1": 1}])),
            (
                "/v1/execute/system?statement=SELECT%201&format=collection&fetch_size=0",
                json!([{"c1": 1}]),
            ),
            ("/v1/execute/system?format", json!([[1]])),
        ] {
            let get = query(&token, Method::GET, uri, Some(JSON), "");
            assert_eq!(data_of(&mock, get).await, expected, "{uri}");
        }
        let with_body = query(
            &token,
            Method::GET,
            "/v1/execute/system",
            Some(JSON),
            r#"{"format": "collection"}"#,
        );
        assert_eq!(
            data_of(&mock, with_body).await,
            json!([[1]]),
            "GET has no body"
        );
    }

    #[tokio::test]
    async fn the_body_says_the_format_before_the_query_string() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        let uri = "/v1/execute/system?format=collection";
        let post = query(
            &token,
            Method::POST,
            uri,
            Some(JSON),
            r#"{"format": "array"}"#,
        );
        assert_eq!(data_of(&mock, post).await, json!([[1]]));
        let post = query(
            &token,
            Method::POST,
            uri,
            Some(JSON),
            r#"{"statement": "x"}"#,
        );
        assert_eq!(data_of(&mock, post).await, json!([{"c1": 1}]));
    }

    #[tokio::test]
    async fn content_types_are_still_not_required() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        let path = "/v1/execute/system";
        let bare = query(
            &token,
            Method::POST,
            path,
            None,
            r#"{"format": "collection"}"#,
        );
        assert_eq!(data_of(&mock, bare).await, json!([{"c1": 1}]));
        let text = "text/plain; charset=utf-8";
        let sql = query(&token, Method::POST, path, Some(text), "SELECT 1");
        assert_eq!(data_of(&mock, sql).await, json!([[1]]));
        let uri = "/v1/execute/system?format=collection";
        let sql = query(&token, Method::POST, uri, Some(text), "SELECT 1");
        assert_eq!(data_of(&mock, sql).await, json!([{"c1": 1}]));
    }

    #[tokio::test]
    async fn unknown_formats_are_400_and_malformed_bodies_are_malformed_json() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        let path = "/v1/execute/system";
        let unknown = "format must be array or collection";
        for (uri, body, reason) in [
            (path, r#"{"format": "table"}"#, unknown),
            (path, r#"{"format": "Collection"}"#, unknown),
            ("/v1/execute/system?format=rows", "", unknown),
            ("/v1/execute/system?format=", "", unknown),
            (path, "SELECT 1", "malformed JSON body"),
            (path, r#"{"format": 1}"#, "malformed JSON body"),
            (path, "null", "malformed JSON body"),
        ] {
            let (status, answer) =
                send(&mock, request(Method::POST, uri, Some(&token), body)).await;
            assert_eq!(
                (status, vendor_code(&answer)),
                (StatusCode::BAD_REQUEST, -1),
                "{uri} {body}"
            );
            assert_eq!(answer["status"]["sql_state"], "22000");
            assert_eq!(answer["status"]["reason"], reason, "{uri} {body}");
        }
        let get = query(&token, Method::GET, "/v1/execute/x?format=json", None, "");
        assert_eq!(send(&mock, get).await.0, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn the_token_is_checked_and_counted_before_the_body_is_read() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        let path = "/v1/execute/system";
        let (status, answer) = send(&mock, request(Method::POST, path, None, "{oops")).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -1204)
        );
        let stale = request(Method::POST, path, Some("mock.9.0"), r#"{"format": "x"}"#);
        assert_eq!(vendor_code(&send(&mock, stale).await.1), -1205);
        let good = request(Method::POST, path, Some(&token), r#"{"format": "x"}"#);
        assert_eq!(send(&mock, good).await.0, StatusCode::BAD_REQUEST);
        let expected = Counters {
            logins: 1,
            queries_ok: 1,
            queries_bad_token: 1,
            queries_no_token: 1,
            peak_token_requests_in_flight: 1,
            ..Counters::default()
        };
        assert_eq!(mock.counters(), expected, "a good token counts as one");
    }
}
