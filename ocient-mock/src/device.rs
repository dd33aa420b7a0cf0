//! The device grant: `POST /v1/sso_device_grant` hands out a user code, and
//! `POST /v1/sso_device_grant_verify` polls until the user signs in, as the
//! test decides with [`DeviceApproval`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::{BoxError, MockBody};
use crate::ids::user_code;
use crate::mock::MockOcient;
use crate::state::{TokenShape, DEFAULT_DATABASE};
use crate::wire::{json, read_json, require_json, ApiStatus, Failure, Issued};

/// Where the user would go to enter the code; nothing is served there.
const VERIFICATION_URI: &str = "https://idp.example/device";
/// Who an approved device grant signs in.
const DEVICE_USER: &str = "device-user";
/// How long a poll waits for a decision unless it says otherwise, and the
/// most it may ask for, in seconds, as the API documents.
const DEFAULT_TIMEOUT: u64 = 30;
const MAX_TIMEOUT: u64 = 600;

const GRANT_STARTED: ApiStatus = ApiStatus::new(0, "00000", "Device authorization initiated");
const APPROVED: ApiStatus = ApiStatus::AUTHENTICATED;
const NOT_YET: ApiStatus = ApiStatus::new(
    -1,
    "HYT00",
    "authorization_pending: the user has not approved yet",
);
const DENIED: ApiStatus = ApiStatus::new(-1, "28000", "access_denied: the user denied the sign-in");
const TIMED_OUT: ApiStatus = ApiStatus::new(-1, "HYT00", "device authorization timed out");

/// What `/v1/sso_device_grant_verify` answers, set with
/// [`MockOcient::set_device_approval`]: the user's decision, which a real
/// server learns from the identity provider.
///
/// An approved poll answers HTTP 200 with `{"access_token", "username":
/// "device-user", "database", "status"}`: a JWT-shaped token (its payload's
/// `exp` says when it expires) and no `expires_in`, as the OpenAPI document
/// shows. The server tracks the token like a login's. With
/// [`MockOcient::errors_in_band`], the refusals below are HTTP 200 carrying
/// the same status object.
///
/// # Example
///
/// ```rust
/// use ocient_mock::{DeviceApproval, MockOcient};
///
/// // The first two polls of a code hear "authorization_pending", the third
/// // gets a token.
/// let mock = MockOcient::new().device_approval(DeviceApproval::ApproveAtPoll(3));
/// // Later: the user gives up, and every poll held or to come is refused.
/// mock.set_device_approval(DeviceApproval::Deny);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceApproval {
    /// The default: the user has not decided. A poll is held, on tokio's
    /// clock, until a decision is set or its `timeout` elapses; then HTTP 408
    /// with `vendor_code` -1, `sql_state` `HYT00`.
    #[default]
    Pending,
    /// Polls of a user code before its n-th (counting from 1) answer at once
    /// HTTP 400, `vendor_code` -1, `sql_state` `HYT00`, `authorization_pending`;
    /// the n-th and later are approved.
    ApproveAtPoll(u32),
    /// Approved, from the first poll on; held polls are answered at once.
    Approve,
    /// HTTP 403, `vendor_code` -1, `sql_state` `28000`, `access_denied`, at
    /// once; held polls too.
    Deny,
}

/// How a poll ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Approved,
    NotYet,
    Denied,
    TimedOut,
}

impl DeviceApproval {
    /// What the `poll`-th poll of a code gets; `None` while it is to wait.
    fn verdict(self, poll: u32) -> Option<Verdict> {
        match self {
            Self::Pending => None,
            Self::ApproveAtPoll(approving) if poll < approving => Some(Verdict::NotYet),
            Self::ApproveAtPoll(_) | Self::Approve => Some(Verdict::Approved),
            Self::Deny => Some(Verdict::Denied),
        }
    }
}

/// The user codes handed out, and the decision polls wait on.
pub(crate) struct Devices {
    /// A `watch` rather than a plain field: setting it wakes every held poll,
    /// and a poll that goes away takes its receiver with it.
    approval: watch::Sender<DeviceApproval>,
    grants: HashMap<String, Grant>,
}

struct Grant {
    database: String,
    polls: u32,
}

impl Default for Devices {
    fn default() -> Self {
        Self {
            approval: watch::Sender::new(DeviceApproval::default()),
            grants: HashMap::new(),
        }
    }
}

impl Devices {
    fn start(&mut self, database: String) -> String {
        let mut code = user_code();
        while self.grants.contains_key(&code) {
            code = user_code();
        }
        let grant = Grant { database, polls: 0 };
        self.grants.insert(code.clone(), grant);
        code
    }

    /// Counts a poll of `code`: its number, from 1, and the grant's
    /// database; `None` for a code never handed out.
    fn poll(&mut self, code: &str) -> Option<(u32, String)> {
        let grant = self.grants.get_mut(code)?;
        grant.polls = grant.polls.saturating_add(1);
        Some((grant.polls, grant.database.clone()))
    }

    #[cfg(test)]
    pub(crate) fn held_polls(&self) -> usize {
        self.approval.receiver_count()
    }
}

impl fmt::Debug for Devices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Devices")
            .field("approval", &*self.approval.borrow())
            .field("grants", &self.grants.len())
            .finish()
    }
}

