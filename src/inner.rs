//! What the layer asks of the service it wraps, written once.
//!
//! The layer sends its own token requests through the wrapped service, on a task of their
//! own, and reads their answers; so the service must be `Clone + Send + 'static`, its future
//! `Send`, and its answers HTTP responses whose body can be read on another task. These
//! traits are public so that the bounds of the public `Service` impl can be read and named;
//! they are sealed: every fitting type implements them, and no other can.

use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use crate::error::BoxError;

/// A tower HTTP client the layer can wrap: hyper-util's legacy `Client`, an axum
/// `Router` used as a client, any `Service<Request<B>, Response = Response<_>>` fitting
/// the bounds.
///
/// Spelled out: `S: Service<Request<B>> + Clone + Send + 'static`, with `S::Response:`
/// [`HttpResponse`], `S::Error: Into<BoxError>` and `S::Future: Send`. Sealed: every type
/// that fits implements it, and nothing else can.
pub trait InnerService<B>:
    sealed::Service<B>
    + Service<Request<B>, Response: HttpResponse, Error: Into<BoxError>, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S, B> InnerService<B> for S
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Response: HttpResponse,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
}

impl<S, B> sealed::Service<B> for S
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Response: HttpResponse,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
}

/// An HTTP response whose body the layer can read on its refresh task: an
/// `http::Response<B>` whose body `B` is `Send + 'static`, with `Send` data and an error
/// that converts into `BoxError`. Sealed: only such responses implement it.
pub trait HttpResponse: sealed::Response + Send + 'static {
    /// The body.
    type Body: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;

    /// The status, checked for a 401 on every answer.
    fn status(&self) -> StatusCode;

    /// The response itself, to read a token answer.
    fn into_http(self) -> Response<Self::Body>;
}

impl<ResBody> sealed::Response for Response<ResBody>
where
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
}

impl<ResBody> HttpResponse for Response<ResBody>
where
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Body = ResBody;

    fn status(&self) -> StatusCode {
        Response::status(self)
    }

    fn into_http(self) -> Response<ResBody> {
        self
    }
}

/// The seals: public traits in a private module, so no type outside the crate can name them.
mod sealed {
    pub trait Service<B> {}
    pub trait Response {}
}
