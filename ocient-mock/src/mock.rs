//! [`MockOcient`]: building one, the knobs a test turns while it runs, and
//! the tower `Service` whose calls go to the router (`handler.rs`) with the
//! shared state. The handlers and the state they work on never name the
//! mock, so they can be read, and changed, without it.

use std::convert::Infallible;
use std::fmt;
use std::sync::MutexGuard;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;

use crate::body::{BoxError, MockBody};
use crate::device::DeviceApproval;
use crate::fault::Fault;
use crate::handler::{self, ResponseFuture};
#[cfg(feature = "sso")]
use crate::jwks::TrustedIssuer;
use crate::sso::SsoAnswer;
use crate::state::{Counters, Shared, State};

/// An in-memory Ocient HTTP Query API.
///
/// Cheap to clone: clones share users, tokens, knobs and counters, so a
/// clone kept by a test observes a server started from another clone.
#[derive(Clone)]
pub struct MockOcient {
    shared: Shared,
}

impl MockOcient {
    /// One user `jdoe` / `secret`, tokens valid 1 hour and refreshable for
    /// 24 hours after login, no latency, failures answered as HTTP 401.
    pub fn new() -> Self {
        Self {
            shared: Shared::new(),
        }
    }

    /// Adds a user, replacing the password of an existing one.
    #[must_use]
    pub fn user(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.lock().users.insert(username.into(), password.into());
        self
    }

    /// How long tokens issued from now on are valid. The server expires them
    /// after exactly `lifetime`; `expires_in` says it in whole seconds,
    /// rounded up and at least 1.
    #[must_use]
    pub fn token_lifetime(self, lifetime: Duration) -> Self {
        self.set_token_lifetime(lifetime);
        self
    }

    /// How long after its login a token, and every token refreshed from it,
    /// can still be refreshed; past that a refresh gets -733.
    #[must_use]
    pub fn refresh_lifetime(self, lifetime: Duration) -> Self {
        self.lock().knobs.refresh_lifetime = lifetime;
        self
    }

    /// Delay before answering a token request: a login, token refresh, SSO
    /// exchange or device grant (not a device grant poll). It is a
    /// `tokio::time::sleep`, so a paused clock drives it.
    #[must_use]
    pub fn latency(self, latency: Duration) -> Self {
        self.set_latency(latency);
        self
    }

    /// `true`: authentication failures are HTTP 200 with the non-zero
    /// `vendor_code`, instead of HTTP 401; so are a device grant poll's
    /// refusals, instead of HTTP 400, 403 or 408.
    #[must_use]
    pub fn errors_in_band(self, yes: bool) -> Self {
        self.lock().knobs.errors_in_band = yes;
        self
    }

    /// `true`: an expired token can still be refreshed while inside its
    /// refresh lifetime. Default `false`: refreshing it gets -1208.
    #[must_use]
    pub fn refresh_expired_tokens(self, yes: bool) -> Self {
        self.lock().knobs.refresh_expired_tokens = yes;
        self
    }

    /// Default `true`: a token stays valid until it expires. `false`:
    /// refreshing a token revokes it.
    #[must_use]
    pub fn old_token_survives_refresh(self, yes: bool) -> Self {
        self.lock().knobs.old_token_survives_refresh = yes;
        self
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().knobs.token_lifetime = lifetime;
    }

    /// Sets a user's password from now on, as a secret manager rotating it
    /// would: the next logins must use the new one. Tokens already issued
    /// stay valid.
    pub fn set_password(&self, username: impl Into<String>, password: impl Into<String>) {
        self.lock().users.insert(username.into(), password.into());
    }

