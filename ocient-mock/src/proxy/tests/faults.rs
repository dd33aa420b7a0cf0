//! Black hole, latency, HTTP and HTTPS through the proxy.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{self, Client};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::{
    assert_echoes, closed, echo_proxy, echoing, read_n, silent, FaultProxy, PATIENCE, SILENCE,
};
use crate::mock::MockOcient;
use crate::test_support::{json_of, login_request};

/// One connection per request, so each shows in `connections()`.
fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

async fn login_at(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
) -> Result<StatusCode, legacy::Error> {
    let mut login = login_request("jdoe", "secret");
    *login.uri_mut() = format!("http://{addr}/v1/login").parse().expect("uri");
    let exchange = async { Ok(json_of(client.request(login).await?).await.0) };
    timeout(PATIENCE, exchange)
        .await
        .expect("an answer or an error in time")
}

#[tokio::test]
async fn a_black_hole_holds_every_connection_until_lifted() {
    let proxy = echo_proxy().await;
    let mut open = echoing(proxy.addr()).await;
    let mut closing = echoing(proxy.addr()).await;

    proxy.black_hole(true);
    open.write_all(b"held").await.expect("write");
    // Without the black hole, the server would close back.
    closing.shutdown().await.expect("half-close");
    let mut new = TcpStream::connect(proxy.addr()).await.expect("accepted");
    new.write_all(b"new").await.expect("write");
    let quiet = tokio::join!(silent(&mut open), silent(&mut closing), silent(&mut new));
    assert_eq!(
        quiet,
        (true, true, true),
        "(open, closing, new) got through"
    );

    proxy.black_hole(false);
    assert_eq!(read_n(&mut open, 4).await, b"held");
    assert!(closed(&mut closing).await, "the held close never came");
    assert_eq!(read_n(&mut new, 3).await, b"new");
    let _after = echoing(proxy.addr()).await;
    assert_eq!(proxy.connections(), 4);
}

#[tokio::test]
async fn a_black_hole_leaves_an_http_request_unanswered_until_lifted() {
    let server = MockOcient::new().serve().await.expect("bind loopback");
    let proxy = FaultProxy::start(server.addr()).await.expect("start");
    let client = http_client();

    proxy.black_hole(true);
    let waited = timeout(SILENCE, login_at(&client, proxy.addr())).await;
    assert!(waited.is_err(), "a black-holed login answered: {waited:?}");
    assert_eq!(server.mock().counters().logins, 0, "the login got through");

    proxy.black_hole(false);
    let answered = login_at(&client, proxy.addr()).await;
    assert_eq!(answered.expect("login"), StatusCode::OK);
    assert_eq!(proxy.connections(), 2);
}

#[tokio::test]
async fn a_black_hole_hides_an_unreachable_target_until_lifted() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let proxy = FaultProxy::start(dead).await.expect("start");
    proxy.black_hole(true);
    let mut held = TcpStream::connect(proxy.addr()).await.expect("accepted");
    assert!(silent(&mut held).await, "closed in a black hole");
    proxy.black_hole(false);
    assert!(closed(&mut held).await, "open with no target to reach");
}

#[tokio::test]
async fn an_http_client_is_refused_while_down_and_logs_in_once_up() {
    let server = MockOcient::new().serve().await.expect("bind loopback");
    let proxy = FaultProxy::start(server.addr()).await.expect("start");
    let client = http_client();
    let login = login_at(&client, proxy.addr()).await.expect("login");
    assert_eq!(login, StatusCode::OK);

    proxy.set_down(true).await.expect("down");
    let error = login_at(&client, proxy.addr()).await.expect_err("answered");
    assert!(error.is_connect(), "{error:?}");

    proxy.set_down(false).await.expect("up");
    let login = login_at(&client, proxy.addr()).await.expect("login");
    assert_eq!(login, StatusCode::OK);
    assert_eq!(server.mock().counters().logins, 2);
    assert_eq!(proxy.connections(), 2);
}

#[tokio::test]
async fn latency_delays_each_chunk_both_ways_on_open_connections_too() {
    const LATENCY: Duration = Duration::from_millis(150);
    let proxy = echo_proxy().await;
    let mut open = echoing(proxy.addr()).await;

    proxy.latency(LATENCY);
    let started = Instant::now();
    assert_echoes(&mut open, b"slow").await;
    let took = started.elapsed();
    assert!(
        took >= 2 * LATENCY,
        "an echo took {took:?}, latency {LATENCY:?}"
    );

    proxy.latency(Duration::ZERO);
    assert_echoes(&mut open, b"fast again").await;
}

/// On a paused clock a `timeout` would fire whenever the runtime waits for
/// a socket, so the patience here is real time, kept outside the runtime.
#[test]
fn latency_runs_on_the_paused_tokio_clock() {
    const LATENCY: Duration = Duration::from_secs(3600);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let _ = done.send(runtime.block_on(async {
            let proxy = echo_proxy().await;
            proxy.latency(LATENCY);
            let started = tokio::time::Instant::now();
            let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
            stream.write_all(b"an hour").await.expect("write");
            let mut back = [0; 7];
            let mut filled = 0;
            while filled < back.len() {
                filled += stream.read(&mut back[filled..]).await.expect("read");
            }
            assert_eq!(&back, b"an hour");
            started.elapsed()
        }));
    });
    let took = finished.recv_timeout(PATIENCE).expect("echoed in time");
    assert!(took >= 2 * LATENCY, "took {took:?} on the tokio clock");
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn https_passes_through_with_tls_end_to_end() {
    use std::sync::Arc;

    use hyper_rustls::HttpsConnectorBuilder;
    use rustls::crypto::ring;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use rustls::{ClientConfig, RootCertStore};

    let server = MockOcient::new().serve_tls().await.expect("bind loopback");
    let proxy = FaultProxy::start(server.addr()).await.expect("start");
    let pem = server.ca_certificate_pem().expect("a CA");
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(pem.as_bytes()).expect("CA PEM");
    roots.add(ca).expect("CA certificate");
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https);

    let port = proxy.addr().port();
    let mut login = login_request("jdoe", "secret");
    *login.uri_mut() = format!("https://127.0.0.1:{port}/v1/login")
        .parse()
        .expect("uri");
    let exchange = async { Ok::<_, legacy::Error>(json_of(client.request(login).await?).await) };
    let (status, answer) = timeout(PATIENCE, exchange)
        .await
        .expect("an answer or an error in time")
        .expect("login through the proxy");
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(server.mock().counters().logins, 1);
    assert_eq!(proxy.connections(), 1);
}
