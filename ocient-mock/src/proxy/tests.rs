use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{self, Client};
use hyper_util::rt::TokioExecutor;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::{read, shutdown, write_all, FaultProxy};
use crate::test_support::{json_of, login_request};
use crate::MockOcient;

/// Only turns a hang into a failure: no assertion needs it to be short.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a black-holed connection is watched for a byte or a close.
const SILENCE: Duration = Duration::from_millis(300);

/// A loopback server that sends back what it reads, then closes after the
/// client does.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut chunk = [0; 4096];
                while let Ok(n @ 1..) = read(&stream, &mut chunk).await {
                    if write_all(&stream, &chunk[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn echo_proxy() -> FaultProxy {
    FaultProxy::start(echo_server().await)
        .await
        .expect("start the proxy")
}

/// Reads exactly `len` bytes.
async fn read_n(stream: &TcpStream, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let n = timeout(PATIENCE, read(stream, &mut bytes[filled..]))
            .await
            .expect("the bytes arrived in time")
            .expect("read");
        assert_ne!(n, 0, "the stream ended after {filled} bytes");
        filled += n;
    }
    bytes
}

async fn assert_echoes(stream: &TcpStream, message: &[u8]) {
    write_all(stream, message).await.expect("write");
    assert_eq!(read_n(stream, message.len()).await, message);
}

/// A connection through `addr` whose first echo came back.
async fn echoing(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    assert_echoes(&stream, b"hello").await;
    stream
}

/// Whether the stream ends (an EOF or an error) rather than yields a byte.
async fn closed(stream: &TcpStream) -> bool {
    let mut byte = [0; 1];
    let outcome = timeout(PATIENCE, read(stream, &mut byte)).await;
    matches!(outcome.expect("closed in time"), Ok(0) | Err(_))
}

/// Whether neither a byte nor a close arrives within [`SILENCE`].
async fn silent(stream: &TcpStream) -> bool {
    let mut byte = [0; 1];
    timeout(SILENCE, read(stream, &mut byte)).await.is_err()
}

fn refused(outcome: io::Result<TcpStream>) -> bool {
    matches!(outcome, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused)
}

/// Whether the runtime's live tasks come back down to `baseline`; tasks
/// aborted elsewhere end when the scheduler next gets to them.
async fn tasks_settle_to(baseline: usize) -> bool {
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..500 {
        if metrics.num_alive_tasks() == baseline {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

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
async fn forwards_both_ways_and_counts_connections() {
    let target = echo_server().await;
    let proxy = FaultProxy::start(target).await.expect("start the proxy");
    assert!(proxy.addr().ip().is_loopback());
    assert_ne!(proxy.addr(), target);
    assert_eq!(proxy.connections(), 0);

    let mut first = echoing(proxy.addr()).await;
    let second = echoing(proxy.addr()).await;
    // A megabyte: many chunks each way, sent while the echo comes back.
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| i.to_le_bytes()[0]).collect();
    let (from, mut to) = first.split();
    let sent = async {
        write_all(to.as_ref(), &big).await.expect("write");
        // A half-close crosses too: the server closes back after it.
        shutdown(&mut to).await.expect("half-close");
    };
    let received = timeout(PATIENCE, async {
        let (mut back, mut chunk) = (Vec::new(), [0; 4096]);
        while let n @ 1.. = read(from.as_ref(), &mut chunk).await.expect("read") {
            back.extend_from_slice(&chunk[..n]);
        }
        back
    });
    let ((), back) = tokio::join!(sent, received);
    let back = back.expect("the echo ended in time");
    assert!(
        back == big,
        "{} bytes came back, not the ones sent",
        back.len()
    );

    drop(second);
    assert_eq!(proxy.connections(), 2);
}

#[tokio::test]
async fn down_refuses_connections_and_up_listens_again_on_the_same_port() {
    let proxy = echo_proxy().await;
    let addr = proxy.addr();
    let open = echoing(addr).await;

    proxy.set_down(true).await.expect("down");
    assert!(
        refused(TcpStream::connect(addr).await),
        "connected while down"
    );
    assert!(closed(&open).await, "a connection survived set_down(true)");
    // The proxy closed first, so its side lingers in TIME_WAIT on the port.
    drop(open);
    proxy.set_down(true).await.expect("down twice");
    assert!(
        refused(TcpStream::connect(addr).await),
        "connected while down"
    );

    proxy
        .set_down(false)
        .await
        .expect("up again on the same port");
    proxy.set_down(false).await.expect("up twice");
    assert_eq!(proxy.addr(), addr);
    let _again = echoing(addr).await;
    assert_eq!(proxy.connections(), 2);
}

#[tokio::test]
async fn cut_connections_closes_the_open_ones_and_keeps_accepting() {
    let proxy = echo_proxy().await;
    let first = echoing(proxy.addr()).await;
    let second = echoing(proxy.addr()).await;

    proxy.cut_connections();
    assert!(closed(&first).await, "the first connection survived a cut");
    assert!(
        closed(&second).await,
        "the second connection survived a cut"
    );
    let _after = echoing(proxy.addr()).await;
    assert_eq!(proxy.connections(), 3);
}

#[tokio::test]
async fn a_black_hole_holds_every_connection_until_lifted() {
    let proxy = echo_proxy().await;
    let open = echoing(proxy.addr()).await;
    let mut closing = echoing(proxy.addr()).await;

    proxy.black_hole(true);
    write_all(&open, b"held").await.expect("write");
    // Without the black hole, the server would close back.
    shutdown(&mut closing).await.expect("half-close");
    let new = TcpStream::connect(proxy.addr()).await.expect("accepted");
    write_all(&new, b"new").await.expect("write");
    let quiet = tokio::join!(silent(&open), silent(&closing), silent(&new));
    assert_eq!(
        quiet,
        (true, true, true),
        "(open, closing, new) got through"
    );

    proxy.black_hole(false);
    assert_eq!(read_n(&open, 4).await, b"held");
    assert!(closed(&closing).await, "the held close never came");
    assert_eq!(read_n(&new, 3).await, b"new");
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
    let open = echoing(proxy.addr()).await;

    proxy.latency(LATENCY);
    let started = Instant::now();
    assert_echoes(&open, b"slow").await;
    let took = started.elapsed();
    assert!(
        took >= 2 * LATENCY,
        "an echo took {took:?}, latency {LATENCY:?}"
    );

    proxy.latency(Duration::ZERO);
    assert_echoes(&open, b"fast again").await;
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
            let stream = TcpStream::connect(proxy.addr()).await.expect("connect");
            write_all(&stream, b"an hour").await.expect("write");
            let mut back = [0; 7];
            let mut filled = 0;
            while filled < back.len() {
                filled += read(&stream, &mut back[filled..]).await.expect("read");
            }
            assert_eq!(&back, b"an hour");
            started.elapsed()
        }));
    });
    let took = finished.recv_timeout(PATIENCE).expect("echoed in time");
    assert!(took >= 2 * LATENCY, "took {took:?} on the tokio clock");
}

