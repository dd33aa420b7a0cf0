//! [`serve`]: any tower service over HTTP/1 on a loopback port; the accept
//! loop `serve_tls` shares.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::{Request, Response, Uri};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tower_service::Service;

use crate::body::BoxError;

/// Keeps a persistent accept error (e.g. out of file descriptors) from spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A service listening on a loopback port, from [`serve`] (or `serve_tls`
/// with the `tls` feature).
///
/// Dropping it (or calling [`shutdown`](LoopbackServer::shutdown)) stops the
/// accept loop and closes every open connection, including those whose
/// request is still waiting for an answer.
#[derive(Debug)]
#[must_use = "dropping the server stops it"]
pub struct LoopbackServer {
    addr: SocketAddr,
    accept_loop: AbortHandle,
    ca_certificate_pem: Option<String>,
}

/// Binds `127.0.0.1` on a free port and serves `service` there over HTTP/1,
/// each connection on its own task. Must be awaited on a Tokio runtime.
///
/// Every request goes to a clone of `service` once `poll_ready` says it is
/// ready, so a `tower::Service` stack or an `axum::Router` can be served
/// as is. A service error closes that connection.
///
/// # Errors
///
/// When the loopback socket cannot be bound.
///
/// # Example
///
/// ```rust
/// use std::convert::Infallible;
///
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Empty, Full};
/// use hyper::body::Incoming;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let hello = tower::service_fn(|request: Request<Incoming>| async move {
///     let greeting = format!("hello from {}", request.uri().path());
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(greeting))))
/// });
/// let server = ocient_mock::serve(hello).await?;
///
/// let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
/// let answer = client.get(format!("{}greet", server.uri()).parse()?).await?;
/// let body = answer.into_body().collect().await?.to_bytes();
/// assert_eq!(body, "hello from /greet");
///
/// server.shutdown();
/// # Ok(())
/// # }
/// ```
pub async fn serve<S, B>(service: S) -> io::Result<LoopbackServer>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_on(bind_loopback().await?, service)
}

/// [`serve`] on a listener bound already: for a server that names its own
/// address in what it serves, as an identity provider does in its tokens.
/// Must be called on a Tokio runtime.
pub(crate) fn serve_on<S, B>(listener: TcpListener, service: S) -> io::Result<LoopbackServer>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_over(
        listener,
        service,
        |stream| std::future::ready(Ok(stream)),
        None,
    )
}

/// `127.0.0.1` on a free port.
pub(crate) async fn bind_loopback() -> io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
}

/// [`serve_on`] with each accepted stream first passed through `handshake`
/// (the identity for plain HTTP, a TLS handshake for HTTPS) on its
/// connection's task. A failed handshake ends only that connection.
/// `ca_certificate_pem` is the CA a TLS server's certificate chains to,
/// `None` for plain HTTP.
pub(crate) fn serve_over<S, B, H, F, Io>(
    listener: TcpListener,
    service: S,
    handshake: H,
    ca_certificate_pem: Option<String>,
) -> io::Result<LoopbackServer>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    H: Fn(TcpStream) -> F + Send + 'static,
    F: Future<Output = io::Result<Io>> + Send + 'static,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let addr = listener.local_addr()?;
    let service = TowerToHyperService::new(service);
    let serve_connection = move |stream: TcpStream| {
        let handshake = handshake(stream);
        let service = service.clone();
        async move {
            let io = match handshake.await {
                Ok(io) => io,
                Err(error) => {
                    tracing::debug!(%error, "loopback handshake failed");
                    return;
                }
            };
            let connection = http1::Builder::new().serve_connection(TokioIo::new(io), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "loopback connection ended with an error");
            }
        }
    };
    let accept_loop = tokio::spawn(accept_loop(listener, serve_connection)).abort_handle();
    let server = LoopbackServer {
        addr,
        accept_loop,
        ca_certificate_pem,
    };
    tracing::debug!(uri = %server.uri(), "serving on loopback");
    Ok(server)
}

impl LoopbackServer {
    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URI, `http://127.0.0.1:PORT/`, or `https://127.0.0.1:PORT/`
    /// when it serves TLS.
    pub fn uri(&self) -> Uri {
        let scheme = if self.ca_certificate_pem.is_some() {
            "https"
        } else {
            "http"
        };
        Uri::builder()
            .scheme(scheme)
            .authority(self.addr.to_string())
            .path_and_query("/")
            .build()
            // Cannot fail for a socket address; the default keeps this panic-free.
            .unwrap_or_default()
    }

    /// The PEM of the CA that signed the certificate it serves, for a
    /// client's root store; `None` for plain HTTP. See [`serve_tls`](crate::serve_tls).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.ca_certificate_pem.as_deref()
    }

    /// Stops accepting and closes open connections; dropping does the same.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Owns every connection task, so aborting it closes them all, hung ones included.
async fn accept_loop<F, C>(listener: TcpListener, serve_connection: F)
where
    F: Fn(TcpStream) -> C,
    C: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream));
                }
                Err(error) => {
                    tracing::warn!(%error, "loopback server failed to accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::body::Incoming;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use tokio::sync::Notify;

    use super::{serve, LoopbackServer};
    use crate::test_support::refuses_connections;

    /// Answers with the request's path; `/hang` never answers, and says it
    /// arrived through `arrived`.
    async fn echo_path(arrived: Arc<Notify>) -> LoopbackServer {
        let handler = tower::service_fn(move |request: Request<Incoming>| {
            let arrived = Arc::clone(&arrived);
            async move {
                let path = request.uri().path().to_owned();
                if path == "/hang" {
                    arrived.notify_one();
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(path))))
            }
        });
        serve(handler).await.expect("bind loopback")
    }

    fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    #[tokio::test]
    async fn serves_any_tower_service_over_http1() {
        let server = echo_path(Arc::default()).await;
        let uri = server.uri();
        assert_eq!(uri.host(), Some("127.0.0.1"));
        assert_eq!(uri.port_u16(), Some(server.addr().port()));

        let target = format!("{uri}some/path").parse().expect("uri");
        let answer = client().get(target).await.expect("an answer");
        assert_eq!(answer.status(), StatusCode::OK);
        let body = answer.into_body().collect().await.expect("body");
        assert_eq!(body.to_bytes(), "/some/path");
    }

    #[tokio::test]
    async fn shutdown_refuses_new_connections() {
        let server = echo_path(Arc::default()).await;
        let addr = server.addr();
        server.shutdown();
        assert!(
            refuses_connections(addr).await,
            "still accepting after shutdown"
        );
    }

    #[tokio::test]
    async fn shutdown_closes_connections_still_waiting_for_an_answer() {
        let arrived = Arc::new(Notify::new());
        let server = echo_path(Arc::clone(&arrived)).await;
        let target = format!("{}hang", server.uri()).parse().expect("uri");
        let waiting = tokio::spawn(client().get(target));
        arrived.notified().await;

        server.shutdown();
        let outcome = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the connection was closed")
            .expect("client task");
        assert!(outcome.is_err(), "a hung request answered");
    }
}