    /// Changes the latency of token requests that arrive from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().knobs.latency = latency;
    }

    /// The next `times` token requests (logins, token refreshes, SSO
    /// exchanges and device grants, not device grant polls) get `fault`
    /// instead of normal handling. Faults queue up behind ones already set;
    /// each request still counts as what it asked for, and as a failure.
    pub fn fail_token_requests(&self, fault: Fault, times: usize) {
        if times > 0 {
            self.lock().faults.push_back((fault, times));
        }
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every token issued so far becomes invalid (-1205).
    pub fn revoke_all(&self) {
        self.lock().revoke_all();
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.lock().counters
    }

    /// How many token requests (logins, refreshes, SSO exchanges, device
    /// grants) are being handled now, each from its arrival until its answer
    /// is ready, the [`latency`](Self::latency) wait included. A request
    /// whose future is dropped before that (a cancelled call, a server shut
    /// down) leaves the count then. The most there ever were is
    /// [`Counters::peak_token_requests_in_flight`].
    pub fn token_requests_in_flight(&self) -> u64 {
        self.lock().token_requests_in_flight()
    }

    /// How many tokens have been issued; the last one is
    /// `mock.<generation>.<random>`, or a JWT-shaped token whose payload's
    /// `jti` is that.
    pub fn current_generation(&self) -> u64 {
        self.lock().generation
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

// Single sign-on: what `/v1/sso_token` trusts and answers, and what the user
// decides for the device grant. The state they set is in sso.rs and device.rs.
impl MockOcient {
    /// The identity-provider tokens `/v1/sso_token` accepts, as `id_token`
    /// or `access_token` alike, each signing in the user `sso-user`. Replaces
    /// the tokens set before. No feature is needed: the mock compares them
    /// as strings, so any string will do.
    #[must_use]
    pub fn sso_tokens(self, tokens: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.set_sso_tokens(tokens);
        self
    }

    /// Replaces the accepted identity-provider tokens from now on, as an
    /// identity provider revoking or rotating them would. Ocient tokens
    /// already issued stay valid.
    pub fn set_sso_tokens(&self, tokens: impl IntoIterator<Item = impl Into<String>>) {
        let tokens = tokens.into_iter().map(Into::into).collect();
        self.lock().sso.set_tokens(tokens);
    }

    /// How a successful `/v1/sso_token` answers; [`SsoAnswer::LikeLogin`]
    /// by default.
    #[must_use]
    pub fn sso_answer(self, answer: SsoAnswer) -> Self {
        self.set_sso_answer(answer);
        self
    }

    /// Changes how `/v1/sso_token` answers from now on.
    pub fn set_sso_answer(&self, answer: SsoAnswer) {
        self.lock().knobs.sso_answer = answer;
    }

    /// `/v1/sso_token` also accepts JWTs this issuer signed: a signature
    /// that verifies against one of its keys, `iss` equal to its issuer,
    /// `aud` holding its audience if it has one, an `exp` still ahead and no
    /// `nbf` still to come. The JWT's `sub` is the user signed in. Trusting
    /// an issuer of the same name again replaces its keys, as a key rotation
    /// would.
    #[cfg(feature = "sso")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sso")))]
    #[must_use]
    pub fn trust_issuer(self, issuer: TrustedIssuer) -> Self {
        self.lock().sso.trust(issuer);
        self
    }

    /// What device grant polls answer; [`DeviceApproval::Pending`] by default.
    #[must_use]
    pub fn device_approval(self, approval: DeviceApproval) -> Self {
        self.set_device_approval(approval);
        self
    }

    /// Sets the user's decision from now on, for every user code; polls
    /// being held hear it at once.
    pub fn set_device_approval(&self, approval: DeviceApproval) {
        self.lock().devices.set_approval(approval);
    }
}

/// In process, the same answers as over HTTP from [`serve`](MockOcient::serve).
// Each call goes to the router with a handle on the shared state: the
// handlers never see the mock.
impl<B> tower_service::Service<Request<B>> for MockOcient
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<MockBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        handler::call(self.shared.clone(), request)
    }
}

impl Default for MockOcient {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MockOcient {
    /// Knobs, user names and counters; never a password or a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        let mut users: Vec<&str> = state.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        let pending_faults = state
            .faults
            .iter()
            .fold(0_usize, |sum, (_, times)| sum.saturating_add(*times));
        f.debug_struct("MockOcient")
            .field("users", &users)
            .field("knobs", &state.knobs)
            .field("generation", &state.generation)
            .field("live_tokens", &state.live_tokens())
            .field("pending_faults", &pending_faults)
            .field("sso", &state.sso)
            .field("devices", &state.devices)
            .field(
                "token_requests_in_flight",
                &state.token_requests_in_flight(),
            )
            .field("counters", &state.counters)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::MockOcient;
    use crate::test_support::*;

    #[tokio::test]
    async fn revoke_all_invalidates_every_issued_token() {
        let mock = MockOcient::new();
        let first = login(&mock).await;
        let second = token_of(&refresh(&mock, &first).await.1);
        mock.revoke_all();
        assert_eq!(
            execute(&mock, &first).await,
            (StatusCode::UNAUTHORIZED, -1205)
        );
        assert_eq!(execute(&mock, &second).await.1, -1205);
        assert_eq!(vendor_code(&refresh(&mock, &second).await.1), -1205);
        let third = login(&mock).await;
        assert_eq!(execute(&mock, &third).await.1, 0);
        assert_eq!(generation_of(&third), 3);
    }

    #[tokio::test]
    async fn debug_output_never_shows_passwords_or_tokens() {
        let mock = MockOcient::new().user("alice", "hunter2");
        let token = login(&mock).await;
        let printed = format!("{mock:?}");
        assert!(
            printed.contains("alice") && printed.contains("logins: 1"),
            "{printed}"
        );
        for secret in ["secret", "hunter2", token.as_str()] {
            assert!(!printed.contains(secret), "{printed}");
        }
        let response = call(&mock, login_request("jdoe", "secret")).await;
        let printed = format!("{:?}", response.body());
        assert!(!printed.contains("mock."), "{printed}");
    }

    #[tokio::test]
    async fn debug_output_counts_the_tokens_still_known() {
        let mock = MockOcient::new();
        let first = login(&mock).await;
        refresh(&mock, &first).await;
        assert!(format!("{mock:?}").contains("live_tokens: 2"), "{mock:?}");
        mock.revoke_all();
        assert!(format!("{mock:?}").contains("live_tokens: 0"), "{mock:?}");
    }
}