#[tokio::test]
async fn a_black_hole_hides_an_unreachable_target_until_lifted() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let proxy = FaultProxy::start(dead).await.expect("start");
    proxy.black_hole(true);
    let held = TcpStream::connect(proxy.addr()).await.expect("accepted");
    assert!(silent(&held).await, "closed in a black hole");
    proxy.black_hole(false);
    assert!(closed(&held).await, "open with no target to reach");
}

#[tokio::test]
async fn down_shutdown_and_drop_leave_no_task_and_no_connection() {
    enum Stop {
        Down,
        Shutdown,
        Drop,
    }
    let target = echo_server().await;
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    for stop in [Stop::Down, Stop::Shutdown, Stop::Drop] {
        let proxy = FaultProxy::start(target).await.expect("start");
        let addr = proxy.addr();
        let open = echoing(addr).await;
        proxy.black_hole(true);
        let held = echoing_later(addr).await;
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert!(alive > baseline, "no task for the proxy");

        let kept = match stop {
            Stop::Down => {
                proxy.set_down(true).await.expect("down");
                Some(proxy)
            }
            Stop::Shutdown => {
                proxy.shutdown();
                None
            }
            Stop::Drop => {
                drop(proxy);
                None
            }
        };
        assert!(tasks_settle_to(baseline).await, "tasks left running");
        assert!(closed(&open).await, "an open connection survived");
        assert!(closed(&held).await, "a held connection survived");
        assert!(refused(TcpStream::connect(addr).await), "still accepting");
        drop(kept);
    }
}

/// A connection the proxy has accepted, waiting in a black hole.
async fn echoing_later(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    write_all(&stream, b"later").await.expect("write");
    assert!(silent(&stream).await, "answered in a black hole");
    stream
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
