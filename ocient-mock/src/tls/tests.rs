use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tower_service::Service;

use super::{ring, serve_tls};
use crate::loopback::{serve, LoopbackServer};
use crate::mock::MockOcient;
use crate::test_support::{execute_request, json_of, login_request, token_of};

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

fn roots_trusting(ca_certificate_pem: Option<&str>) -> RootCertStore {
    let pem = ca_certificate_pem.expect("a TLS server has a CA");
    let ca = CertificateDer::from_pem_slice(pem.as_bytes()).expect("CA PEM");
    let mut roots = RootCertStore::empty();
    roots.add(ca).expect("CA certificate");
    roots
}

fn client_config(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn https_client(roots: RootCertStore) -> HttpsClient {
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(client_config(roots))
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// Logs in at `uri` and returns the answer's status and token.
async fn login_over(client: &HttpsClient, uri: &str) -> Result<(StatusCode, String), String> {
    let mut login = login_request("jdoe", "secret");
    *login.uri_mut() = format!("{uri}v1/login").parse().expect("uri");
    let response = client.request(login).await.map_err(|e| format!("{e:?}"))?;
    let (status, answer) = json_of(response).await;
    Ok((status, token_of(&answer)))
}

fn hello() -> impl Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    })
}

async fn hello_tls() -> LoopbackServer {
    serve_tls(hello()).await.expect("bind loopback")
}

#[tokio::test]
async fn mock_logs_in_over_https_with_its_ca_trusted() {
    let server = MockOcient::new().serve_tls().await.expect("bind loopback");
    let uri = server.uri();
    assert_eq!(uri.scheme_str(), Some("https"));
    assert_eq!(uri.host(), Some("127.0.0.1"));
    assert_eq!(uri.port_u16(), Some(server.addr().port()));
    let pem = server.ca_certificate_pem().expect("a CA");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    let client = https_client(roots_trusting(server.ca_certificate_pem()));
    let (status, token) = login_over(&client, &uri.to_string())
        .await
        .expect("login over HTTPS");
    assert_eq!(status, StatusCode::OK);

    let mut query = execute_request(Some(&token));
    *query.uri_mut() = format!("{uri}v1/execute/system").parse().expect("uri");
    let answer = client.request(query).await.expect("execute over HTTPS");
    assert_eq!(answer.status(), StatusCode::OK);
    let counters = server.mock().counters();
    assert_eq!((counters.logins, counters.queries_ok), (1, 1));
}

#[tokio::test]
async fn a_client_without_the_ca_is_refused_and_the_server_serves_on() {
    let server = MockOcient::new().serve_tls().await.expect("bind loopback");
    let uri = server.uri().to_string();
    // Another server's CA is a different CA: each start generates its own.
    let other = hello_tls().await;

    for roots in [
        RootCertStore::empty(),
        roots_trusting(other.ca_certificate_pem()),
    ] {
        let refused = login_over(&https_client(roots), &uri).await;
        let error = refused.expect_err("logged in without trusting the CA");
        assert!(error.contains("InvalidCertificate"), "{error}");
    }
    // Plain HTTP to the TLS port fails the handshake on the server's side.
    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let target = format!("http://{}/v1/login", server.addr())
        .parse()
        .expect("uri");
    assert!(plain.get(target).await.is_err(), "plain HTTP answered");

    let trusting = https_client(roots_trusting(server.ca_certificate_pem()));
    let (status, _) = login_over(&trusting, &uri)
        .await
        .expect("login after refusals");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.mock().counters().logins, 1);
}

#[tokio::test]
async fn the_certificate_names_localhost_and_both_loopback_ips() {
    let server = hello_tls().await;
    let connector = TlsConnector::from(Arc::new({
        let mut config = client_config(roots_trusting(server.ca_certificate_pem()));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }));
    let handshake = |name: &'static str| {
        let connector = connector.clone();
        let addr = server.addr();
        async move {
            let name = ServerName::try_from(name).expect("server name");
            let stream = TcpStream::connect(addr).await.expect("connect");
            connector.connect(name, stream).await
        }
    };

    for name in ["localhost", "127.0.0.1", "::1"] {
        let tls = handshake(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let alpn = tls.get_ref().1.alpn_protocol();
        assert_eq!(alpn, Some(&b"http/1.1"[..]), "{name}");
    }
    let error = handshake("example.com").await.expect_err("a foreign name");
    assert!(
        format!("{error:?}").contains("NotValidForName"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_plain_server_has_no_ca_and_an_http_uri() {
    let server = serve(hello()).await.expect("bind loopback");
    assert_eq!(server.ca_certificate_pem(), None);
    assert_eq!(server.uri().scheme_str(), Some("http"));
    let mock = MockOcient::new().serve().await.expect("bind loopback");
    assert_eq!(mock.ca_certificate_pem(), None);
}
