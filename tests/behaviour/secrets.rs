//! Secrets stay out of `Debug`, `Display`, errors and tracing output, even when the server
//! echoes them back.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use ocient_mock::{Fault, MockOcient};
use tokio::time::sleep;
use tower::{service_fn, ServiceBuilder};
use tower_token_refresh::{Error, OcientAuth, TokenEvent, TokenRefreshLayer};

use crate::common::capture::Capture;
use crate::common::{layered, query, secs, send, BASE};

#[tokio::test(start_paused = true)]
async fn secrets_never_show() {
    let logs = Arc::new(Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Capture(Arc::clone(&logs)));
    let password = "pa55-w0rd";
    let mock = MockOcient::new()
        .user("jdoe", password)
        .token_lifetime(secs(60));
    let auth = OcientAuth::new(BASE.parse().unwrap())
        .credentials("jdoe", password)
        .initial_token("initial-t0ken", secs(1));
    let layer = TokenRefreshLayer::new(auth.clone());
    let (service, recorder) = layered(mock.clone(), layer.clone());
    // The recorder keeps request bodies, passwords included, so show the layer over the
    // bare mock: it shares the token with `service`.
    let shown_service = tower::Layer::layer(&layer, mock.clone());
    send(&service, query()).await.unwrap();
    sleep(secs(40)).await;
    send(&service, query()).await.unwrap();
    sleep(secs(1)).await;
    mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 1);
    mock.revoke_all();
    send(&service, query()).await.unwrap();
    let error = send(&service, query()).await.unwrap_err();

    let tokens: Vec<String> = recorder
        .seen()
        .iter()
        .filter_map(|s| s.headers.get(AUTHORIZATION))
        .map(|h| h.to_str().unwrap().trim_start_matches("Bearer ").to_owned())
        .collect();
    assert!(
        tokens.len() >= 3,
        "the test must have seen tokens to look for"
    );
    let shown = format!(
        "{auth:?} {layer:?} {shown_service:?} {error} {error:?} {mock:?} {}",
        logs.lock().unwrap()
    );
    assert!(
        !logs.lock().unwrap().is_empty(),
        "the layer logged nothing to check"
    );
    for secret in tokens
        .iter()
        .map(String::as_str)
        .chain([password, "initial-t0ken"])
    {
        assert!(!shown.contains(secret), "{secret:?} leaked into: {shown}");
    }
}

/// A server that logs everyone in with the same token, and fails every refresh, quoting
/// the token it was sent.
async fn echoing(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match request.uri().path() {
        "/v1/login" => (
            StatusCode::OK,
            serde_json::json!({"access_token": ECHOED, "expires_in": 100, "status": {"vendor_code": 0}}),
        ),
        "/v1/token_refresh" => {
            let bearer = request.headers()[AUTHORIZATION].to_str().unwrap();
            let token = bearer.trim_start_matches("Bearer ");
            let reason = format!("token {token} is unknown; was it {token}?");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"status": {"reason": reason, "sql_state": "XX000", "vendor_code": -1}}),
            )
        }
        _ => (
            StatusCode::OK,
            serde_json::json!({"status": {"vendor_code": 0}}),
        ),
    };
    let mut response = Response::new(Full::from(body.to_string()));
    *response.status_mut() = status;
    Ok(response)
}

/// The token the echoing server hands out: the layer got it by logging in, so only the
/// layer's own scrubbing (not the endpoint's) can keep it out of the failure.
const ECHOED: &str = "t0k3n-ech0ed";

#[tokio::test(start_paused = true)]
async fn a_token_the_server_echoes_in_a_failed_refresh_shows_nowhere() {
    let logs = Arc::new(Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Capture(Arc::clone(&logs)));
    let events = Arc::new(Mutex::new(String::new()));
    let heard = Arc::clone(&events);
    let auth = OcientAuth::new(BASE.parse().unwrap()).credentials("jdoe", "secret");
    let layer = TokenRefreshLayer::new(auth).on_token(move |event: &TokenEvent<'_>| {
        heard.lock().unwrap().push_str(&format!("{event:?}\n"));
    });
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(echoing));
    send(&service, query()).await.unwrap();
    sleep(secs(61)).await;
    send(&service, query()).await.unwrap(); // due: the refresh starts, and fails
    sleep(secs(1)).await;

    let status = service.status();
    let error = status.last_error.clone().expect("the refresh failed");
    let Error::Rejected { reason, .. } = &error else {
        panic!("expected the refusal, got {error}");
    };
    assert!(reason.contains("<redacted>"), "{reason}");
    let events = events.lock().unwrap().clone();
    let logs = logs.lock().unwrap().clone();
    assert!(events.contains("Failed"), "the hook heard it: {events}");
    assert!(
        logs.contains("token request failed"),
        "it was logged: {logs}"
    );
    let shown = format!("{error} {error:?} {status:?} {events} {logs}");
    assert!(!shown.contains(ECHOED), "the token leaked into: {shown}");
}
