//! The demo, run in-process as `main` runs it, and read back as a user's tools would: its
//! chart with an XML parser and (feature `metrics`) its metrics page with a Prometheus one.
//! `cargo test` runs them (the example is marked `test = true`).
//!
//! The demo runs on the wall clock, so nothing here asserts a duration: only counts, and
//! values the run itself reported.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use plotters::style::RGBColor;
use roxmltree::Document;
use tokio::time::{Duration, Instant};

use crate::flags::parse;
use crate::latency::{BySecond, SecondLatency};
use crate::plot::{self, Install, P50_COLOUR, P99_COLOUR};
use crate::{demo, Report};

/// With the mock's 4 s tokens, long enough for two refreshes (at about 2 s and 4 s).
const SECONDS: u64 = 6;
/// Fewer clients than the demo's 32: the tests share two cores with the build.
const CLIENTS: &str = "8";

/// Runs the demo for [`SECONDS`] with [`CLIENTS`] and `args`, as `main` would with that
/// command line.
async fn run_demo(args: &[&str]) -> Report {
    let seconds = SECONDS.to_string();
    let short = ["--seconds", &seconds, "--concurrency", CLIENTS];
    let args = short.iter().chain(args).map(|arg| arg.to_string());
    let (node, run) = parse(args).expect("flags the demo takes");
    demo(&node, &run).await.expect("the demo runs")
}

/// A path for a chart, in the temporary directory, that no other test process uses.
fn chart_path(test: &str) -> PathBuf {
    let name = format!("demo-{test}-{}.svg", std::process::id());
    std::env::temp_dir().join(name)
}

/// How many points of the series drawn in `colour` the chart has.
///
/// plotters' SVG backend draws each point as a `<circle>` filled with the series' colour,
/// and nothing else as a circle: the mesh and the axes are `<line>`s and `<polyline>`s,
/// the legend's keys short lines (`plot::draw_legend` says so), the token markers dashed
/// lines and `<text>`. So the circles are the points, and not the grid.
fn points(chart: &Document<'_>, colour: RGBColor) -> usize {
    let fill = format!("#{:02X}{:02X}{:02X}", colour.0, colour.1, colour.2);
    chart
        .descendants()
        .filter(|node| node.has_tag_name("circle") && node.attribute("fill") == Some(&fill))
        .count()
}

/// The generations of the chart's `token N` labels, one for each install marked.
fn token_labels(chart: &Document<'_>) -> Vec<u64> {
    chart
        .descendants()
        .filter(|node| node.has_tag_name("text"))
        .filter_map(|node| node.text()?.trim().strip_prefix("token ")?.parse().ok())
        .collect()
}

/// Checks the chart a run wrote at `path`: a point per second of the run in each series,
/// and a marker for each token the layer reported, `token 1` to the last.
fn check_chart(path: &PathBuf, report: &Report) {
    let svg = std::fs::read_to_string(path).expect("the demo wrote its chart");
    let chart = Document::parse(&svg).expect("the chart is well-formed XML");
    assert!(chart.root_element().has_tag_name("svg"));

    let seconds = &report.by_second;
    let which: Vec<u64> = seconds.iter().map(|s| s.second).collect();
    assert_eq!(
        which,
        (0..SECONDS).collect::<Vec<_>>(),
        "answers every second"
    );
    assert_eq!(points(&chart, P50_COLOUR), seconds.len(), "p50 points");
    assert_eq!(points(&chart, P99_COLOUR), seconds.len(), "p99 points");

    let generations = report.installs.len() as u64;
    assert!(generations >= 2, "a login and a refresh at least");
    let reported: Vec<u64> = report.installs.iter().map(|i| i.generation).collect();
    assert_eq!(reported, (1..=generations).collect::<Vec<_>>());
    assert_eq!(token_labels(&chart), reported, "a marker for each token");
}

/// With the feature, the metrics test runs the demo and checks its chart too: see there.
#[cfg(not(feature = "metrics"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_of_a_run_with_refreshes_marks_every_token() {
    let path = chart_path("chart");
    let plot = path.to_str().expect("a UTF-8 temporary directory");
    let report = run_demo(&["--plot", plot]).await;
    check_chart(&path, &report);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_chart_has_a_point_per_second_per_series_and_a_marker_per_token() {
    let seconds: Vec<SecondLatency> = (0..5)
        .map(|second| SecondLatency {
            second,
            p50_ms: 4.0 + second as f64 / 10.0,
            p99_ms: 14.0 - second as f64,
        })
        .collect();
    let installs: Vec<Install> = [(1, 0.02), (2, 2.1), (3, 4.2)]
        .map(|(generation, at)| Install { generation, at })
        .into();

    let svg = plot::svg(&seconds, &installs).expect("a chart");
    let chart = Document::parse(&svg).expect("well-formed XML");
    assert_eq!(points(&chart, P50_COLOUR), 5);
    assert_eq!(points(&chart, P99_COLOUR), 5);
    assert_eq!(token_labels(&chart), [1, 2, 3]);
}

