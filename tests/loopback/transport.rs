//! Every loopback scenario runs twice: with the mock served over plain HTTP, and over HTTPS
//! with a CA made at start.

use ocient_mock::{MockOcient, MockServer};

/// How the mock is served, and so how the client reaches it.
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Http,
    Https,
}

/// `mock` served over `transport`, on a URI of that scheme.
pub async fn serve(mock: MockOcient, transport: Transport) -> MockServer {
    let server = match transport {
        Transport::Http => mock.serve().await,
        Transport::Https => mock.serve_tls().await,
    };
    let server = server.unwrap();
    let scheme = server.uri().scheme_str().map(str::to_owned);
    let expected = match transport {
        Transport::Http => "http",
        Transport::Https => "https",
    };
    assert_eq!(scheme.as_deref(), Some(expected));
    server
}

/// A test of each scenario (an `async fn(Transport)` of the calling module) over HTTP, in
/// `mod over_http`, and over HTTPS, in `mod over_https`.
macro_rules! over_http_and_https {
    ($($scenario:ident),* $(,)?) => {
        mod over_http {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::transport::Transport::Http).await
                }
            )*
        }
        mod over_https {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::transport::Transport::Https).await
                }
            )*
        }
    };
}
