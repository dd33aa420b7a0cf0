//! A protocol of the user's own, written against the public seam alone: its classification
//! is what the layer reads, a credentials source of its own fails as `Error::Provider`, and a
//! wait it asks the client for is not counted against the refresh timeout.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_token_refresh::{
    Answer, Error, ErrorCode, FailureKind, Grant, Secret, TokenClient, TokenEndpoint,
    TokenRefreshLayer,
};

use crate::common::{secs, token_error};

/// Logs in at `/login`; its server refuses credentials with a 400 and its own words.
#[derive(Debug)]
struct BadUserLogin {
    api: Uri,
    /// Whether it tells the layer what its 400 means.
    classifies: bool,
    /// A credentials source that fails, or none.
    provider_fails: bool,
}

impl BadUserLogin {
    fn read(answer: Answer) -> Result<Grant, Error> {
        if !answer.status.is_success() {
            let code = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(|s| ErrorCode::Named(s.to_owned())));
            return Err(Error::rejected(answer.exchange, answer.status, code, ""));
        }
        let token = Secret::new(String::from_utf8_lossy(&answer.body))
            .map_err(|e| Error::invalid_response(answer.exchange, e.to_string()))?;
        Ok(Grant::new(token, secs(60)))
    }
}

impl TokenEndpoint for BadUserLogin {
    fn origin(&self) -> &Uri {
        &self.api
    }

    fn can_log_in(&self) -> bool {
        true
    }

    async fn login(&self, client: &mut TokenClient<'_>) -> Result<Grant, Error> {
        if self.provider_fails {
            let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
            return Err(Error::provider(missing));
        }
        let request = Request::post(format!("{}login", self.api)).body(Bytes::new());
        Self::read(client.send(request.unwrap()).await?)
    }

    async fn refresh(&self, _: &mut TokenClient<'_>, _: &Grant) -> Result<Grant, Error> {
        unreachable!("no token is ever obtained")
    }

    fn classify(&self, error: &Error) -> FailureKind {
        match error.code() {
            Some(ErrorCode::Named(code)) if self.classifies && code == "bad_user" => {
                FailureKind::Refused
            }
            _ => FailureKind::of(error),
        }
    }
}

/// A server that refuses every login with `400 {"error":"bad_user"}`, counting them.
fn refusing(
    logins: Arc<AtomicU64>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |_: Request<Full<Bytes>>| {
        logins.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::new(Full::from(r#"{"error":"bad_user"}"#));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        std::future::ready(Ok(response))
    })
}

/// The logins sent in five idle minutes after one request, with `refresh_when_idle`.
async fn logins_in_five_idle_minutes(classifies: bool) -> u64 {
    let logins = Arc::new(AtomicU64::new(0));
    let endpoint = BadUserLogin {
        api: Uri::from_static("https://api.test/"),
        classifies,
        provider_fails: false,
    };
    let layer = TokenRefreshLayer::new(endpoint).refresh_when_idle(true);
    let service = layer.layer(refusing(Arc::clone(&logins)));
    let request = Request::get("https://api.test/data").body(Full::default());
    let error = service.oneshot(request.unwrap()).await.unwrap_err();
    assert_eq!(
        token_error(&error).code(),
        Some(&ErrorCode::Named("bad_user".into()))
    );
    tokio::time::sleep(secs(300)).await;
    logins.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn credentials_the_endpoint_calls_refused_are_not_sent_again_unasked() {
    assert_eq!(logins_in_five_idle_minutes(true).await, 1);
}

/// The same server, with a 400 the layer cannot read: an unusable answer, tried again on
/// its own. What the test above guards against.
#[tokio::test(start_paused = true)]
async fn an_unusable_answer_is_tried_again_while_idle() {
    assert!(logins_in_five_idle_minutes(false).await > 5);
}

#[tokio::test(start_paused = true)]
async fn a_custom_credentials_source_fails_as_a_provider_error_and_sends_nothing() {
    let logins = Arc::new(AtomicU64::new(0));
    let endpoint = BadUserLogin {
        api: Uri::from_static("https://api.test/"),
        classifies: true,
        provider_fails: true,
    };
    let service = TokenRefreshLayer::new(endpoint).layer(refusing(Arc::clone(&logins)));
    let error = service.warm_up().await.unwrap_err();
    assert!(matches!(error, Error::Provider { .. }), "{error}");
    let source = std::error::Error::source(&error).expect("the source's own error");
    assert_eq!(source.to_string(), "no such file");
    assert_eq!(logins.load(Ordering::SeqCst), 0);
}

/// Waits `wait` before its one login request: through the client's `sleep` (a poll
/// interval, which no timeout counts) or on its own.
#[derive(Debug)]
struct Patient {
    api: Uri,
    wait: std::time::Duration,
    asks_the_client: bool,
}

impl TokenEndpoint for Patient {
    fn origin(&self) -> &Uri {
        &self.api
    }

    fn can_log_in(&self) -> bool {
        true
    }

    async fn login(&self, client: &mut TokenClient<'_>) -> Result<Grant, Error> {
        match self.asks_the_client {
            true => client.sleep(self.wait).await,
            false => tokio::time::sleep(self.wait).await,
        }
        let request = Request::post(format!("{}login", self.api)).body(Bytes::new());
        client.send(request.unwrap()).await?;
        Ok(Grant::new(Secret::new("t0ken").unwrap(), secs(60)))
    }

    async fn refresh(&self, _: &mut TokenClient<'_>, _: &Grant) -> Result<Grant, Error> {
        unreachable!("never asked")
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_the_protocol_asks_for_is_not_counted_and_one_of_its_own_is() {
    let login = |asks_the_client| {
        let endpoint = Patient {
            api: Uri::from_static("https://api.test/"),
            wait: secs(10),
            asks_the_client,
        };
        let layer = TokenRefreshLayer::new(endpoint).refresh_timeout(secs(1));
        let service = layer.layer(refusing(Arc::new(AtomicU64::new(0))));
        async move {
            let started = tokio::time::Instant::now();
            let outcome = service.warm_up().await;
            (outcome, started.elapsed())
        }
    };
    let (asked, took) = login(true).await;
    assert!(asked.is_ok(), "{asked:?}");
    assert_eq!(took, secs(10), "the whole wait, then the answer");
    let (own, took) = login(false).await;
    assert!(matches!(own, Err(Error::Timeout { .. })), "{own:?}");
    assert_eq!(took, secs(1), "cut off at the refresh timeout");
}
