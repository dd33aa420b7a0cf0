//! The demo, run in-process as `main` runs it, and its chart read back as a user's tools
//! would, with an XML parser.
//! `cargo test` runs them (the example is marked `test = true`).
//!
//! The demo runs on the wall clock, so nothing here asserts a duration: only counts, and
//! values the run itself reported.

use std::path::PathBuf;

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

/// Runs the demo with `args`, as `main` would with that command line.
async fn run_demo(args: &[&str]) -> Report {
    let args = args.iter().map(|arg| arg.to_string());
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
/// the legend's keys short lines (`plot::draw_series` says so), the token markers dashed
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

/// Checks the chart a run wrote at `path`: a point per second with answers in each series,
/// and a marker for each token the layer reported, `token 1` to the last.
fn check_chart(path: &PathBuf, report: &Report) {
    let svg = std::fs::read_to_string(path).expect("the demo wrote its chart");
    let chart = Document::parse(&svg).expect("the chart is well-formed XML");
    assert!(chart.root_element().has_tag_name("svg"));

    let seconds = &report.by_second;
    assert!(
        seconds.len() as u64 >= SECONDS,
        "answers in every second of the run: {seconds:?}"
    );
    assert_eq!(points(&chart, P50_COLOUR), seconds.len(), "p50 points");
    assert_eq!(points(&chart, P99_COLOUR), seconds.len(), "p99 points");

    let generations = report.installs.len() as u64;
    assert!(generations >= 2, "a login and a refresh at least");
    let reported: Vec<u64> = report.installs.iter().map(|i| i.generation).collect();
    assert_eq!(reported, (1..=generations).collect::<Vec<_>>());
    assert_eq!(token_labels(&chart), reported, "a marker for each token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_of_a_run_with_refreshes_marks_every_token() {
    let path = chart_path("chart");
    let seconds = SECONDS.to_string();
    let plot = path.to_str().expect("a UTF-8 temporary directory");
    let args = [
        "--seconds",
        &seconds,
        "--concurrency",
        CLIENTS,
        "--plot",
        plot,
    ];
    let report = run_demo(&args).await;
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
    let (mut one_worker, mut another) = (BySecond::new(start), BySecond::new(start));
    one_worker.record(at(10), 5_000_000);
    one_worker.record(at(999), 7_000_000);
    another.record(at(1_000), 20_000_000);
    another.record(at(3_500), 9_000_000);
    one_worker.add(&another);

    let seconds = one_worker.percentiles();
    let which: Vec<u64> = seconds.iter().map(|s| s.second).collect();
    assert_eq!(which, [0, 1, 3], "no point for a second without answers");
    let near = |ms: f64, expected: f64| (ms - expected).abs() < expected / 50.0;
    assert!(near(seconds[0].p50_ms, 5.0) && near(seconds[0].p99_ms, 7.0));
    assert!(near(seconds[1].p99_ms, 20.0) && near(seconds[2].p50_ms, 9.0));
}
