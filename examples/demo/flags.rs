//! The demo's command line: its own flags, after the node's (`support::NodeFlags`).

#[cfg(feature = "metrics")]
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::support::{NodeFlags, NODE_USAGE};

/// The demo's own flags; the node's come from `support::NodeFlags`.
pub struct Run {
    pub seconds: u64,
    pub concurrency: usize,
    pub refresh_when_idle: bool,
    /// A token per user, for this many users of the embedded mock (`demo/users.rs`).
    pub users: Option<usize>,
    /// Where to write the latency chart.
    pub plot: Option<PathBuf>,
    /// Where to serve the metrics page.
    #[cfg(feature = "metrics")]
    pub metrics: Option<SocketAddr>,
}

/// Why the command line was refused.
#[derive(Debug)]
pub enum Refused {
    /// A flag that is wrong: say why, then the usage.
    Usage(String),
    /// A flag this build cannot honour: the one line says which command can.
    #[cfg(not(feature = "metrics"))]
    NotBuiltIn(String),
}

impl From<String> for Refused {
    fn from(message: String) -> Self {
        Refused::Usage(message)
    }
}

/// The node's flags and the demo's, from `args` (the command line without the program).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<(NodeFlags, Run), Refused> {
    let args: Vec<String> = args.into_iter().collect();
    // Before the node's flags are read: they would ask for a real node's password first.
    let given = |flag: &str| args.iter().any(|arg| arg == flag);
    if given("--users") && given("--url") {
        let why =
            "--users runs against the embedded mock, which knows every user's password: drop --url";
        return Err(why.to_string().into());
    }
    let (node, rest) = NodeFlags::parse(args)?;
    let run = parse_run(rest)?;
    if run.users.is_some() && run.plot.is_some() {
        let why = "--plot marks the installs of one token, and --users has one per user: drop one of them";
        return Err(why.to_string().into());
    }
    Ok((node, run))
}

fn parse_run(rest: Vec<String>) -> Result<Run, Refused> {
    let mut run = Run {
        seconds: 10,
        concurrency: 32,
        refresh_when_idle: false,
        users: None,
        plot: None,
        #[cfg(feature = "metrics")]
        metrics: None,
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
            "--users" => match value?.parse() {
                Ok(users) if users > 0 => run.users = Some(users),
                _ => return Err("--users: a number of users, at least 1".to_string().into()),
            },
            "--plot" => run.plot = Some(value?.into()),
            #[cfg(feature = "metrics")]
            "--metrics" => {
                run.metrics = Some(value?.parse().map_err(|e| format!("--metrics: {e}"))?)
            }
            #[cfg(not(feature = "metrics"))]
            "--metrics" => {
                let addr = value.unwrap_or_else(|_| "127.0.0.1:9000".into());
                return Err(Refused::NotBuiltIn(format!(
                    "--metrics needs the metrics feature: cargo run --example demo --features metrics -- --metrics {addr}"
                )));
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(run)
}

/// Says why the command line was refused, and exits 2.
pub fn exit_2(refused: Refused) -> ! {
    match refused {
        Refused::Usage(message) => eprintln!(
            "{message}\nusage: demo {NODE_USAGE} [--seconds N] [--concurrency N] [--refresh-when-idle] [--users N] [--plot FILE.svg] [--metrics ADDR]"
        ),
        #[cfg(not(feature = "metrics"))]
        Refused::NotBuiltIn(message) => eprintln!("{message}"),
    }
    std::process::exit(2)
}
