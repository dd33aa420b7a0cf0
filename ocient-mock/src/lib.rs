//! An Ocient-compatible HTTP Query API server for tests and demos.
//!
//! [`MockOcient`] answers `POST /v1/login`, `POST /v1/token_refresh` and
//! `GET`/`POST /v1/execute/{database}` the way the Ocient HTTP Query API does,
//! with knobs for token lifetimes, latency and injected [`Fault`]s. Use it
//! in-process as a [`tower_service::Service`], or over loopback HTTP with
//! [`MockOcient::serve`]; both run the same handler, so answers and
//! [`Counters`] are identical either way.
//!
//! A query gets one row, `SELECT 1`'s, in the `format` it asks for:
//! `"array"`, the documented default (`"data": [[1]]`), or `"collection"`,
//! rows as objects keyed by column name (`"data": [{"c1": 1}]`, the shape of
//! the OpenAPI document's example). The format comes from the JSON body's
//! `format`, or else from a `?format=` query parameter, which is where a
//! GET (no body) and a `text/plain` POST (the body is the bare statement)
//! carry it. The token is checked before the body is read.
//!
//! It signs users in with Ocient's single sign-on too. `POST /v1/sso_token`
//! trades an identity provider's ID or access token for an Ocient token:
//! fixed strings from [`MockOcient::sso_tokens`], or, with the `sso`
//! feature, JWTs a `TrustedIssuer` signed; [`SsoAnswer`] picks the answer's
//! shape. The device grant, `POST /v1/sso_device_grant` then
//! `POST /v1/sso_device_grant_verify`, answers as the test's
//! [`DeviceApproval`] says, holding a pending poll on tokio's clock. Tokens
//! handed out either way are refreshed, queried with and revoked like a
//! login's.
//!
//! A test can say whose query it is: [`IDENTITY_HEADER`]
//! (`x-mock-identity: <username>` or `<username>/<database>`) on an execute
//! request holds its token to that identity, and a token issued to another
//! is refused with a 403 and counted in [`Counters::queries_wrong_identity`].
//! [`Counters::peak_token_requests_in_flight`] is the most token requests
//! ever handled at once (latency included), and
//! [`MockOcient::token_requests_in_flight`] how many are now.
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
//! With the `sso` feature (off by default), `TrustedIssuer` reads an
//! identity provider's JSON Web Key Set and `MockOcient::trust_issuer`
//! accepts the JWTs it signs: RS256 or ES256, verified with ring, its `iss`,
//! `aud`, `exp` and `nbf` checked. `TestIdentityProvider` is such a provider
//! for tests without one: it signs ES256 tokens in process, or
//! `TestIdentityProvider::serve` puts it on a loopback port with a client
//! credentials token endpoint, its key set and its discovery document.
//!
//! ```toml
//! [dev-dependencies]
//! ocient-mock = { version = "0.1", features = ["sso"] }
//! ```
//!
//! All time is read from [`tokio::time::Instant`], so a test on a paused
//! clock (`tokio::time::pause` / `advance`) drives token expiry, latency and
//! device grant polls. JWTs carry wall-clock Unix times, so their `exp` is
//! read from, and written with, the system clock.
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
//!         // The next token request (a login, refresh, SSO exchange or
//!         // device grant) is answered with a 503.
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
//! | SSO: identity-provider token unknown or malformed; JWT for another audience, not yet valid or missing `iss`, `sub` or `exp` | 401 | -1205 | `08004` |
//! | SSO: JWT signature does not verify, or its `alg` is not RS256 or ES256 | 401 | -1206 | `08004` |
//! | SSO: JWT from an issuer not trusted | 401 | -1207 | `08004` |
//! | SSO: JWT expired | 401 | -1208 | `08004` |
//! | SSO: both `id_token` and `access_token`, or neither | 400 | -1 | `22000` |
//! | device poll: unknown `user_code`, `timeout` not 1 to 600 seconds | 400 | -1 | `22000` |
//! | device poll before the one [`DeviceApproval::ApproveAtPoll`] approves | 400 | -1 | `HYT00` |
//! | device poll, the user denied ([`DeviceApproval::Deny`]) | 403 | -1 | `28000` |
//! | device poll still pending at its `timeout` | 408 | -1 | `HYT00` |
//! | execute: a valid token issued to another user or database than [`IDENTITY_HEADER`] names | 403 | -1205 | `08004` |
//! | `Content-Type` is not `application/json` | 415 | -1 | `22000` |
//! | malformed JSON or unreadable body | 400 | -1 | `22000` |
//! | execute `format` neither `array` nor `collection` | 400 | -1 | `22000` |
//! | body over 64 KiB | 413 | -1 | `22000` |
//! | wrong method on a known path | 405 | -1 | `42000` |
//! | unknown path | 404 | -1 | `42000` |
//!
//! With [`MockOcient::errors_in_band`] the 401 answers, and the device
//! poll's `HYT00` and `28000` refusals, become HTTP 200 carrying the same
//! status object; protocol errors (`22000`, `42000`) keep their HTTP status,
//! and so does a token sent for another identity.
//! A refused identity-provider token is never echoed in the answer.
//! A token refresh checks, in this order: the token is known (-1205), its
//! refresh lifetime (-733), then its expiry (-1208, unless
//! [`MockOcient::refresh_expired_tokens`]).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

#[cfg(feature = "sso")]
mod base64url;
mod body;
#[cfg(feature = "tls")]
mod client;
mod device;
mod fault;
mod handler;
mod identity;
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
pub use identity::IDENTITY_HEADER;
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
        assert_send_sync::<SsoAnswer>();
        assert_send_sync::<DeviceApproval>();
        #[cfg(feature = "sso")]
        {
            assert_send_sync::<TrustedIssuer>();
            assert_send_sync::<JwksError>();
            assert_send_sync::<TestIdentityProvider>();
            assert_send_sync::<IdentityProviderServer>();
        }
        assert_send::<ResponseFuture>();
        assert_unpin::<MockBody>();
    }
}
