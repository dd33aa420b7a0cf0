//! [`MockServer`]: a [`MockOcient`] served over loopback HTTP.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use crate::MockOcient;

/// Keeps a persistent accept error (e.g. out of file descriptors) from spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A [`MockOcient`] listening on a loopback port, from [`MockOcient::serve`].
///
/// Dropping it (or calling [`shutdown`](MockServer::shutdown)) stops the
/// accept loop and closes every open connection.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    mock: MockOcient,
    accept_loop: AbortHandle,
}

impl MockOcient {
    /// Binds `127.0.0.1` on a free port and serves HTTP/1 there, each
    /// connection on its own task. Must be awaited on a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the loopback socket cannot be bound.
    pub async fn serve(self) -> io::Result<MockServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let accept_loop = tokio::spawn(accept_loop(listener, self.clone())).abort_handle();
        tracing::debug!(%addr, "Ocient mock listening");
        Ok(MockServer {
            addr,
            mock: self,
            accept_loop,
        })
    }
}

impl MockServer {
    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URI, `http://127.0.0.1:PORT/`.
    pub fn uri(&self) -> Uri {
        Uri::builder()
            .scheme("http")
            .authority(self.addr.to_string())
            .path_and_query("/")
            .build()
            // Cannot fail for a socket address; the default keeps this panic-free.
            .unwrap_or_default()
    }

    /// The mock it serves, to read counters or turn knobs while it runs.
    pub fn mock(&self) -> &MockOcient {
        &self.mock
    }

    /// Stops accepting and closes open connections; dropping does the same.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Owns every connection task, so aborting it closes them all, hung ones included.
async fn accept_loop(listener: TcpListener, mock: MockOcient) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, mock.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "Ocient mock failed to accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, mock: MockOcient) {
    let service = hyper::service::service_fn(move |request| {
        let mock = mock.clone();
        async move { Ok::<_, Infallible>(mock.respond(request).await) }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "Ocient mock connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::{BodyExt, Full};

    use crate::test_support::*;
    use crate::{Fault, MockOcient};

    #[tokio::test]
    async fn loopback_http_shares_the_in_process_handler() {
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;

        let server = MockOcient::new().serve().await.expect("bind loopback");
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let base = server.uri();
        assert_eq!(base.host(), Some("127.0.0.1"));
        assert_eq!(base.port_u16(), Some(server.addr().port()));
        let absolute = |path: &str| format!("http://{}{path}", server.addr());

        let mut login = login_request("jdoe", "secret");
        *login.uri_mut() = absolute("/v1/login").parse().expect("uri");
        let response = client.request(login).await.expect("login over HTTP");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let token = token_of(&serde_json::from_slice(&bytes).expect("JSON"));

        let mut query = execute_request(Some(&token));
        *query.uri_mut() = absolute("/v1/execute/system").parse().expect("uri");
        assert_eq!(
            client.request(query).await.expect("execute").status(),
            StatusCode::OK
        );
        // The in-process handler sees the token issued over HTTP.
        assert_eq!(execute(server.mock(), &token).await.1, 0);

        server.mock().fail_token_requests(Fault::CutOff, 1);
        let mut cut = login_request("jdoe", "secret");
        *cut.uri_mut() = absolute("/v1/login").parse().expect("uri");
        // The head must arrive: a client has to cope with a body that breaks.
        let response = client.request(cut).await.expect("cut-off head arrives");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await;
        assert!(body.is_err(), "a cut-off body arrived whole");

        server.mock().fail_token_requests(Fault::Hang, 1);
        let mut hung = login_request("jdoe", "secret");
        *hung.uri_mut() = absolute("/v1/login").parse().expect("uri");
        let waited = tokio::time::timeout(Duration::from_millis(200), client.request(hung)).await;
        assert!(waited.is_err(), "a hung request answered");

        let counters = server.mock().counters();
        assert_eq!(
            (
                counters.logins,
                counters.failed_token_requests,
                counters.queries_ok
            ),
            (3, 2, 2)
        );

        let addr = server.addr();
        server.shutdown();
        assert!(
            refuses_connections(addr).await,
            "still accepting after shutdown"
        );
    }
}
