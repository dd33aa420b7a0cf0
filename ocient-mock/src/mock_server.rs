//! [`MockServer`]: a [`MockOcient`] served over loopback HTTP.

use std::io;
use std::net::SocketAddr;

use http::Uri;

use crate::loopback::{serve, LoopbackServer};
use crate::mock::MockOcient;

/// A [`MockOcient`] listening on a loopback port, from [`MockOcient::serve`]
/// (or `MockOcient::serve_tls` with the `tls` feature).
///
/// Dropping it (or calling [`shutdown`](MockServer::shutdown)) stops the
/// accept loop and closes every open connection.
#[derive(Debug)]
pub struct MockServer {
    server: LoopbackServer,
    mock: MockOcient,
}

impl MockOcient {
    /// Binds `127.0.0.1` on a free port and serves HTTP/1 there, each
    /// connection on its own task. Must be awaited on a Tokio runtime.
    ///
    /// It is [`serve`] with this mock as the service, so answers over HTTP
    /// are the in-process ones.
    ///
    /// # Errors
    ///
    /// When the loopback socket cannot be bound.
    pub async fn serve(self) -> io::Result<MockServer> {
        let server = serve(self.clone()).await?;
        Ok(self.served_by(server))
    }

    /// [`serve`](MockOcient::serve) over TLS: HTTPS with a server certificate
    /// for `localhost`, `127.0.0.1` and `::1`, signed by a CA generated here.
    /// Trust [`MockServer::ca_certificate_pem`] in the client.
    ///
    /// It is [`serve_tls`](crate::serve_tls) with this mock as the service.
    ///
    /// # Errors
    ///
    /// When the loopback socket cannot be bound, or the certificates cannot
    /// be generated.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub async fn serve_tls(self) -> io::Result<MockServer> {
        let server = crate::tls::serve_tls(self.clone()).await?;
        Ok(self.served_by(server))
    }

    fn served_by(self, server: LoopbackServer) -> MockServer {
        tracing::debug!(uri = %server.uri(), "Ocient mock listening");
        MockServer { server, mock: self }
    }
}

impl MockServer {
    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The base URI, `http://127.0.0.1:PORT/`, or `https://127.0.0.1:PORT/`
    /// from `MockOcient::serve_tls` (the `tls` feature).
    pub fn uri(&self) -> Uri {
        self.server.uri()
    }

    /// The PEM of the CA that signed the certificate it serves, for a
    /// client's root store; `None` for plain HTTP.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.server.ca_certificate_pem()
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::{BodyExt, Full};

    use crate::fault::Fault;
    use crate::mock::MockOcient;
    use crate::test_support::*;

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
        let (status, answer) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let token = token_of(&answer);

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
