//! The request handler: routing each request to its endpoint, and what all
//! token requests share (counting, latency, injected faults). Each endpoint
//! is a function of the shared state beside this router, in `handler/`; the
//! state they read and change knows nothing of them.

mod device;
mod execute;
mod login;
mod sso;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;

use crate::body::{BoxError, MockBody};
use crate::state::{Shared, TokenRoute};
use crate::wire::{json, Failure};

/// The future returned by [`MockOcient`](crate::MockOcient)'s `Service::call`.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<MockBody>, Infallible>> + Send>>,
}

enum Route {
    Token(TokenRoute),
    DevicePoll,
    Execute,
    WrongMethod,
    NotFound,
}

impl Route {
    fn of(method: &Method, path: &str) -> Self {
        let (route, allowed) = match path {
            "/v1/login" => (Self::Token(TokenRoute::Login), method == Method::POST),
            "/v1/token_refresh" => (Self::Token(TokenRoute::Refresh), method == Method::POST),
            "/v1/sso_token" => (Self::Token(TokenRoute::SsoExchange), method == Method::POST),
            "/v1/sso_device_grant" => {
                (Self::Token(TokenRoute::DeviceGrant), method == Method::POST)
            }
            "/v1/sso_device_grant_verify" => (Self::DevicePoll, method == Method::POST),
            _ if is_execute(path) => (
                Self::Execute,
                method == Method::GET || method == Method::POST,
            ),
            _ => return Self::NotFound,
        };
        if allowed {
            route
        } else {
            Self::WrongMethod
        }
    }
}

fn is_execute(path: &str) -> bool {
    path.strip_prefix("/v1/execute/")
        .is_some_and(|database| !database.is_empty() && !database.contains('/'))
}

/// The whole of a call to the mock: the future owns its handle on the
/// state, so it outlives the `MockOcient` it came from.
pub(crate) fn call<B>(shared: Shared, request: Request<B>) -> ResponseFuture
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    ResponseFuture {
        inner: Box::pin(async move { Ok(respond(&shared, request).await) }),
    }
}

async fn respond<B>(shared: &Shared, request: Request<B>) -> Response<MockBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let response = match Route::of(&parts.method, parts.uri.path()) {
        Route::Token(endpoint) => token_request(shared, endpoint, &parts.headers, body).await,
        Route::DevicePoll => device::poll(shared, &parts.headers, body).await,
        Route::Execute => execute::execute(shared, &parts, body).await,
        Route::WrongMethod => Failure::protocol(
            StatusCode::METHOD_NOT_ALLOWED,
            "42000",
            "method not allowed",
        )
        .into_response(),
        Route::NotFound => {
            Failure::protocol(StatusCode::NOT_FOUND, "42000", "not found").into_response()
        }
    };
    // The path is safe to log: tokens travel in headers and bodies only.
    tracing::debug!(
        method = %parts.method,
        path = parts.uri.path(),
        status = %response.status(),
        "Ocient mock answered"
    );
    response
}

