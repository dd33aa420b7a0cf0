//! What the server remembers: users, live tokens, queued faults and counters.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::fault::Fault;
use crate::ids::access_token;
use crate::knobs::Knobs;
use crate::wire::{ApiStatus, Issued, LoginRequest};

const DEFAULT_DATABASE: &str = "system";
/// Below this many stored tokens, dead ones are not worth a sweep.
const PRUNE_FLOOR: usize = 1024;

/// A snapshot of what the mock has been asked, from
/// [`MockOcient::counters`](crate::MockOcient::counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Login requests received, good or bad.
    pub logins: u64,
    /// Token refresh requests received, good or bad.
    pub refreshes: u64,
    /// Login and refresh requests answered with a failure, injected faults included.
    pub failed_token_requests: u64,
    /// Execute requests with a valid token.
    pub queries_ok: u64,
    /// Execute requests with an expired, revoked or unknown token.
    pub queries_bad_token: u64,
    /// Execute requests without an `Authorization` header.
    pub queries_no_token: u64,
}

impl Counters {
    /// Logins plus refreshes.
    pub fn token_requests(&self) -> u64 {
        self.logins.saturating_add(self.refreshes)
    }
}

/// What a token grants. Deadlines are `None` when the lifetime is too long
/// to represent, which means "never".
struct Session {
    username: String,
    database: String,
    expires_at: Option<Instant>,
    refresh_until: Option<Instant>,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        passed(self.expires_at, now)
    }

    /// Nothing can be done with it any more but log in again.
    fn dead(&self, now: Instant) -> bool {
        self.expired(now) && passed(self.refresh_until, now)
    }
}

