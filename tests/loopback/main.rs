//! Over real sockets on 127.0.0.1, on tokio's own clock: the mock served over HTTP and
//! HTTPS, hyper-util's legacy client over hyper-rustls under the layer.
//!
//! - `end_to_end`: every scenario over both HTTP and HTTPS, and a client that does not
//!   trust the server;
//! - `nodes`: failover between the SQL nodes of a cluster;
//! - `outage_https`: outages through `ocient_mock::FaultProxy`: a node down, a black hole,
//!   connections cut mid-refresh.

#[path = "../common/mod.rs"]
mod common;

mod end_to_end;
mod nodes;
mod outage_https;