#[derive(Deserialize, Default)]
struct GrantRequest {
    database: Option<String>,
}

#[derive(Serialize)]
struct GrantAnswer {
    verification_uri_complete: String,
    verification_uri: &'static str,
    user_code: String,
    status: ApiStatus,
}

#[derive(Deserialize)]
struct PollRequest {
    user_code: String,
    database: Option<String>,
    /// A string in the OpenAPI document, a number in its example: either.
    timeout: Option<Value>,
}

/// A login's answer without `expires_in`, as the OpenAPI document shows it.
#[derive(Serialize)]
struct DeviceToken {
    access_token: String,
    username: String,
    database: String,
    status: ApiStatus,
}

impl From<Issued> for DeviceToken {
    fn from(issued: Issued) -> Self {
        Self {
            access_token: issued.access_token,
            username: issued.username,
            database: issued.database,
            status: APPROVED,
        }
    }
}

impl MockOcient {
    /// What device grant polls answer; [`DeviceApproval::Pending`] by default.
    #[must_use]
    pub fn device_approval(self, approval: DeviceApproval) -> Self {
        self.set_device_approval(approval);
        self
    }

    /// Sets the user's decision from now on, for every user code; polls
    /// being held hear it at once.
    pub fn set_device_approval(&self, approval: DeviceApproval) {
        self.lock().devices.approval.send_replace(approval);
    }

    pub(crate) async fn device_grant<B>(
        &self,
        headers: &HeaderMap,
        body: B,
    ) -> Result<Response<MockBody>, Failure>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        require_json(headers)?;
        let request: GrantRequest = read_json(body).await?.unwrap_or_default();
        let database = request
            .database
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let user_code = self.lock().devices.start(database);
        let answer = GrantAnswer {
            verification_uri_complete: format!("{VERIFICATION_URI}?code={user_code}"),
            verification_uri: VERIFICATION_URI,
            user_code,
            status: GRANT_STARTED,
        };
        Ok(json(StatusCode::OK, &answer))
    }

    pub(crate) async fn device_poll<B>(&self, headers: &HeaderMap, body: B) -> Response<MockBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        self.lock().counters.device_polls += 1;
        match self.verify(headers, body).await {
            Ok(token) => json(StatusCode::OK, &token),
            Err(failure) => failure.into_response(),
        }
    }

    async fn verify<B>(&self, headers: &HeaderMap, body: B) -> Result<DeviceToken, Failure>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        require_json(headers)?;
        let request: PollRequest = read_json(body).await?.ok_or_else(Failure::malformed_json)?;
        let deadline = Instant::now() + timeout_of(request.timeout.as_ref())?;
        let counted = self.lock().devices.poll(&request.user_code);
        let (poll, granted_for) = counted.ok_or_else(|| {
            Failure::protocol(StatusCode::BAD_REQUEST, "22000", "unknown user_code")
        })?;
        let verdict = self.decision(poll, deadline).await;
        let mut state = self.lock();
        let (http, status) = match verdict {
            Verdict::Approved => {
                let user = DEVICE_USER.to_owned();
                let database = request.database.unwrap_or(granted_for);
                let issued = state.sign_in(user, database, TokenShape::Jwt, Instant::now());
                return Ok(DeviceToken::from(issued));
            }
            Verdict::NotYet => (StatusCode::BAD_REQUEST, NOT_YET),
            Verdict::Denied => (StatusCode::FORBIDDEN, DENIED),
            Verdict::TimedOut => (StatusCode::REQUEST_TIMEOUT, TIMED_OUT),
        };
        let http = if state.knobs.errors_in_band {
            StatusCode::OK
        } else {
            http
        };
        Err(Failure { http, status })
    }

    /// Waits, until `deadline` at the latest, for a decision on the
    /// `poll`-th poll. The lock is never held across the wait: the receiver
    /// is taken under it, so a decision set after the look cannot be missed.
    async fn decision(&self, poll: u32, deadline: Instant) -> Verdict {
        loop {
            let mut changes = {
                let state = self.lock();
                let approval = *state.devices.approval.borrow();
                if let Some(verdict) = approval.verdict(poll) {
                    return verdict;
                }
                state.devices.approval.subscribe()
            };
            // The sender lives in the mock this poll holds, so `changed`
            // fails only at the deadline.
            let woken = tokio::time::timeout_at(deadline, changes.changed()).await;
            if !matches!(woken, Ok(Ok(()))) {
                return Verdict::TimedOut;
            }
        }
    }
}

/// The poll's `timeout`: whole seconds, 1 to 600, as a JSON number or string.
fn timeout_of(value: Option<&Value>) -> Result<Duration, Failure> {
    let seconds = match value {
        None => Some(DEFAULT_TIMEOUT),
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(text)) => text.trim().parse().ok(),
        Some(_) => None,
    };
    match seconds {
        Some(seconds @ 1..=MAX_TIMEOUT) => Ok(Duration::from_secs(seconds)),
        _ => Err(Failure::protocol(
            StatusCode::BAD_REQUEST,
            "22000",
            "timeout must be 1 to 600 seconds",
        )),
    }
}

#[cfg(test)]
mod tests;
