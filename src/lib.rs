//! Tower middleware that keeps an [Ocient HTTP Query API] access token fresh.
//!
//! [`TokenRefreshLayer`] wraps any tower HTTP client (hyper-util's `Client`, the clients
//! inside axum services). It logs in, puts `Authorization: Bearer <token>` on every request
//! to the API's origin, and refreshes the token before it expires **through the wrapped
//! service itself**, so that all concurrent callers share one refresh and nobody waits while
//! a valid token exists.
//!
//! ```
//! # #[cfg(feature = "ocient")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use bytes::Bytes;
//! use http::Request;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{ServiceBuilder, ServiceExt};
//! use ocient_mock::MockOcient;
//! use tower_token_refresh::{OcientAuth, TokenRefreshLayer};
//!
//! // An Ocient-compatible server on 127.0.0.1; use your SQL node's URI instead.
//! let server = MockOcient::new().serve().await?;
//!
//! let auth = OcientAuth::new(server.uri())
//!     .credentials("jdoe", "secret")
//!     .database("retail_analytics");
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let service = ServiceBuilder::new()
//!     .layer(TokenRefreshLayer::new(auth))
//!     .service(client);
//!
//! let request = Request::post(format!("{}v1/execute/retail_analytics", server.uri()))
//!     .header("content-type", "application/json")
//!     .body(Full::from(r#"{"statement":"SELECT 1"}"#))?;
//! let response = service.oneshot(request).await?;
//! assert!(response.status().is_success());
//! assert_eq!(server.mock().counters().logins, 1);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "ocient"))] fn main() {}
//! ```
//!
//! # Concepts
//!
//! One word per idea, in the code, the docs, the events and the logs:
//!
//! - **Grant**: what a login or refresh obtains: an access token, its lifetime, and for some
//!   protocols a refresh token ([`Grant`]).
//! - **Generation**: the number of a token, counting from 1, in [`TokenStatus`] and in the
//!   [`TokenEvent`]s about a token; a newer token has a higher one.
//! - **Phases** ([`TokenPhase`]): a token is **fresh** (sent), then **due** (sent, and a
//!   refresh is under way) from its **refresh point**, then **dead** (no longer sent) from its
//!   **dead point**, a safety margin before it **expires**. A token is **revoked** when the
//!   server no longer takes it: a request carrying it was answered 401 (its phase says so),
//!   or a refresh of it failed in a way [`TokenEndpoint::classify`] calls
//!   [`FailureKind::Revoked`].
//!   Only a new login replaces a revoked token, when the endpoint can log in.
//! - **Exchange** ([`Exchange`]): one login or one refresh, sent through the wrapped service.
//!   A login may take several requests (a device grant polls until the user approves),
//!   sent through one [`TokenClient`]; it is still one exchange.
//!   **Rejected** ([`Error::Rejected`]): the endpoint answered an exchange and said no, with
//!   its status and the protocol's own [`ErrorCode`].
//! - **Flight**: the one attempt at a new token that every waiting caller shares, with its
//!   retries (the **backoff**) while it goes on. Its status (idle, running, backing off,
//!   down) and the token's phase are the two axes of one state machine.
//! - **Down**: no usable token, and the last exchange failed because the server could not be
//!   reached or could not answer.
//! - **Insecure**: a token or credentials bound for plain `http://` on a host that is not
//!   loopback; the layer sends nothing ([`Error::InsecureTransport`]).
//! - **Provider**: a closure the layer asks for credentials at each login: a username and
//!   password ([`OcientAuth::credentials_from`]) or an identity provider's token
//!   ([`OcientAuth::sso_token_from`]); its failure is [`Error::Provider`].
//! - **Single sign-on**: a login through an OpenID Connect identity provider rather than a
//!   password: by **token exchange** ([`OcientAuth::sso_token_from`]) or by **device grant**
//!   ([`OcientAuth::device_grant`]), which the user **approves** or **denies**
//!   ([`Error::DeviceGrant`]).
//!
//! # How it works
//!
//! ```text
//! obtained          refresh point                        dead point              expiry
//!    |   fresh: send  |  due: send at once, and start ONE  |  dead: wait for the   |
//!    |                |  background refresh (single-flight)|  shared refresh       |
//!    0        (1 - refresh_at) x lifetime             lifetime - margin        lifetime
//!                      + up to 10% spread
//! ```
//!
//! - A token's lifetime counts from when its login or refresh request was **sent**.
//! - At the refresh point (half the lifetime left by default, see
//!   [`TokenRefreshLayer::refresh_at`], plus a random spread of up to a tenth of the lifetime
//!   so a fleet does not refresh in lockstep) the next request starts **one** refresh on its
//!   own task and goes out at once with the current token.
//! - At the dead point, a safety margin before expiry (`min(5 s, lifetime / 10)`), the token
//!   is no longer sent: callers wait, all of them on the same attempt.
//! - A refresh rejected because the token is revoked (401/403, or Ocient vendor codes -733 and
//!   -1204..-1208) leads to a new login with the credentials.
//! - A request answered `401` revokes exactly the token it carried: N rejections of one token
//!   cause one new token. [`RetryUnauthorized`] retries such a request once.
//! - Every login and refresh has a timeout ([`TokenRefreshLayer::refresh_timeout`]).
//! - A timer task moves each token from fresh to due to dead, so the per-request path reads an
//!   atomic: no clock, no lock, no allocation beyond the header insert, no boxed future.
//! - Time comes from [`tokio::time::Instant`]: `tokio::time::pause()` drives every expiry in
//!   tests.
//!
//! # Stacking
//!
//! - **Retry outside** the token layer, so a retried request passes through it again and picks
//!   up the new token: `ServiceBuilder::new().layer(RetryLayer::new(RetryUnauthorized::default()))
//!   .layer(TokenRefreshLayer::new(auth))`.
//! - **Timeout** anywhere outside: a caller that times out cancels only itself, never the
//!   shared refresh, which runs on its own task and has its own timeout.
//! - **FollowRedirect outside** the token layer: each hop then passes through it, and the token
//!   is attached only when the hop goes to the API's origin (or one added with
//!   [`TokenRefreshLayer::allow_origin`]). Placed inside, a redirect would be followed with
//!   whatever headers the first hop had.
//! - **Buffer / ConcurrencyLimit** inside or outside: a request waiting for a token holds no
//!   readiness of the inner service, so the refresh itself can always get through, even with a
//!   limit of one.
//!
//! # Long-running services
//!
//! - [`TokenRefreshLayer::refresh_when_idle`] refreshes at the refresh point even when no
//!   request comes, so a service idle all night never waits for a login, and keeps trying
//!   after an outage that outlived the token, so a readiness probe recovers on its own.
//! - After an outage, the layer is usable again within seconds of the server's return: with
//!   no usable token the wait between attempts stops growing at
//!   [`TokenRefreshLayer::retry_backoff_while_down`], and a `Retry-After` on a 429 or 503 is
//!   honoured. [`TokenRefresh::refresh_now`] asks for a new token at once.
//! - [`TokenRefresh::warm_up`] obtains a token at startup and fails typed (a wrong password
//!   is [`Error::Rejected`] with vendor code -304) before the service reports ready.
//! - [`TokenRefresh::status`] and [`TokenRefreshLayer::status`] give a [`TokenStatus`] for a
//!   health check; it sends nothing.
//! - [`OcientAuth::credentials_from`] asks a provider at each login, so rotated passwords
//!   are picked up; [`OcientAuth::node`] lists the other SQL nodes to fail over to.
//!
//! # Transport security
//!
//! TLS is the wrapped client's business (hyper-rustls under the layer, see the README).
//! The layer refuses to send the password or a token over plain `http://` to a host that
//! is not loopback, with [`Error::InsecureTransport`], unless
//! [`OcientAuth::allow_plain_http`] opts in.
//!
//! # Observability
//!
//! With the `metrics` feature, the layer records the token's life through the
//! [`metrics`](https://docs.rs/metrics) facade, labelled with the layer's
//! [`name`](TokenRefreshLayer::name): logins and refreshes by kind and outcome and how long
//! they took, the current token's expiry time and generation, revocations, how long requests
//! waited for a token, requests turned away, failovers. Each event goes to the recorder in
//! force when it happens. A request sent with a fresh token records nothing. The names, their
//! labels and two alert rules are in the README's "Observability" section. For anything else,
//! [`TokenRefreshLayer::on_token`] calls a hook at each event.
//!
//! # Cargo features
//!
//! - `ocient` (default): [`OcientAuth`] (password login, single sign-on, several nodes) and
//!   the Ocient words of [`Error`] (vendor codes, SQLSTATE, device-grant endings). Without
//!   it the crate is the generic layer and its [`TokenEndpoint`] seam.
//! - `retry` (default): [`RetryUnauthorized`], a `tower::retry::Policy` that retries a
//!   request once after a 401.
//! - `metrics`: the metrics above, through the `metrics` facade (0.24).
//!
//! # Protocols
//!
//! The Ocient protocol is [`OcientAuth`]; another token service plugs in by implementing
//! [`TokenEndpoint`]: its login and refresh as plain `async fn`s that send through a
//! [`TokenClient`], and what its failures mean as a [`FailureKind`], which decides failover,
//! backoff and idle retries. Answers are read with the crate's own checks
//! ([`Grant::from_expires_in`], [`Error::rejected`], [`Error::provider`]); see
//! `examples/oauth2_refresh.rs` for the OAuth 2.0 refresh-token grant.
//!
//! [Ocient HTTP Query API]: https://docs.ocient.com
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authorize;
mod config;
mod endpoint;
mod error;
mod event;
mod fetch;
mod future;
mod grant;
mod identity;
mod inner;
mod layer;
#[cfg(feature = "ocient")]
mod ocient;
mod origin;
mod record;
#[cfg(feature = "retry")]
mod retry;
mod retry_after;
mod revoker;
mod service;
mod settings;
mod state;
mod status;

pub use endpoint::{Answer, FailureKind, TokenClient, TokenEndpoint};
#[cfg(feature = "ocient")]
pub use error::DeviceGrantEnd;
pub use error::{printable, Error, ErrorCode, Exchange, ProviderError};
pub use event::TokenEvent;
pub use future::ResponseFuture;
pub use grant::{Grant, InvalidLifetime, InvalidSecret, Secret};
pub use identity::{PerIdentity, PerIdentityLayer};
pub use inner::{HttpResponse, InnerService};
pub use layer::TokenRefreshLayer;
#[cfg(feature = "ocient")]
#[cfg_attr(docsrs, doc(cfg(feature = "ocient")))]
pub use ocient::{DeviceCode, IdentityToken, OcientAuth};
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use retry::RetryUnauthorized;
pub use service::TokenRefresh;
pub use status::{IdentitiesStatus, TokenPhase, TokenStatus};

// The README's examples compile as doctests (they log in to Ocient).
#[cfg(all(doctest, feature = "ocient"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
