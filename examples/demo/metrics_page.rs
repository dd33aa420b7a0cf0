//! `--metrics ADDR` (feature `metrics`): the layer's metrics in the Prometheus text format,
//! served by `metrics-exporter-prometheus` while the demo runs, and read back at the end.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tower::BoxError;

/// The layer's histograms, which the exporter would otherwise render as summaries.
const DURATIONS: [&str; 2] = [
    "token_refresh_request_duration_seconds",
    "token_wait_duration_seconds",
];

/// Bucket bounds in seconds, from a login answered on loopback (about 1 ms) to the
/// layer's 30 s refresh timeout, about three to a decade.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the Prometheus recorder as the process's own and serves its page at `addr`.
///
/// Call it before the layer makes its first service: the layer registers its metrics
/// with the recorder in force then, and records nothing anywhere else.
pub fn serve(addr: SocketAddr) -> Result<(), BoxError> {
    let mut exporter = PrometheusBuilder::new().with_http_listener(addr);
    for name in DURATIONS {
        exporter = exporter.set_buckets_for_metric(Matcher::Full(name.into()), &BUCKETS)?;
    }
    exporter
        .install()
        .map_err(|e| format!("--metrics {addr}: {e}"))?;
    Ok(())
}

/// The page served at `addr`, fetched over loopback HTTP as a scraper would.
pub async fn fetch(addr: SocketAddr) -> Result<String, BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("http://{}/metrics", loopback(addr));
    let response = client.get(uri.parse()?).await?;
    if !response.status().is_success() {
        return Err(format!("{uri}: HTTP {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

/// Prints the `token_*` lines of the page served at `addr`, as a scraper reads them.
pub async fn print(addr: SocketAddr) -> Result<(), BoxError> {
    let page = fetch(addr).await?;
    println!("\nthe layer's metrics, from http://{addr}/metrics");
    for line in token_lines(&page) {
        println!("{line}");
    }
    Ok(())
}

/// The layer's samples on `page`: the lines of the `token_*` metrics, without the
/// `# HELP` and `# TYPE` lines around them, by series, so that one run's page reads like
/// the next (the exporter's order varies).
pub fn token_lines(page: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = page.lines().filter(|l| l.starts_with("token_")).collect();
    // Stable: a histogram's lines keep the exporter's order, buckets first.
    lines.sort_by_key(|line| series(line));
    lines
}

/// The series a sample line belongs to: its metric and labels, less a histogram's
/// `_bucket`, `_sum` or `_count` suffix and `le` label.
fn series(line: &str) -> (&str, String) {
    let sample = line.split_once(' ').map_or(line, |(sample, _value)| sample);
    let (name, labels) = sample.split_once('{').unwrap_or((sample, ""));
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    let labels: Vec<&str> = labels
        .trim_end_matches('}')
        .split(',')
        .filter(|label| !label.starts_with("le="))
        .collect();
    (family, labels.join(","))
}

/// `addr`, or the loopback address on its port when it listens on every address.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => (Ipv4Addr::LOCALHOST, v4.port()).into(),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => (Ipv6Addr::LOCALHOST, v6.port()).into(),
        _ => addr,
    }
}
