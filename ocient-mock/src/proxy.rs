//! [`FaultProxy`]: a TCP proxy on a loopback port, with knobs to take a
//! server down, cut its connections, black-hole it or slow it while traffic
//! flows.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch, Mutex};
use tokio::task::{JoinHandle, JoinSet};

/// Keeps a persistent accept error (e.g. out of file descriptors) from spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The most one read takes from one side before it is forwarded to the other.
const CHUNK: usize = 16 * 1024;

/// Connections the OS completes before the accept loop takes them.
const BACKLOG: u32 = 1024;

/// A TCP proxy on a loopback port in front of `target`, with knobs that
/// simulate outages while traffic flows: [`set_down`](FaultProxy::set_down),
/// [`cut_connections`](FaultProxy::cut_connections),
/// [`black_hole`](FaultProxy::black_hole) and [`latency`](FaultProxy::latency).
///
/// Bytes are copied both ways untouched, so it fronts any TCP server: plain
/// HTTP, or HTTPS with TLS end to end between the client and the server (a
/// certificate that names `127.0.0.1`, like `MockOcient::serve_tls`'s,
/// verifies at `https://127.0.0.1:{proxy port}`). Each accepted connection
/// gets a connection of its own to `target`, on its own task; when `target`
/// cannot be reached, the client's connection is closed. A failed read or
/// write ends its connection, on both sides, and nothing else.
///
/// The knobs take `&self` and hold until turned back: a black hole or a
/// latency set while the proxy is down applies once it is up again.
///
/// Dropping it (or calling [`shutdown`](FaultProxy::shutdown)) closes the
/// port and every connection, and leaves no task running.
///
/// # Example
///
/// ```rust
/// use std::time::Duration;
///
/// use ocient_mock::{FaultProxy, MockOcient};
/// use tokio::net::TcpStream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = MockOcient::new().serve().await?;
/// let proxy = FaultProxy::start(server.addr()).await?;
/// // The client under test talks to the proxy, not to the server.
/// println!("point the client at http://{}/", proxy.addr());
///
/// proxy.set_down(true).await?; // the OS refuses connections...
/// assert!(TcpStream::connect(proxy.addr()).await.is_err());
/// proxy.set_down(false).await?; // ...until it listens again, on the same port
/// assert!(TcpStream::connect(proxy.addr()).await.is_ok());
///
/// proxy.latency(Duration::from_millis(50)); // each chunk, each way
/// proxy.black_hole(true); // nothing gets through, nothing is closed
/// proxy.black_hole(false);
/// proxy.cut_connections(); // closes what is open, accepts what comes
/// proxy.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "dropping the proxy stops it"]
pub struct FaultProxy {
    addr: SocketAddr,
    knobs: Arc<Knobs>,
    /// The accept loop while up, `None` while down. The async lock keeps two
    /// `set_down` calls from racing to bind or to stop.
    listening: Mutex<Option<Listening>>,
}

/// What the accept loop and every connection read; the knobs write it.
#[derive(Debug)]
struct Knobs {
    target: SocketAddr,
    latency: watch::Sender<Duration>,
    black_hole: watch::Sender<bool>,
    /// Bumped by each `cut_connections`: the accept loop aborts its
    /// connections when it changes.
    cuts: watch::Sender<u64>,
    accepted: AtomicU64,
}

