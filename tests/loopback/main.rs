//! Over real sockets on 127.0.0.1, on tokio's own clock: the mock served over HTTP and
//! HTTPS, hyper-util's legacy client over hyper-rustls (and reqwest's) under the layer.
//!
//! - `transport`: how each scenario runs over both HTTP and HTTPS;
//! - `end_to_end`: every scenario over both HTTP and HTTPS, and a client that does not
//!   trust the server;
//! - `identities`: a token per user through `PerIdentityLayer`, a thousand users at once;
//! - `nodes`: failover between the SQL nodes of a cluster;
//! - `outage_https`: outages through `ocient_mock::FaultProxy`: a node down, a black hole,
//!   connections cut mid-refresh;
//! - `reqwest_client`: `reqwest::Client` under the layer through tower-reqwest's
//!   `HttpClientLayer`: refreshes through reqwest's pool, single flight, a 401 retried, the
//!   errors in the box.

#[path = "../common/mod.rs"]
mod common;
// First: its macro serves the modules below.
#[macro_use]
mod transport;

mod end_to_end;
mod identities;
mod nodes;
mod outage_https;
mod reqwest_client;