pub(crate) struct State {
    pub(crate) knobs: Knobs,
    pub(crate) users: HashMap<String, String>,
    /// Keyed by the token itself.
    sessions: HashMap<String, Session>,
    pub(crate) generation: u64,
    prune_at: usize,
    /// A fault and how many more requests it applies to; counts are kept
    /// rather than copies so a huge `times` costs nothing.
    pub(crate) faults: VecDeque<(Fault, usize)>,
    pub(crate) counters: Counters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRoute {
    Login,
    Refresh,
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            knobs: Knobs::default(),
            users: HashMap::from([("jdoe".to_owned(), "secret".to_owned())]),
            sessions: HashMap::new(),
            generation: 0,
            prune_at: PRUNE_FLOOR,
            faults: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Counts the request and takes the fault it is to get, if any.
    pub(crate) fn begin_token_request(&mut self, endpoint: TokenRoute) -> Option<Fault> {
        match endpoint {
            TokenRoute::Login => self.counters.logins += 1,
            TokenRoute::Refresh => self.counters.refreshes += 1,
        }
        let fault = self.next_fault()?;
        self.counters.failed_token_requests += 1;
        Some(fault)
    }

    fn next_fault(&mut self) -> Option<Fault> {
        let (fault, remaining) = self.faults.front_mut()?;
        *remaining -= 1;
        if *remaining > 0 {
            return Some(fault.clone());
        }
        self.faults.pop_front().map(|(fault, _)| fault)
    }

    pub(crate) fn login(&mut self, creds: LoginRequest, now: Instant) -> Result<Issued, ApiStatus> {
        if self.users.get(&creds.username) != Some(&creds.password) {
            return Err(ApiStatus::BAD_CREDENTIALS);
        }
        let refresh_until = now.checked_add(self.knobs.refresh_lifetime);
        let database = creds
            .database
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        Ok(self.issue(creds.username, database, refresh_until, now))
    }

    /// The refresh deadline is checked before expiry: past it, no setting
    /// can make the token refreshable, so it is the more useful answer.
    pub(crate) fn refresh(
        &mut self,
        token: &str,
        database: Option<String>,
        now: Instant,
    ) -> Result<Issued, ApiStatus> {
        let old = self.sessions.get(token).ok_or(ApiStatus::TOKEN_INVALID)?;
        if passed(old.refresh_until, now) {
            return Err(ApiStatus::REFRESH_EXPIRED);
        }
        if old.expired(now) && !self.knobs.refresh_expired_tokens {
            return Err(ApiStatus::TOKEN_EXPIRED);
        }
        let username = old.username.clone();
        let database = database.unwrap_or_else(|| old.database.clone());
        let refresh_until = old.refresh_until;
        if !self.knobs.old_token_survives_refresh {
            self.sessions.remove(token);
        }
        Ok(self.issue(username, database, refresh_until, now))
    }

    pub(crate) fn live_tokens(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn revoke_all(&mut self) {
        self.sessions.clear();
    }

    pub(crate) fn check(&self, token: &str, now: Instant) -> Result<(), ApiStatus> {
        match self.sessions.get(token) {
            None => Err(ApiStatus::TOKEN_INVALID),
            Some(session) if session.expired(now) => Err(ApiStatus::TOKEN_EXPIRED),
            Some(_) => Ok(()),
        }
    }

    fn issue(
        &mut self,
        username: String,
        database: String,
        refresh_until: Option<Instant>,
        now: Instant,
    ) -> Issued {
        self.prune(now);
        self.generation += 1;
        let access_token = access_token(self.generation);
        let lifetime = self.knobs.token_lifetime;
        let session = Session {
            username: username.clone(),
            database: database.clone(),
            expires_at: now.checked_add(lifetime),
            refresh_until,
        };
        self.sessions.insert(access_token.clone(), session);
        Issued {
            access_token,
            username,
            database,
            expires_in: expires_in(lifetime),
            status: ApiStatus::AUTHENTICATED,
        }
    }

    /// Forgets tokens that can only ever be refused, so a long demo does not
    /// grow without bound; they then answer -1205 instead of -1208/-733.
    /// The threshold doubles so sweeping stays amortised O(1) per token.
    fn prune(&mut self, now: Instant) {
        if self.sessions.len() < self.prune_at {
            return;
        }
        self.sessions.retain(|_, session| !session.dead(now));
        self.prune_at = (self.sessions.len() * 2).max(PRUNE_FLOOR);
    }
}

fn passed(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|deadline| now >= deadline)
}

/// JSON carries whole seconds: rounding down could announce 0, which
/// clients read as "already expired", so round up and never go below 1.
fn expires_in(lifetime: Duration) -> u64 {
    let secs = lifetime
        .as_secs()
        .saturating_add(u64::from(lifetime.subsec_nanos() > 0));
    secs.clamp(1, i64::MAX as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;

    use super::PRUNE_FLOOR;
    use crate::mock::MockOcient;
    use crate::test_support::*;

    #[tokio::test]
    async fn refresh_issues_a_newer_token_and_keeps_the_old_one() {
        let mock = MockOcient::new();
        let first = login(&mock).await;
        let (status, answer) = refresh(&mock, &first).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
        let second = token_of(&answer);
        assert_ne!(first, second);
        assert!(generation_of(&second) > generation_of(&first));
        assert_eq!(mock.current_generation(), 2);
        assert_eq!(answer["database"], "system");
        assert_eq!(execute(&mock, &first).await, (StatusCode::OK, 0));
        assert_eq!(execute(&mock, &second).await, (StatusCode::OK, 0));
        let counters = mock.counters();
        assert_eq!(
            (counters.logins, counters.refreshes, counters.queries_ok),
            (1, 1, 2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expired_token_is_refused_for_execute_and_refresh() {
        let mock = MockOcient::new().token_lifetime(Duration::from_secs(10));
        let token = login(&mock).await;
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(execute(&mock, &token).await, (StatusCode::OK, 0));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            execute(&mock, &token).await,
            (StatusCode::UNAUTHORIZED, -1208)
        );
        let (status, answer) = refresh(&mock, &token).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -1208)
        );
        assert_eq!(answer["status"]["reason"], "security token expired");
        let counters = mock.counters();
        assert_eq!((counters.queries_ok, counters.queries_bad_token), (1, 1));
        assert_eq!(counters.failed_token_requests, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_token_can_be_refreshed_when_allowed() {
        let mock = MockOcient::new()
            .token_lifetime(Duration::from_secs(10))
            .refresh_expired_tokens(true);
        let token = login(&mock).await;
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(execute(&mock, &token).await.1, -1208, "expired for queries");
        let (status, answer) = refresh(&mock, &token).await;
        assert_eq!((status, vendor_code(&answer)), (StatusCode::OK, 0));
        assert_eq!(
            execute(&mock, &token_of(&answer)).await,
            (StatusCode::OK, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sub_second_lifetimes_expire_exactly_but_advertise_one_second() {
        let mock = MockOcient::new().token_lifetime(Duration::from_millis(500));
        let (_, answer) = send(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(answer["expires_in"], 1);
        let token = token_of(&answer);
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(execute(&mock, &token).await.1, 0);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(execute(&mock, &token).await.1, -1208);
        mock.set_token_lifetime(Duration::from_millis(2_001));
        let (_, answer) = send(&mock, login_request("jdoe", "secret")).await;
        assert_eq!(answer["expires_in"], 3);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_lifetime_counts_from_the_login() {
        let mock = MockOcient::new()
            .token_lifetime(Duration::from_secs(3600))
            .refresh_lifetime(Duration::from_secs(60));
        let first = login(&mock).await;
        tokio::time::advance(Duration::from_secs(59)).await;
        let (_, answer) = refresh(&mock, &first).await;
        assert_eq!(vendor_code(&answer), 0);
        let second = token_of(&answer);
        tokio::time::advance(Duration::from_secs(1)).await;
        let (status, answer) = refresh(&mock, &second).await;
        assert_eq!(
            (status, vendor_code(&answer)),
            (StatusCode::UNAUTHORIZED, -733)
        );
        assert_eq!(answer["status"]["sql_state"], "42502");
        // Still valid for queries: only refreshing is over.
        assert_eq!(execute(&mock, &second).await.1, 0);
    }

    #[tokio::test]
    async fn refresh_can_revoke_the_old_token() {
        let mock = MockOcient::new().old_token_survives_refresh(false);
        let first = login(&mock).await;
        let second = token_of(&refresh(&mock, &first).await.1);
        assert_eq!(execute(&mock, &first).await.1, -1205);
        assert_eq!(execute(&mock, &second).await.1, 0);
        assert_eq!(vendor_code(&refresh(&mock, &first).await.1), -1205);
    }

    #[tokio::test(start_paused = true)]
    async fn dead_tokens_are_pruned_but_live_ones_kept() {
        let mock = MockOcient::new()
            .token_lifetime(Duration::from_secs(1))
            .refresh_lifetime(Duration::from_secs(3600));
        // Expired but still refreshable: must survive the sweep.
        let keeper = login(&mock).await;
        mock.lock().knobs.refresh_lifetime = Duration::from_secs(1);
        let oldest = login(&mock).await;
        for _ in 2..PRUNE_FLOOR {
            login(&mock).await;
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(execute(&mock, &oldest).await.1, -1208);
        let fresh = login(&mock).await;
        assert_eq!(mock.lock().sessions.len(), 2);
        assert_eq!(execute(&mock, &fresh).await.1, 0);
        assert_eq!(execute(&mock, &oldest).await.1, -1205);
        assert_eq!(execute(&mock, &keeper).await.1, -1208);
    }

    // A sweep walks every token, so it runs only once the table has reached the floor or
    // doubled since the last one: a login stays amortised O(1). Until then a dead token is
    // still known, and answers "expired" rather than "invalid".
    #[tokio::test(start_paused = true)]
    async fn dead_tokens_are_swept_only_once_the_table_has_doubled() {
        let mock = MockOcient::new()
            .token_lifetime(Duration::from_secs(1))
            .refresh_lifetime(Duration::from_secs(1));
        let first = login(&mock).await;
        tokio::time::advance(Duration::from_secs(2)).await;
        for _ in 1..PRUNE_FLOOR {
            login(&mock).await;
        }
        assert_eq!(execute(&mock, &first).await.1, -1208, "below the floor");
        let last = login(&mock).await;
        assert_eq!(execute(&mock, &first).await.1, -1205, "swept at the floor");

        // PRUNE_FLOOR tokens outlived that sweep: the next one waits for twice as many.
        tokio::time::advance(Duration::from_secs(2)).await;
        for _ in 0..PRUNE_FLOOR / 2 {
            login(&mock).await;
        }
        assert_eq!(execute(&mock, &last).await.1, -1208, "not doubled yet");
    }

    #[tokio::test]
    async fn tokens_cannot_be_guessed_from_another_server() {
        let (one, other) = (MockOcient::new(), MockOcient::new());
        let token = login(&one).await;
        assert_ne!(token, login(&other).await);
        assert_eq!(execute(&other, &token).await.1, -1205);
    }
}
