//! The demo's latencies: the live progress line's, merged at each tick, and the chart's,
//! one histogram per second of the run. Workers record into their own, with nothing
//! shared per request, and hand them over.

use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Latencies in nanoseconds, 3 significant figures, growing to the slowest one recorded.
pub fn recorder() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures are within hdrhistogram's range")
}

/// The printer's side of the latencies: every worker records into a recorder of its own,
/// with nothing shared per request, and hands it over here when asked (`Stats::asks`)
/// and when it stops; the printer merges what was handed over at each progress tick.
pub struct Latencies {
    merged: Histogram<u64>,
    handed_over: mpsc::UnboundedReceiver<Histogram<u64>>,
}

impl Latencies {
    pub fn new() -> (Self, mpsc::UnboundedSender<Histogram<u64>>) {
        let (hand_over, handed_over) = mpsc::unbounded_channel();
        let latencies = Latencies {
            merged: recorder(),
            handed_over,
        };
        (latencies, hand_over)
    }

    /// Merges every recorder handed over so far, without waiting for more.
    pub fn merge(&mut self) {
        while let Ok(part) = self.handed_over.try_recv() {
            self.merged
                .add(&part)
                .expect("an auto-resizing histogram takes any other");
        }
    }

    /// p50 and p99 of what is merged, or "–" before any answer arrived.
    pub fn percentiles(&self) -> [String; 2] {
        [0.50, 0.99].map(|quantile| {
            if self.merged.is_empty() {
                "–".to_string()
            } else {
                let nanos = self.merged.value_at_quantile(quantile);
                format!("{:.2?}", Duration::from_nanos(nanos))
            }
        })
    }
}

/// p50 and p99 of the requests that completed in one second of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondLatency {
    /// Whole seconds since the run started: `second` covers `second..second + 1`.
    pub second: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Latencies by the second of the run in which each request completed, for the chart.
/// A worker keeps one of its own and hands it over when it stops.
pub struct BySecond {
    start: Instant,
    /// The run's last second, counted from 0.
    last: u64,
    /// Index `n`: the requests that completed in second `n`.
    seconds: Vec<Histogram<u64>>,
}

impl BySecond {
    /// For a run of `seconds` from `start`.
    pub fn new(start: Instant, seconds: u64) -> Self {
        BySecond {
            start,
            last: seconds.saturating_sub(1),
            seconds: Vec::new(),
        }
    }

    /// A request that completed at `completed` after `nanos`. It counts in the second it
    /// completed in; the requests still in flight when the run ends, in its last second,
    /// not in a second of their own past the end, too few to make a percentile.
    pub fn record(&mut self, completed: Instant, nanos: u64) {
        let second = completed
            .duration_since(self.start)
            .as_secs()
            .min(self.last);
        let second = usize::try_from(second).expect("a run shorter than usize::MAX seconds");
        self.grow_to(second + 1);
        self.seconds[second]
            .record(nanos)
            .expect("an auto-resizing histogram takes any latency");
    }

    /// Adds what another worker recorded since the same start.
    pub fn add(&mut self, other: &BySecond) {
        self.grow_to(other.seconds.len());
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.add(theirs)
                .expect("an auto-resizing histogram takes any other");
        }
    }

    /// p50 and p99 of every second in which at least one request completed, in order.
    pub fn percentiles(&self) -> Vec<SecondLatency> {
        let to_ms = |nanos: u64| nanos as f64 / 1e6;
        (0u64..)
            .zip(&self.seconds)
            .filter(|(_, recorded)| !recorded.is_empty())
            .map(|(second, recorded)| SecondLatency {
                second,
                p50_ms: to_ms(recorded.value_at_quantile(0.50)),
                p99_ms: to_ms(recorded.value_at_quantile(0.99)),
            })
            .collect()
    }

    fn grow_to(&mut self, len: usize) {
        if self.seconds.len() < len {
            self.seconds.resize_with(len, second_recorder);
        }
    }
}

/// A second's latencies in nanoseconds to 2 significant figures: plenty for a chart, in
/// several times less memory than 3, which counts with a recorder per worker per second.
fn second_recorder() -> Histogram<u64> {
    Histogram::new(2).expect("2 significant figures are within hdrhistogram's range")
}
