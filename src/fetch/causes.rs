//! How a failed attempt is classed for the next one: an outage, a rejection, or an answer the
//! layer cannot use.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Response, StatusCode, Uri};
use http_body_util::Full;

use super::*;
use crate::endpoint::{FailureKind, TokenClient, TokenEndpoint};
use crate::error::ErrorCode;
#[cfg(feature = "ocient")]
use crate::ocient::OcientAuth;
use crate::state::Cause;

/// A wrapped service that is never called: only the classing is under test.
#[derive(Clone)]
struct Unused;

impl tower_service::Service<Request<Full<Bytes>>> for Unused {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
        ready(Ok(Response::new(Full::default())))
    }
}

fn fetcher(endpoint: impl TokenEndpoint) -> Fetcher<Unused, Full<Bytes>> {
    let endpoint: Arc<dyn crate::endpoint::erased::DynEndpoint> = Arc::new(endpoint);
    let revokers = crate::revoker::Revokers::none();
    let timeout = Duration::from_secs(1);
    let record = Arc::new(crate::record::Record::new("test", None));
    let config = Arc::new(Config::new(endpoint, &[], timeout, revokers, record));
    Fetcher::<Unused, Full<Bytes>> {
        service: Unused,
        config,
        server_wait: None,
        _body: PhantomData,
    }
}

fn cause(endpoint: impl TokenEndpoint, error: Error) -> Cause {
    fetcher(endpoint).setback(error).cause
}

#[cfg(feature = "ocient")]
fn rejected(status: u16, vendor_code: i64) -> Error {
    let code = ErrorCode::Ocient {
        vendor_code,
        sql_state: String::new(),
    };
    let status = StatusCode::from_u16(status).unwrap();
    Error::rejected(Exchange::Login, status, Some(code), "")
}

#[cfg(feature = "ocient")]
fn node() -> OcientAuth {
    OcientAuth::new(Uri::from_static("https://sql-node")).credentials("jdoe", "secret")
}

#[cfg(feature = "ocient")]
#[test]
fn what_the_server_could_not_answer_is_an_outage() {
    let transport = Error::transport(Exchange::Login, "connection refused");
    let timeout = Error::Timeout {
        exchange: Exchange::Login,
        after: Duration::from_secs(1),
    };
    for error in [transport, timeout, rejected(503, -1), rejected(429, 0)] {
        assert_eq!(cause(node(), error), Cause::Outage);
    }
}

#[cfg(feature = "ocient")]
#[test]
fn a_judgement_of_the_credentials_or_the_token_is_a_rejection() {
    let plain_http = Error::InsecureTransport {
        origin: "http://sql-node".into(),
    };
    for error in [
        rejected(401, -1),
        rejected(403, -1),
        rejected(200, -304),
        rejected(500, -1208),
        Error::MissingCredentials,
        plain_http,
        // The user's answer to a device grant: asking again at once would only prompt again.
        Error::device_grant(crate::DeviceGrantEnd::Denied, "access_denied"),
        Error::device_grant(crate::DeviceGrantEnd::TimedOut, ""),
    ] {
        assert_eq!(cause(node(), error.clone()), Cause::Rejection, "{error}");
    }
}

#[cfg(feature = "ocient")]
#[test]
fn anything_else_the_server_said_is_unusable() {
    let garbage = Error::invalid_response(Exchange::Login, "not JSON");
    for error in [rejected(404, 0), rejected(400, -1), garbage] {
        assert_eq!(cause(node(), error.clone()), Cause::Unusable, "{error}");
    }
}

/// An endpoint whose server refuses credentials with a 400 and says so in its own words.
#[derive(Debug)]
struct BadUser(Uri);

impl TokenEndpoint for BadUser {
    fn origin(&self) -> &Uri {
        &self.0
    }
    async fn refresh(&self, _: &mut TokenClient<'_>, _: &Grant) -> Result<Grant, Error> {
        unreachable!("never asked")
    }
    fn classify(&self, error: &Error) -> FailureKind {
        match error.code() {
            Some(ErrorCode::Named(code)) if code == "bad_user" => FailureKind::Refused,
            _ => FailureKind::of(error),
        }
    }
}

#[test]
fn the_endpoints_classification_is_what_the_layer_reads() {
    let bad_user = Some(ErrorCode::Named("bad_user".into()));
    let refused = Error::rejected(Exchange::Login, StatusCode::BAD_REQUEST, bad_user, "");
    let endpoint = || BadUser(Uri::from_static("https://api"));
    assert_eq!(cause(endpoint(), refused), Cause::Rejection);
    let other = Error::rejected(Exchange::Login, StatusCode::BAD_REQUEST, None, "");
    assert_eq!(cause(endpoint(), other), Cause::Unusable);
}

#[test]
fn only_a_node_that_failed_is_failed_over_from() {
    let fetcher = fetcher(BadUser(Uri::from_static("https://api")));
    let answered = |status: u16, code: Option<&str>| {
        let status = StatusCode::from_u16(status).unwrap();
        let code = code.map(|code| ErrorCode::Named(code.into()));
        Error::rejected(Exchange::Login, status, code, "")
    };
    let away = [
        Error::transport(Exchange::Login, "connection refused"),
        answered(502, None),
        Error::InsecureTransport {
            origin: "http://sql-node".into(),
        },
    ];
    for error in away {
        assert!(fetcher.node_failed(&error), "{error}");
    }
    // Away, but every node would meet the same provider.
    let provider = Error::provider("vault sealed");
    assert_eq!(FailureKind::of(&provider), FailureKind::Away);
    let judged = [
        provider,
        answered(401, None),
        answered(400, Some("bad_user")),
    ];
    for error in judged {
        assert!(!fetcher.node_failed(&error), "{error}");
    }
}
