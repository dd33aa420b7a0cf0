//! What the layer asks of the service it wraps, written once.
//!
//! The layer sends its own token requests through the wrapped service, on a task of their
//! own, and reads their answers; so the service must be `Clone + Send + 'static`, its future
//! `Send`, and its answers HTTP responses whose body can be read on another task. These
//! traits are public only so the public `Service` impl can name them; they live in a private
//! module and every fitting type implements them.

use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use crate::error::BoxError;

/// A tower HTTP client the layer can wrap: hyper-util's legacy `Client`, an axum
/// `Router` used as a client, any `Service<Request<B>, Response = Response<_>>` fitting
/// the bounds.
pub trait InnerService<B>:
    Service<Request<B>, Response: HttpResponse, Error: Into<BoxError>, Future: Send>
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

/// An HTTP response whose body the layer can read on its refresh task.
pub trait HttpResponse: Send + 'static {
    /// The body.
    type Body: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;

    /// The status, checked for a 401 on every answer.
    fn status(&self) -> StatusCode;

    /// The response itself, to read a token answer.
    fn into_http(self) -> Response<Self::Body>;
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