#[test]
fn a_request_counts_in_the_second_it_completed_in() {
    let start = Instant::now();
    let at = |millis| start + Duration::from_millis(millis);
    let run = || BySecond::new(start, 4);
    let (mut one_worker, mut another) = (run(), run());
    one_worker.record(at(10), 5_000_000);
    one_worker.record(at(999), 7_000_000);
    another.record(at(1_000), 20_000_000);
    another.record(at(3_500), 9_000_000);
    // In flight when the 4 s run ended: it counts in the run's last second.
    another.record(at(4_020), 9_000_000);
    one_worker.add(&another);

    let seconds = one_worker.percentiles();
    let which: Vec<u64> = seconds.iter().map(|s| s.second).collect();
    assert_eq!(which, [0, 1, 3], "no point for a second without answers");
    let near = |ms: f64, expected: f64| (ms - expected).abs() < expected / 50.0;
    assert!(near(seconds[0].p50_ms, 5.0) && near(seconds[0].p99_ms, 7.0));
    assert!(near(seconds[1].p99_ms, 20.0) && near(seconds[2].p50_ms, 9.0));
}

/// `--users`: with 50 users, one login each, and every query with its own user's token.
async fn check_users_run() {
    let args = ["--users", "50", "--seconds", "2", "--concurrency", CLIENTS];
    let (node, run) = parse(args.map(String::from)).expect("flags the demo takes");
    let report = demo(&node, &run).await.expect("the demo runs");
    let users = report.users.as_ref().expect("a summary of the users");
    assert_eq!(users.users, 50);
    assert_eq!(users.logins, 50, "one login per user");
    assert_eq!(users.wrong_identity, 0, "never another user's token");
    let identities = (users.held, users.usable);
    assert_eq!(identities, (50, 50), "every user's token kept, and usable");
    let stats = &report.stats;
    let ok = stats.ok.load(Ordering::Relaxed);
    assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
    assert!(ok >= 50, "a query from every user");
    assert_eq!(users.queries_ok, ok, "as the mock saw them");
    assert!(!report.failed(), "so the demo exits 0");
}

/// With the feature, the metrics test runs this after its own run: see there.
#[cfg(not(feature = "metrics"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_users_each_logs_in_once_and_sends_only_their_own_token() {
    check_users_run().await;
}

#[test]
fn users_are_the_embedded_mock_s_alone_and_at_least_one() {
    let refused = |args: &[&str]| match parse(args.iter().map(|arg| arg.to_string())) {
        Err(crate::flags::Refused::Usage(message)) => message,
        other => panic!("{args:?} refused, not {:?}", other.map(|_| ())),
    };
    // Told about --url, not the real node's password the demo would otherwise ask for.
    let message = refused(&["--users", "3", "--url", "https://sql-node"]);
    assert!(message.contains("drop --url"), "{message}");
    assert!(refused(&["--users", "0"]).contains("at least 1"));
    assert!(refused(&["--users", "3", "--plot", "x.svg"]).contains("--plot"));
}

#[cfg(not(feature = "metrics"))]
#[test]
fn metrics_without_the_feature_names_the_command_that_has_it() {
    let args = ["--metrics", "127.0.0.1:9000"].map(String::from);
    match parse(args) {
        Err(crate::flags::Refused::NotBuiltIn(message)) => {
            assert!(!message.contains('\n'), "one line: {message}");
            let works = "cargo run --example demo --features metrics -- --metrics 127.0.0.1:9000";
            assert!(message.contains(works), "{message}");
        }
        other => panic!("refused as not built in, not {:?}", other.map(|_| ())),
    }
}

/// The one test that installs the process's Prometheus recorder (a process has one).
///
/// It also holds the only runs of the demo in this process: every layer made while the
/// recorder is installed registers with it, so another run would add its logins to this
/// one's. Hence it checks the chart of its run as well, and runs `--users` after its checks.
#[cfg(feature = "metrics")]
mod with_metrics {
    use std::net::{SocketAddr, TcpListener};
    use std::time::{SystemTime, UNIX_EPOCH};

    use prometheus_parse::{Sample, Scrape, Value};

    use super::{chart_path, check_chart, check_users_run, run_demo};
    use crate::metrics_contract::{allowed, NAMES};
    use crate::metrics_page::fetch;
    use crate::{Report, TOKEN_LIFETIME};