/// A running accept loop. It owns the listening socket and every
/// connection task, so ending it closes them all.
#[derive(Debug)]
struct Listening {
    accept_loop: JoinHandle<()>,
    /// Sent or dropped, it tells the loop to close the port and its
    /// connections, then return.
    stop: oneshot::Sender<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 on a free port and forwards every connection to
    /// `target`. Must be awaited on a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the loopback socket cannot be bound.
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let addr = listener.local_addr()?;
        let knobs = Arc::new(Knobs {
            target,
            latency: watch::Sender::new(Duration::ZERO),
            black_hole: watch::Sender::new(false),
            cuts: watch::Sender::new(0),
            accepted: AtomicU64::new(0),
        });
        let listening = Listening::spawn(listener, Arc::clone(&knobs));
        tracing::debug!(%addr, %target, "fault proxy listening");
        Ok(FaultProxy {
            addr,
            knobs,
            listening: Mutex::new(Some(listening)),
        })
    }

    /// The address clients connect to, `127.0.0.1:PORT`; the same while down
    /// and after.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Down (`true`): closes the listening socket, so the OS refuses new
    /// connections (a real `ECONNREFUSED`, not an accept then a close), and
    /// closes every open connection. Up (`false`): listens again on the same
    /// port. Idempotent; returns once the port is closed, and the open
    /// connections with it, or listening again.
    ///
    /// # Errors
    ///
    /// Going up, when the port cannot be bound again (another socket took it
    /// while the proxy was down); the proxy stays down.
    ///
    /// Dropped before it returns, a `set_down(true)` still takes the proxy
    /// down, and a `set_down(false)` either did or did not bring it up.
    pub async fn set_down(&self, down: bool) -> io::Result<()> {
        let mut listening = self.listening.lock().await;
        if down {
            if let Some(running) = listening.take() {
                running.stop().await;
                tracing::debug!(addr = %self.addr, "fault proxy down");
            }
        } else if listening.is_none() {
            let listener = bind(self.addr)?;
            *listening = Some(Listening::spawn(listener, Arc::clone(&self.knobs)));
            tracing::debug!(addr = %self.addr, "fault proxy up again");
        }
        Ok(())
    }

    /// Closes every connection open now, both its sides, the way a network
    /// failure would: the client sees an EOF or a reset. New connections are
    /// still accepted. The connections close shortly after the call returns.
    pub fn cut_connections(&self) {
        self.knobs
            .cuts
            .send_modify(|cuts| *cuts = cuts.wrapping_add(1));
    }

    /// On: nothing more is forwarded, in either direction, on the
    /// connections open now and on those accepted while it lasts, and none
    /// of them is closed, not even when one side closes: the client waits
    /// until its own timeout. Connections accepted meanwhile reach `target`
    /// only once it is lifted.
    ///
    /// Off: nothing is closed either; every connection picks up where it
    /// stopped, as TCP would after a short outage: what was held is
    /// forwarded, a close included, and the connections accepted meanwhile
    /// connect to `target` and proceed. Idempotent.
    pub fn black_hole(&self, on: bool) {
        self.knobs.black_hole.send_replace(on);
    }

    /// Delays every chunk forwarded, in both directions, by `latency`
    /// ([`Duration::ZERO`] for none), on [`tokio::time`], so a paused clock
    /// drives it. Applies to open connections from their next chunk.
    ///
    /// Each read is one chunk, delayed before it is written on, so an
    /// exchange takes at least twice `latency`, and a long answer read in
    /// several chunks more.
    pub fn latency(&self, latency: Duration) {
        self.knobs.latency.send_replace(latency);
    }

    /// Connections accepted so far, across downs and cuts: a test sees a
    /// client reconnect when it grows.
    pub fn connections(&self) -> u64 {
        self.knobs.accepted.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection; dropping does the same.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(running) = self.listening.get_mut().take() {
            // Aborting drops the loop's future: the listener and the
            // `JoinSet`, which aborts every connection task.
            running.accept_loop.abort();
        }
    }
}

impl Listening {
    fn spawn(listener: TcpListener, knobs: Arc<Knobs>) -> Listening {
        let (stop, stopped) = oneshot::channel();
        let accept_loop = tokio::spawn(accept_loop(listener, knobs, stopped));
        Listening { accept_loop, stop }
    }

    /// Returns once the port and every connection are closed.
    async fn stop(self) {
        drop(self.stop);
        // A `JoinError` says the loop is gone, which is what was asked.
        let _ = self.accept_loop.await;
    }
}

/// A listening socket on `addr` that can take back the port a previous one
/// just closed: that socket's connections linger on the port in TIME_WAIT,
/// and binding without `SO_REUSEADDR` would fail until they expire.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // On Windows `SO_REUSEADDR` lets a second socket bind a port in use:
    // std and tokio set it on Unix only, for the same reason.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Owns the listener and every connection task until `stop` fires; then
/// closes the port first and waits for its connections to be gone.
async fn accept_loop(listener: TcpListener, knobs: Arc<Knobs>, mut stop: oneshot::Receiver<()>) {
    let mut cuts = knobs.cuts.subscribe();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Ok(()) = cuts.changed() => connections.abort_all(),
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    knobs.accepted.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(forward(client, Arc::clone(&knobs)));
                }
                Err(error) => {
                    tracing::warn!(%error, "fault proxy failed to accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// One connection: once no black hole holds it, connects to the target and
/// copies both ways until both sides have closed or either fails.
async fn forward(mut client: TcpStream, knobs: Arc<Knobs>) {
    // Connecting in a black hole could close the client's connection (the
    // target may be down), which a black hole never does.
    knobs.lifted().await;
    let mut server = match TcpStream::connect(knobs.target).await {
        Ok(server) => server,
        Err(error) => {
            tracing::debug!(%error, target = %knobs.target, "fault proxy cannot reach its target");
            return;
        }
    };
    // The proxy adds no delay of its own to small writes; `latency` does.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let copied = tokio::try_join!(
        pipe(client_read, server_write, &knobs),
        pipe(server_read, client_write, &knobs),
    );
    if let Err(error) = copied {
        tracing::debug!(%error, "fault proxy connection ended with an error");
    }
}

/// Copies `from` to `to` one chunk at a time. The end of `from`, a close or
/// an error, passes the latency and the black hole like a chunk, so a black
/// hole hides a close too.
async fn pipe(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>, knobs: &Knobs) -> io::Result<()> {
    let mut chunk = vec![0; CHUNK];
    loop {
        let outcome = from.read(&mut chunk).await;
        knobs.delay().await;
        knobs.lifted().await;
        match outcome? {
            // Closes the writing side only: the peer reads an EOF.
            0 => return to.shutdown().await,
            n => to.write_all(&chunk[..n]).await?,
        }
    }
}

impl Knobs {
    /// Waits the latency set now, on the Tokio clock.
    async fn delay(&self) {
        let latency = *self.latency.borrow();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// Waits until no black hole is on; at once when none is.
    async fn lifted(&self) {
        // The sender lives in `self`, so this cannot fail.
        let _ = self.black_hole.subscribe().wait_for(|on| !*on).await;
    }
}

#[cfg(test)]
mod tests;
