//! Hostile token answers: malformed, oversized or absurd grants are typed errors, send
//! nothing, and leave the layer able to recover.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use ocient_mock::{Fault, MockOcient};
use tokio::time::sleep;
use tower::{service_fn, ServiceBuilder};
use tower_token_refresh::{Error, TokenRefreshLayer};

use crate::common::{auth, layered, millis, query, secs, send, token_error};

// Hostile answers are typed errors, send nothing, and the layer recovers afterwards.
#[tokio::test(start_paused = true)]
async fn hostile_answers_are_typed_errors_and_the_layer_recovers() {
    let hostile: &[(&str, &[u8])] = &[
        ("not JSON", b"<html>oops</html>"),
        (
            "no token",
            br#"{"expires_in":60,"status":{"vendor_code":0}}"#,
        ),
        ("empty token", br#"{"access_token":"","expires_in":60}"#),
        ("number token", br#"{"access_token":42,"expires_in":60}"#),
        (
            "CRLF token",
            br#"{"access_token":"a\r\nX-Evil: 1","expires_in":60}"#,
        ),
        (
            "NUL token",
            br#"{"access_token":"a\u0000b","expires_in":60}"#,
        ),
        ("space token", br#"{"access_token":"a b","expires_in":60}"#),
        (
            "non-ASCII token",
            br#"{"access_token":"t\u00f6ken","expires_in":60}"#,
        ),
        ("no expiry", br#"{"access_token":"abc"}"#),
        ("zero expiry", br#"{"access_token":"abc","expires_in":0}"#),
        (
            "negative expiry",
            br#"{"access_token":"abc","expires_in":-5}"#,
        ),
        (
            "string expiry",
            br#"{"access_token":"abc","expires_in":"3600"}"#,
        ),
    ];
    for (name, body) in hostile {
        let mock = MockOcient::new();
        mock.fail_token_requests(
            Fault::Body {
                status: StatusCode::OK,
                content_type: "application/json",
                body: Bytes::from_static(body),
            },
            1,
        );
        let layer = TokenRefreshLayer::new(auth()).retry_backoff(millis(10), millis(10));
        let (service, recorder) = layered(mock.clone(), layer);
        let error = send(&service, query()).await.unwrap_err();
        assert!(
            matches!(token_error(&error), Error::InvalidResponse { .. }),
            "{name}: {error:?}"
        );
        assert!(
            recorder.seen_at("/v1/execute/retail_analytics").is_empty(),
            "{name}: nothing may be forwarded"
        );
        sleep(millis(20)).await;
        let response = send(&service, query()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}: must recover");
    }
}

// Answers over 1 MiB are refused, whether they say so up front or not.
#[tokio::test(start_paused = true)]
async fn answers_over_a_mebibyte_are_refused() {
    let padding = "x".repeat(1024 * 1024);
    let big = format!(r#"{{"access_token":"abc","expires_in":60,"pad":"{padding}"}}"#);
    let mock = MockOcient::new();
    mock.fail_token_requests(
        Fault::Body {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from(big.clone()),
        },
        1,
    );
    let (service, _) = layered(mock, TokenRefreshLayer::new(auth()));
    let error = send(&service, query()).await.unwrap_err();
    assert!(format!("{error}").contains("larger than 1 MiB"), "{error}");

    // No Content-Length: the capped read stops it.
    let inner = service_fn(move |_: Request<Full<Bytes>>| {
        let big = big.clone();
        async move {
            let chunks = big
                .into_bytes()
                .chunks(64 * 1024)
                .map(Bytes::copy_from_slice)
                .collect();
            let body = Chunks(chunks);
            Ok::<_, Infallible>(Response::new(body))
        }
    });
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(auth()))
        .service(inner);
    let error = send(&service, query()).await.unwrap_err();
    assert!(format!("{error}").contains("larger than 1 MiB"), "{error}");
}

/// A body of chunks with no declared length, as a chunked answer arrives.
#[derive(Debug)]
struct Chunks(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

// Absurd lifetimes are clamped, never an `Instant` overflow.
#[tokio::test(start_paused = true)]
async fn absurd_lifetimes_are_clamped() {
    for expires_in in ["9223372036854775807", "1e300", "18446744073709551615"] {
        let refreshes = Arc::new(Mutex::new(0));
        let endpoint = {
            let refreshes = Arc::clone(&refreshes);
            let grant = format!(r#"{{"access_token":"abc","expires_in":{expires_in}}}"#);
            service_fn(move |request: Request<Full<Bytes>>| {
                if request.uri().path() == "/v1/token_refresh" {
                    *refreshes.lock().unwrap() += 1;
                }
                let body = Full::<Bytes>::from(grant.clone());
                async move { Ok::<_, Infallible>(Response::new(body)) }
            })
        };
        let service = ServiceBuilder::new()
            .layer(TokenRefreshLayer::new(auth()))
            .service(endpoint);
        send(&service, query()).await.unwrap();
        // Clamped to 30 days, the token is due after 15 to 18 of them.
        sleep(Duration::from_secs(14 * 24 * 3600)).await;
        send(&service, query()).await.unwrap();
        assert_eq!(*refreshes.lock().unwrap(), 0, "{expires_in}: not due yet");
        sleep(Duration::from_secs(5 * 24 * 3600)).await;
        send(&service, query()).await.unwrap();
        sleep(secs(1)).await;
        assert_eq!(
            *refreshes.lock().unwrap(),
            1,
            "{expires_in}: due within 30 days"
        );
    }
}