    /// The password the demo's embedded mock takes (`support::NodeFlags::node`).
    const PASSWORD: &str = "secret";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_metrics_page_and_chart_of_a_run_with_refreshes() {
        let addr = free_port();
        let path = chart_path("metrics");
        let started = unix_now();
        let metrics = addr.to_string();
        let plot = path.to_str().expect("a UTF-8 temporary directory");
        let report = run_demo(&["--metrics", &metrics, "--plot", plot]).await;
        check_chart(&path, &report);
        let _ = std::fs::remove_file(&path);

        let page = fetch(addr).await.expect("the page, over loopback HTTP");
        let scrape = Scrape::parse(page.lines().map(|line| Ok(line.to_owned())))
            .expect("the Prometheus text format");
        for name in NAMES {
            assert!(
                scrape.samples.iter().any(|s| s.metric == name),
                "{name} is on the page:\n{page}"
            );
        }
        check_exchanges(&scrape, &report);
        check_token(&scrape, &report, started);
        check_quiet_run(&scrape);
        check_labels(&scrape);
        check_users_run().await;
    }

    /// One login, every refresh the demo sent, all answered, each one timed.
    fn check_exchanges(scrape: &Scrape, report: &Report) {
        let requests = "token_refresh_requests_total";
        let logins = sum(scrape, requests, &[("kind", "login"), ("outcome", "ok")]);
        let refreshes = sum(scrape, requests, &[("kind", "refresh"), ("outcome", "ok")]);
        assert_eq!(logins, 1.0);
        assert!(refreshes >= 1.0);
        let sent = &report.stats;
        let sent_refreshes = sent.refreshes.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(refreshes, sent_refreshes as f64, "as the demo counted them");
        assert_eq!(
            sum(scrape, requests, &[]),
            logins + refreshes,
            "none failed"
        );

        let durations = "token_refresh_request_duration_seconds";
        let timed = sum(scrape, &format!("{durations}_count"), &[]);
        assert_eq!(timed, logins + refreshes);
        // A Prometheus histogram, not a summary: the buckets `serve` set, and +Inf.
        for histogram in scrape.samples.iter().filter(|s| s.metric == durations) {
            let Value::Histogram(buckets) = &histogram.value else {
                panic!("{durations} is a histogram: {histogram:?}");
            };
            assert_eq!(buckets.len(), 15, "{buckets:?}");
        }
    }

    /// The current token: the last generation the demo saw, expiring one lifetime after it
    /// was installed (not an earlier token's expiry), `started` being before the run began.
    fn check_token(scrape: &Scrape, report: &Report, started: f64) {
        let generations = report.installs.len() as f64;
        assert!(generations >= 2.0);
        assert_eq!(sum(scrape, "token_generation", &[]), generations);
        let expiry = sum(scrape, "token_expiry_timestamp_seconds", &[]);
        let lifetime = TOKEN_LIFETIME.as_secs_f64();
        let last = report.installs.last().expect("a token").at;
        // Half a second either way for the request's round trip and the system clock.
        let earliest = started + last + lifetime - 0.5;
        let latest = unix_now() + lifetime + 0.5;
        assert!(
            (earliest..=latest).contains(&expiry),
            "{expiry} in {earliest}..={latest}"
        );
    }

    /// Against a mock that always answers: no 401, no request turned away, one node.
    fn check_quiet_run(scrape: &Scrape) {
        let waits = sum(scrape, "token_wait_duration_seconds_count", &[]);
        assert!(waits >= 1.0, "the first requests waited for the login");
        assert_eq!(sum(scrape, "token_revocations_total", &[]), 0.0);
        assert_eq!(sum(scrape, "token_requests_turned_away_total", &[]), 0.0);
        assert_eq!(sum(scrape, "token_failovers_total", &[]), 0.0);
    }

    /// Every label value is one of the few the layer writes: never the password, a token
    /// (the mock's are `mock.N.…`) or anything with a path in it.
    fn check_labels(scrape: &Scrape) {
        for sample in &scrape.samples {
            for (label, value) in sample.labels.iter() {
                let allowed = allowed(label, value, "127.0.0.1");
                assert!(allowed, "{}: {label}={value}", sample.metric);
                assert!(!value.contains(PASSWORD) && !value.contains("mock."));
                assert!(!value.contains('/'), "{label}={value}");
            }
        }
    }

    /// The sum of the samples named `name` with all of `labels`; panics if there is none.
    fn sum(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let has_labels = |sample: &&Sample| {
            labels
                .iter()
                .all(|(label, value)| sample.labels.get(label) == Some(value))
        };
        let values: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|sample| sample.metric == name)
            .filter(has_labels)
            .map(|sample| match sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                ref other => panic!("{name}: a number, not {other:?}"),
            })
            .collect();
        assert!(!values.is_empty(), "{name} with {labels:?}");
        values.iter().sum()
    }

    /// A port nothing listens on: bound by the system, and let go.
    fn free_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.local_addr().expect("its address")
    }

    fn unix_now() -> f64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        now.expect("after 1970").as_secs_f64()
    }
}
