//! The proxy's helpers and its forwarding, down, cut and stop tests; the
//! black hole, latency, HTTP and TLS ones are in [`faults`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::FaultProxy;

mod faults;

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
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut chunk = [0; 4096];
                while let Ok(n @ 1..) = stream.read(&mut chunk).await {
                    if stream.write_all(&chunk[..n]).await.is_err() {
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
async fn read_n(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let n = timeout(PATIENCE, stream.read(&mut bytes[filled..]))
            .await
            .expect("the bytes arrived in time")
            .expect("read");
        assert_ne!(n, 0, "the stream ended after {filled} bytes");
        filled += n;
    }
    bytes
}

async fn assert_echoes(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).await.expect("write");
    assert_eq!(read_n(stream, message.len()).await, message);
}

/// A connection through `addr` whose first echo came back.
async fn echoing(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    assert_echoes(&mut stream, b"hello").await;
    stream
}

/// Whether the stream ends (an EOF or an error) rather than yields a byte.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0; 1];
    let outcome = timeout(PATIENCE, stream.read(&mut byte)).await;
    matches!(outcome.expect("closed in time"), Ok(0) | Err(_))
}

/// Whether neither a byte nor a close arrives within [`SILENCE`].
async fn silent(stream: &mut TcpStream) -> bool {
    let mut byte = [0; 1];
    timeout(SILENCE, stream.read(&mut byte)).await.is_err()
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

/// A connection the proxy has accepted, waiting in a black hole.
async fn echoing_later(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"later").await.expect("write");
    assert!(silent(&mut stream).await, "answered in a black hole");
    stream
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
    let (mut from, mut to) = first.split();
    let sent = async {
        to.write_all(&big).await.expect("write");
        // A half-close crosses too: the server closes back after it.
        to.shutdown().await.expect("half-close");
    };
    let received = timeout(PATIENCE, async {
        let (mut back, mut chunk) = (Vec::new(), [0; 4096]);
        while let n @ 1.. = from.read(&mut chunk).await.expect("read") {
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
    let mut open = echoing(addr).await;

    proxy.set_down(true).await.expect("down");
    assert!(
        refused(TcpStream::connect(addr).await),
        "connected while down"
    );
    assert!(
        closed(&mut open).await,
        "a connection survived set_down(true)"
    );
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
    let mut first = echoing(proxy.addr()).await;
    let mut second = echoing(proxy.addr()).await;

    proxy.cut_connections();
    assert!(
        closed(&mut first).await,
        "the first connection survived a cut"
    );
    assert!(
        closed(&mut second).await,
        "the second connection survived a cut"
    );
    let _after = echoing(proxy.addr()).await;
    assert_eq!(proxy.connections(), 3);
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
        let mut open = echoing(addr).await;
        proxy.black_hole(true);
        let mut held = echoing_later(addr).await;
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
        assert!(closed(&mut open).await, "an open connection survived");
        assert!(closed(&mut held).await, "a held connection survived");
        assert!(refused(TcpStream::connect(addr).await), "still accepting");
        drop(kept);
    }
}
