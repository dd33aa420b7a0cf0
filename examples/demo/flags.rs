//! The demo's command line: its own flags, after the node's (`support::NodeFlags`).

use std::path::PathBuf;

use crate::support::{NodeFlags, NODE_USAGE};

/// The demo's own flags; the node's come from `support::NodeFlags`.
pub struct Run {
    pub seconds: u64,
    pub concurrency: usize,
    pub refresh_when_idle: bool,
    /// Where to write the latency chart.
    pub plot: Option<PathBuf>,
}

/// The node's flags and the demo's, from `args` (the command line without the program).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<(NodeFlags, Run), String> {
    let (node, rest) = NodeFlags::parse(args)?;
    Ok((node, parse_run(rest)?))
}

fn parse_run(rest: Vec<String>) -> Result<Run, String> {
    let mut run = Run {
        seconds: 10,
        concurrency: 32,
        refresh_when_idle: false,
        plot: None,
    };
    let mut rest = rest.into_iter();
    while let Some(flag) = rest.next() {
        if flag == "--refresh-when-idle" {
            run.refresh_when_idle = true;
            continue;
        }
        let value = rest.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => run.seconds = value?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--concurrency" => {
                run.concurrency = value?.parse().map_err(|e| format!("--concurrency: {e}"))?
            }
            "--plot" => run.plot = Some(value?.into()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(run)
}

/// Says why the command line was refused, and the usage, and exits 2.
pub fn exit_2(message: String) -> ! {
    eprintln!(
        "{message}\nusage: demo {NODE_USAGE} [--seconds N] [--concurrency N] [--refresh-when-idle] [--plot FILE.svg]"
    );
    std::process::exit(2)
}