/// What every token request shares, whatever its endpoint: it is counted,
/// and counted in flight until its answer is ready, delayed by the latency
/// knob, and answered with the next queued fault instead if there is one; a
/// refusal counts as a failed token request.
async fn token_request<B>(
    shared: &Shared,
    endpoint: TokenRoute,
    headers: &HeaderMap,
    body: B,
) -> Response<MockBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    // Held to the end, and dropped with the future if it is cancelled.
    let _in_flight = shared.token_request_in_flight();
    let (fault, latency) = {
        let mut state = shared.lock();
        (state.begin_token_request(endpoint), state.knobs.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = fault {
        tracing::debug!(
            ?endpoint,
            fault = fault.name(),
            "Ocient mock injecting a fault"
        );
        return fault.into_response().await;
    }
    let answered = |issued| json(StatusCode::OK, &issued);
    let outcome = match endpoint {
        TokenRoute::Login => login::login(shared, headers, body).await.map(answered),
        TokenRoute::Refresh => login::refresh(shared, headers, body).await.map(answered),
        TokenRoute::SsoExchange => sso::exchange(shared, headers, body).await,
        TokenRoute::DeviceGrant => device::grant(shared, headers, body).await,
    };
    match outcome {
        Ok(response) => response,
        Err(failure) => {
            shared.lock().counters.failed_token_requests += 1;
            failure.into_response()
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<MockBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Method, StatusCode};
    use serde_json::Value;
    use tokio::time::Instant;

    use crate::mock::MockOcient;
    use crate::state::Counters;
    use crate::test_support::*;

    #[tokio::test]
    async fn login_ok_answers_like_ocient() {
        let mock = MockOcient::new();
        let (status, answer) = send(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["username"], "jdoe");
        assert_eq!(answer["database"], "system");
        assert_eq!(answer["expires_in"], 3600);
        assert_eq!(
            answer["status"],
            serde_json::json!({"reason": "Authentication successful", "sql_state": "00000", "vendor_code": 0})
        );
        let token = token_of(&answer);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts[..2], ["mock", "1"]);
        assert!(
            parts[2].len() == 16 && parts[2].bytes().all(|b| b.is_ascii_hexdigit()),
            "{token}"
        );
        assert_eq!(mock.current_generation(), 1);
        assert_eq!(
            mock.counters(),
            Counters {
                logins: 1,
                peak_token_requests_in_flight: 1,
                ..Counters::default()
            }
        );
    }

    #[tokio::test]
    async fn login_uses_the_requested_database_and_added_users() {
        let mock = MockOcient::new().user("alice", "pw");
        let body = r#"{"username": "alice", "password": "pw", "database": "sales"}"#;
        let (status, answer) = send(&mock, request(Method::POST, "/v1/login", None, body)).await;
        assert_eq!(
            (status, &answer["database"]),
            (StatusCode::OK, &Value::from("sales"))
        );
        assert_eq!(answer["username"], "alice");
        login(&mock).await;
    }

    #[tokio::test]
    async fn a_rotated_password_takes_effect_at_the_next_login() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        mock.set_password("jdoe", "rotated");
        let (status, answer) = send(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -304)
        );
        let (status, _) = send(&mock, login_request("jdoe", "rotated")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            execute(&mock, &token).await,
            (StatusCode::OK, 0),
            "issued tokens stay"
        );
    }

    #[tokio::test]
    async fn wrong_credentials_are_401_with_vendor_code_304() {
        let mock = MockOcient::new();
        for (user, password) in [("jdoe", "wrong"), ("nobody", "secret")] {
            let (status, answer) = send(&mock, login_request(user, password)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(vendor_code(&answer), -304);
            assert_eq!(answer["status"]["sql_state"], "08004");
            assert!(answer.get("access_token").is_none());
        }
        let counters = mock.counters();
        assert_eq!((counters.logins, counters.failed_token_requests), (2, 2));
        assert_eq!(mock.current_generation(), 0);
    }

    #[tokio::test]
    async fn errors_in_band_answer_200_with_the_vendor_code() {
        let mock = MockOcient::new().errors_in_band(true);
        let (status, answer) = send(&mock, login_request("jdoe", "wrong")).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, -304));
        assert_eq!(
            execute(&mock, "mock.9.0000000000000000").await,
            (StatusCode::OK, -1205)
        );
        assert_eq!(mock.counters().failed_token_requests, 1);
    }

    #[tokio::test]
    async fn execute_answers_and_counts_by_token() {
        let mock = MockOcient::new();
        let token = login(&mock).await;
        let (status, answer) = send(&mock, execute_request(Some(&token))).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
        assert_eq!(answer["data"], serde_json::json!([[1]]));
        assert_eq!(answer["query_id"].as_str().map(str::len), Some(36));
        let get = request(Method::GET, "/v1/execute/other", Some(&token), "");
        assert_eq!(send(&mock, get).await.0, StatusCode::OK);
        let (status, answer) = send(&mock, execute_request(None)).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -1204)
        );
        assert_eq!(execute(&mock, "mock.1.ffffffffffffffff").await.1, -1205);
        let expected = Counters {
            logins: 1,
            queries_ok: 2,
            queries_bad_token: 1,
            queries_no_token: 1,
            peak_token_requests_in_flight: 1,
            ..Counters::default()
        };
        assert_eq!(mock.counters(), expected);
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_get_status_objects() {
        let mock = MockOcient::new();
        for (method, path, expected) in [
            (Method::GET, "/v1/nothing", StatusCode::NOT_FOUND),
            (Method::GET, "/v1/execute/", StatusCode::NOT_FOUND),
            (Method::GET, "/v1/execute/a/b", StatusCode::NOT_FOUND),
            (Method::GET, "/v1/login", StatusCode::METHOD_NOT_ALLOWED),
            (
                Method::DELETE,
                "/v1/execute/system",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
        ] {
            let (status, answer) = send(&mock, request(method, path, None, "")).await;
            assert_eq!((status, vendor_code(&answer)), (expected, -1), "{path}");
        }
        assert_eq!(mock.counters(), Counters::default());
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_token_requests_on_the_tokio_clock() {
        let mock = MockOcient::new().latency(Duration::from_secs(5));
        let in_flight = tokio::spawn({
            let mock = mock.clone();
            async move { login(&mock).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(mock.counters().logins, 1, "counted on arrival");
        tokio::time::advance(Duration::from_millis(4_999)).await;
        tokio::task::yield_now().await;
        assert!(!in_flight.is_finished());
        tokio::time::advance(Duration::from_millis(1)).await;
        in_flight.await.expect("login task");

        mock.set_latency(Duration::ZERO);
        let started = Instant::now();
        login(&mock).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_response_future_names_itself_in_debug() {
        let future = tower_service::Service::call(&mut MockOcient::new(), execute_request(None));
        assert_eq!(format!("{future:?}"), "ResponseFuture { .. }");
    }
}
