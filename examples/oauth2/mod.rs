//! What `oauth2_refresh` runs on besides its grant: the encodings, reading answers, the
//! authorization server, and the client both its `main` and its tests use.

pub mod answer;
pub mod encoding;
pub mod server;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{BoxError, Service, ServiceExt};
use tower_token_refresh::Secret;

use server::TokenServer;

pub type Body = Full<Bytes>;

pub const CLIENT_ID: &str = "example-client";
/// The secret of this example's made-up client, with the characters that HTTP Basic and
/// form encoding trip over (`:`, `+`, `/`, `&`, `=`, `%`). Never printed all the same.
pub const CLIENT_SECRET: &str = "s3cr3t:+/&=%~";
/// How long the server's access tokens live: short, to show several rotations quickly.
pub const ACCESS_LIFETIME: Duration = Duration::from_secs(2);
/// How long to wait at most for the rotations one wants to see.
pub const DEADLINE: Duration = Duration::from_secs(15);

pub fn client_secret() -> Secret {
    Secret::new(CLIENT_SECRET).expect("visible ASCII")
}

pub fn http_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http::<Body>()
}

/// Sends `GET /api/hello` through `service`: the status and the text of the answer.
pub async fn say_hello<S>(
    service: &S,
    server: &TokenServer,
) -> Result<(StatusCode, String), BoxError>
where
    S: Service<Request<Body>, Response = Response<Incoming>, Error = BoxError> + Clone,
{
    let request = Request::get(server.uri("/api/hello"))
        .body(Body::default())
        .expect("a valid request");
    let response = service.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
