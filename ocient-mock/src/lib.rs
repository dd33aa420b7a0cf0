//! An Ocient-compatible HTTP Query API server for tests and demos.
//!
//! [`MockOcient`] answers `POST /v1/login`, `POST /v1/token_refresh` and
//! `GET`/`POST /v1/execute/{database}` the way the Ocient HTTP Query API does,
//! with knobs for token lifetimes, latency and injected [`Fault`]s. Use it
//! in-process as a [`tower_service::Service`], or over loopback HTTP with
//! [`MockOcient::serve`]; both run the same handler, so answers and
//! [`Counters`] are identical either way.
//!
//! [`serve`] puts any other tower service on a loopback port the same way,
//! for a test that needs a second server beside the mock (an OAuth
//! authorization server, the app under test).
//!
//! [`FaultProxy`] is a plain TCP proxy on a loopback port to put between a
//! client and a server (the mock, or one of yours): while traffic flows,
//! take the port down (connections refused by the OS), cut the open
//! connections, black-hole them or add latency. It copies bytes untouched,
//! so HTTPS passes through with TLS end to end.
//!
//! With the `tls` feature (off by default), `MockOcient::serve_tls` and
//! `serve_tls` serve HTTPS the same way: at each start a fresh CA, kept in
//! memory, signs a server certificate for `localhost`, `127.0.0.1` and `::1`,
//! and `ca_certificate_pem()` on the returned server hands its PEM to the
//! client's root store. The crypto is rustls on ring, nothing that needs
//! cmake; `serve_tls` shows a hyper-rustls client.
//!
//! ```toml
//! [dev-dependencies]
//! ocient-mock = { version = "0.1", features = ["tls"] }
//! ```
//!
//! All time is read from [`tokio::time::Instant`], so a test on a paused
//! clock (`tokio::time::pause` / `advance`) drives token expiry and latency.
//!
//! ```rust
//! use std::time::Duration;
//! use ocient_mock::{Fault, MockOcient};
//!
//! fn main() -> std::io::Result<()> {
//!     let runtime = tokio::runtime::Builder::new_current_thread()
//!         .enable_all()
//!         .build()?;
//!     runtime.block_on(async {
//!         let server = MockOcient::new()
//!             .token_lifetime(Duration::from_secs(5))
//!             .serve()
//!             .await?;
//!         println!("Ocient mock listening on {}", server.uri());
//!
//!         // The next login or token refresh is answered with a 503.
//!         server
//!             .mock()
//!             .fail_token_requests(Fault::Status(http::StatusCode::SERVICE_UNAVAILABLE), 1);
//!
//!         let counters = server.mock().counters();
//!         println!("{} token requests so far", counters.token_requests());
//!         server.shutdown();
//!         Ok(())
//!     })
//! }
//! ```
//!
//! # Failure answers
//!
//! | situation | HTTP | `vendor_code` | `sql_state` |
//! |---|---|---|---|
//! | wrong username or password | 401 | -304 | `08004` |
//! | no `Authorization` header | 401 | -1204 | `08003` |
//! | unknown, malformed or revoked token | 401 | -1205 | `08004` |
//! | expired token | 401 | -1208 | `08004` |
//! | refresh past the refresh lifetime | 401 | -733 | `42502` |
//! | `Content-Type` is not `application/json` | 415 | -1 | `22000` |
//! | malformed JSON or unreadable body | 400 | -1 | `22000` |
//! | body over 64 KiB | 413 | -1 | `22000` |
//! | wrong method on a known path | 405 | -1 | `42000` |
//! | unknown path | 404 | -1 | `42000` |
//!
//! With [`MockOcient::errors_in_band`] the 401 answers become HTTP 200
//! carrying the same status object; protocol errors keep their HTTP status.
//! A token refresh checks, in this order: the token is known (-1205), its
//! refresh lifetime (-733), then its expiry (-1208, unless
//! [`MockOcient::refresh_expired_tokens`]).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

mod body;
#[cfg(feature = "tls")]
mod client;
mod device;
mod fault;
mod handler;
#[cfg(feature = "sso")]
mod idp;
#[cfg(feature = "sso")]
mod idp_server;
mod ids;
#[cfg(feature = "sso")]
mod jwks;
#[cfg(feature = "sso")]
mod jwt;
mod knobs;
mod loopback;
mod mock;
mod mock_server;
mod proxy;
mod sso;
mod state;
#[cfg(test)]
mod test_support;
#[cfg(feature = "tls")]
mod tls;
mod wire;

pub use body::MockBody;
#[cfg(feature = "tls")]
pub use client::{https_client, HttpsClient};
pub use device::DeviceApproval;
pub use fault::Fault;
pub use handler::ResponseFuture;
#[cfg(feature = "sso")]
pub use idp::TestIdentityProvider;
#[cfg(feature = "sso")]
pub use idp_server::IdentityProviderServer;
#[cfg(feature = "sso")]
pub use jwks::{JwksError, TrustedIssuer};
pub use loopback::{serve, LoopbackServer};
pub use mock::MockOcient;
pub use mock_server::MockServer;
pub use proxy::FaultProxy;
pub use sso::SsoAnswer;
pub use state::Counters;
#[cfg(feature = "tls")]
pub use tls::serve_tls;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_thread_safe() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        fn assert_send<T: Send + 'static>() {}
        fn assert_unpin<T: Unpin>() {}
        assert_send_sync::<MockOcient>();
        assert_send_sync::<MockServer>();
        assert_send_sync::<LoopbackServer>();
        assert_send_sync::<FaultProxy>();
        assert_send_sync::<MockBody>();
        assert_send_sync::<Fault>();
        assert_send::<ResponseFuture>();
        assert_unpin::<MockBody>();
    }
}
