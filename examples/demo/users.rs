//! `--users N`: a token per user. The embedded mock knows N users, `user-0` to `user-{N-1}`,
//! each with a password of their own; the client wears `PerIdentityLayer` instead of
//! `TokenRefreshLayer`; each query goes out as the next user in turn, named twice: in the
//! request's extensions, where the layer looks for whose token to put on it, and in the
//! mock's `x-mock-identity` header, so that the mock refuses (and counts) a query that
//! carries another user's token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use ocient_mock::{MockOcient, MockServer, IDENTITY_HEADER};
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder};
use tower_token_refresh::{PerIdentity, PerIdentityLayer};

use crate::flags::Run;
use crate::latency::Latencies;
use crate::support::Node;
use crate::traffic::{drive, Stats};
use crate::{query, Counted, Query, Report};

/// Whose query it is, as an application puts it in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct User(Arc<str>);

/// The run's users, in the order they take turns.
pub struct Users(Arc<[User]>);

/// What a run with `--users` saw, for the summary, `main` and the tests.
#[derive(Debug)]
pub struct Summary {
    pub users: u64,
    /// Sent by the layer: one per user, when each user's token is kept as it should be.
    pub logins: u64,
    pub refreshes: u64,
    /// Queries the mock answered with their own user's token.
    pub queries_ok: u64,
    /// Queries the mock refused as sent with another user's token: none, ever.
    pub wrong_identity: u64,
    /// The layer's identities at the end (`PerIdentity::status`).
    pub held: usize,
    pub usable: usize,
}

impl Summary {
    /// One login per user, and never another user's token.
    pub fn held_up(&self) -> bool {
        self.logins == self.users && self.wrong_identity == 0
    }
}

/// Each user's own password, as the mock knows it and the layer's endpoint sends it.
fn password(user: &str) -> String {
    format!("{user}-password")
}

impl Users {
    pub fn new(users: usize) -> Self {
        let named = |u| User(format!("user-{u}").into());
        Users((0..users).map(named).collect())
    }

    /// `mock`, knowing every user's password.
    pub fn register(&self, mock: MockOcient) -> MockOcient {
        let users = self.0.iter();
        users.fold(mock, |mock, user| mock.user(&*user.0, password(&user.0)))
    }

    /// The run with a token per user, through one `PerIdentityLayer`.
    pub async fn run(
        &self,
        node: &Node,
        run: &Run,
        client: Counted,
        target: &str,
    ) -> Result<Report, BoxError> {
        let start = Instant::now();
        // Each user's endpoint: the node's (its address, database, HTTPS rules), signing in
        // with that user's credentials.
        let auth = node.auth.clone();
        let layer = PerIdentityLayer::new(move |user: &User| {
            auth.clone().credentials(&*user.0, password(&user.0))
        })
        .refresh_when_idle(run.refresh_when_idle)
        // Holds them all: past its cap the layer would drop the least recently used, whose
        // next query would then log in again.
        .max_identities(self.0.len());
        let stats = Arc::clone(&client.stats);
        let service = ServiceBuilder::new().layer(layer).service(client);
        let query = self.in_turn(target);
        // The mock's token generation counts every user's tokens: no one token's, so none.
        let (latencies, by_second) = drive(&service, query, &stats, run, start, None).await?;
        self.settle(&service).await;
        println!("\r{}", stats.line(None, &latencies));
        let mock = node.mock.as_ref().expect("--users runs against the mock");
        let summary = self.summarize(&service, &stats, &latencies, mock);
        Ok(Report {
            stats,
            installs: Vec::new(),
            by_second,
            users: Some(summary),
        })
    }

    /// Queries to `target`, each from the next user in turn.
    fn in_turn(&self, target: &str) -> Query {
        let (users, target) = (Arc::clone(&self.0), target.to_owned());
        let next = AtomicUsize::new(0);
        Arc::new(move || {
            let user = &users[next.fetch_add(1, Ordering::Relaxed) % users.len()];
            let mut request = query(&target);
            let claim = HeaderValue::from_str(&user.0).expect("user names are plain ASCII");
            request.headers_mut().insert(IDENTITY_HEADER, claim);
            request.extensions_mut().insert(user.clone());
            request
        })
    }

    /// Waits, a second at most, for the refreshes the last queries started, so that the
    /// summary counts their tokens.
    async fn settle<S>(&self, service: &PerIdentity<S, User>) {
        let refreshing = |user| service.status_of(user).is_some_and(|s| s.refreshing);
        let settled = async {
            while self.0.iter().any(refreshing) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), settled).await;
    }

    fn summarize<S>(
        &self,
        service: &PerIdentity<S, User>,
        stats: &Stats,
        latencies: &Latencies,
        mock: &MockServer,
    ) -> Summary {
        let counters = mock.mock().counters();
        let identities = service.status();
        let summary = Summary {
            users: self.0.len() as u64,
            logins: stats.logins.load(Ordering::Relaxed),
            refreshes: stats.refreshes.load(Ordering::Relaxed),
            queries_ok: counters.queries_ok,
            wrong_identity: counters.queries_wrong_identity,
            held: identities.held,
            usable: identities.usable,
        };
        let [p50, p99] = latencies.percentiles();
        println!("\nsummary");
        println!("  users            {}", summary.users);
        println!("  requests ok      {}", stats.ok.load(Ordering::Relaxed));
        println!(
            "  requests failed  {}",
            stats.failed.load(Ordering::Relaxed)
        );
        println!("  logins           {} (one per user)", summary.logins);
        println!("  refreshes        {}", summary.refreshes);
        println!("  latency p50/p99  {p50} / {p99}");
        println!(
            "  server saw       {} queries with their user's own token, {} with another user's",
            summary.queries_ok, summary.wrong_identity
        );
        println!(
            "  identities       {} held, {} with a usable token",
            summary.held, summary.usable
        );
        if summary.logins != summary.users {
            eprintln!(
                "\n{} logins for {} users: each user's token should be kept, from one login",
                summary.logins, summary.users
            );
        }
        if summary.wrong_identity > 0 {
            eprintln!(
                "\n{} queries went out with another user's token",
                summary.wrong_identity
            );
        }
        summary
    }
}
