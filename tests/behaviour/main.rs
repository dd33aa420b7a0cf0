//! What the layer does and promises, each on tokio's paused clock over the in-process mock:
//!
//! - `essentials`: the token on every request, one login for concurrent callers, the
//!   background refresh, dead tokens, a rejected refresh, a wrong password;
//! - `contract`: the tower contract and where the token goes;
//! - `plain_http`: nothing secret over plain http to another host; `custom_endpoint`: a
//!   protocol of the user's own, its classification read by the layer;
//! - `spread`: a fleet started together does not refresh together;
//! - `long_running`: idle refresh, nothing left behind, `warm_up`, `status`, rotating
//!   passwords; `axum_ready`: the readiness probe the axum example shows;
//! - `sso` and `device_grant`: single sign-on, by token exchange and by device grant;
//! - `observability` (feature `metrics`): what each event records, and nothing for a fresh
//!   token;
//! - `debug`: what every public type shows in `Debug`; `secrets`: no secret in any output,
//!   even when the server echoes one.

#[path = "../common/mod.rs"]
mod common;

mod axum_ready;
mod contract;
mod custom_endpoint;
mod debug;
mod device_grant;
mod essentials;
mod long_running;
#[cfg(feature = "metrics")]
mod observability;
mod plain_http;
mod secrets;
mod spread;
mod sso;
