//! What the server remembers: users, live tokens and whom each was issued
//! to, queued faults, the token requests being handled, and counters.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::device::Devices;
use crate::fault::Fault;
use crate::identity::Identity;
use crate::ids::{access_token, jwt_shaped};
use crate::knobs::Knobs;
use crate::sso::SsoConfig;
use crate::wire::{ApiStatus, Issued, LoginRequest};

pub(crate) const DEFAULT_DATABASE: &str = "system";
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
    /// SSO token exchanges (`/v1/sso_token`) received, good or bad.
    pub sso_exchanges: u64,
    /// Device grants (`/v1/sso_device_grant`) received, good or bad.
    pub device_grants: u64,
    /// Device grant polls (`/v1/sso_device_grant_verify`) received, whatever
    /// they were answered. A poll is not a token request.
    pub device_polls: u64,
    /// Token requests ([`token_requests`](Counters::token_requests))
    /// answered with a failure, injected faults included.
    pub failed_token_requests: u64,
    /// Execute requests with a valid token.
    pub queries_ok: u64,
    /// Execute requests with an expired, revoked or unknown token.
    pub queries_bad_token: u64,
    /// Execute requests without an `Authorization` header.
    pub queries_no_token: u64,
    /// Execute requests whose valid token was issued to another username,
    /// or for another database, than their
    /// [`IDENTITY_HEADER`](crate::IDENTITY_HEADER) names: a client that sent
    /// someone else's token. They are refused, and not counted in
    /// `queries_ok`.
    pub queries_wrong_identity: u64,
    /// The most token requests ([`token_requests`](Counters::token_requests))
    /// ever handled at once, each from its arrival until its answer is
    /// ready, the [`latency`](crate::MockOcient::latency) wait included: how
    /// far a client let its token requests overlap.
    pub peak_token_requests_in_flight: u64,
}

impl Counters {
    /// The requests injected faults apply to: logins, refreshes, SSO
    /// exchanges and device grants. Device polls are not among them.
    pub fn token_requests(&self) -> u64 {
        self.logins
            .saturating_add(self.refreshes)
            .saturating_add(self.sso_exchanges)
            .saturating_add(self.device_grants)
    }
}

/// What a token grants. Deadlines are `None` when the lifetime is too long
/// to represent, which means "never".
struct Session {
    /// Whom it was issued to: a refreshed token keeps its user, and takes
    /// the database the refresh names, else its own. An identity claimed on a
    /// query is held to these.
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
    /// The identity-provider tokens `/v1/sso_token` accepts.
    pub(crate) sso: SsoConfig,
    pub(crate) devices: Devices,
    /// Token requests being handled now; each [`InFlight`] holds one.
    token_requests_in_flight: u64,
}

/// The one [`State`] behind every clone of a `MockOcient` and every request
/// in flight: a clone a test keeps sees what a served clone did, and the
/// handlers need nothing of the mock but this.
#[derive(Clone)]
pub(crate) struct Shared(Arc<Mutex<State>>);

impl Shared {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new(State::new())))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take every later request down with it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a token request in, and its peak with it, until the guard
    /// returned is dropped.
    pub(crate) fn token_request_in_flight(&self) -> InFlight<'_> {
        let mut state = self.lock();
        let state = &mut *state;
        state.token_requests_in_flight += 1;
        let peak = &mut state.counters.peak_token_requests_in_flight;
        *peak = (*peak).max(state.token_requests_in_flight);
        InFlight(self)
    }
}

/// A token request being handled. It counts itself out when dropped rather
/// than when answered, so a request whose future is dropped before its
/// answer (a client giving up during the latency wait, a cancelled task, a
/// server shut down while a [`Fault::Hang`] holds it) leaves the count as
/// it found it.
pub(crate) struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.token_requests_in_flight = state.token_requests_in_flight.saturating_sub(1);
    }
}

/// The requests that count as token requests: faults and latency apply to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRoute {
    Login,
    Refresh,
    SsoExchange,
    DeviceGrant,
}

/// What an issued token looks like; the server tracks both kinds alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenShape {
    /// `mock.<generation>.<random>`.
    Opaque,
    /// Three base64url parts whose payload carries `sub` and `exp`.
    Jwt,
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
            sso: SsoConfig::default(),
            devices: Devices::default(),
            token_requests_in_flight: 0,
        }
    }

    /// Counts the request and takes the fault it is to get, if any.
    pub(crate) fn begin_token_request(&mut self, endpoint: TokenRoute) -> Option<Fault> {
        match endpoint {
            TokenRoute::Login => self.counters.logins += 1,
            TokenRoute::Refresh => self.counters.refreshes += 1,
            TokenRoute::SsoExchange => self.counters.sso_exchanges += 1,
            TokenRoute::DeviceGrant => self.counters.device_grants += 1,
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
        let database = creds
            .database
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        Ok(self.sign_in(creds.username, database, TokenShape::Opaque, now))
    }

    /// A token for someone already authenticated (by password or single
    /// sign-on): its refresh lifetime starts now.
    pub(crate) fn sign_in(
        &mut self,
        username: String,
        database: String,
        shape: TokenShape,
        now: Instant,
    ) -> Issued {
        let refresh_until = now.checked_add(self.knobs.refresh_lifetime);
        self.issue(username, database, shape, refresh_until, now)
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
        Ok(self.issue(username, database, TokenShape::Opaque, refresh_until, now))
    }

    pub(crate) fn live_tokens(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn revoke_all(&mut self) {
        self.sessions.clear();
    }

    pub(crate) fn token_requests_in_flight(&self) -> u64 {
        self.token_requests_in_flight
    }

    /// Whether a query may use `token`: it must be known and unexpired, and,
    /// if the test says whose query it is, issued to that identity. Only a
    /// valid token is held to the claim, so a stale one is refused for being
    /// stale, as it would be without the claim.
    pub(crate) fn check(
        &self,
        token: &str,
        claimed: Option<Identity<'_>>,
        now: Instant,
    ) -> Result<(), ApiStatus> {
        match self.sessions.get(token) {
            None => Err(ApiStatus::TOKEN_INVALID),
            Some(session) if session.expired(now) => Err(ApiStatus::TOKEN_EXPIRED),
            Some(session)
                if claimed.is_some_and(|who| !who.owns(&session.username, &session.database)) =>
            {
                Err(ApiStatus::WRONG_IDENTITY)
            }
            Some(_) => Ok(()),
        }
    }

    fn issue(
        &mut self,
        username: String,
        database: String,
        shape: TokenShape,
        refresh_until: Option<Instant>,
        now: Instant,
    ) -> Issued {
        self.prune(now);
        self.generation += 1;
        let lifetime = self.knobs.token_lifetime;
        let access_token = match shape {
            TokenShape::Opaque => access_token(self.generation),
            TokenShape::Jwt => jwt_shaped(self.generation, &username, &database, lifetime),
        };
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
mod tests;
