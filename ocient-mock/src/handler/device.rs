//! The device grant's endpoints: `POST /v1/sso_device_grant` hands out a
//! user code, and `POST /v1/sso_device_grant_verify` polls until the user
//! signs in. What the user decides, and the codes handed out, are state
//! (`device.rs`); this is how the API asks for them and answers.

use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::body::{BoxError, MockBody};
use crate::device::Verdict;
use crate::state::{Shared, TokenShape, DEFAULT_DATABASE};
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

/// `POST /v1/sso_device_grant`: a token request, so faults and latency
/// have been applied by the router already.
pub(super) async fn grant<B>(
    shared: &Shared,
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
    let user_code = shared.lock().devices.start(database);
    let answer = GrantAnswer {
        verification_uri_complete: format!("{VERIFICATION_URI}?code={user_code}"),
        verification_uri: VERIFICATION_URI,
        user_code,
        status: GRANT_STARTED,
    };
    Ok(json(StatusCode::OK, &answer))
}

/// `POST /v1/sso_device_grant_verify`: not a token request, so counted
/// here, and never faulted or delayed.
pub(super) async fn poll<B>(shared: &Shared, headers: &HeaderMap, body: B) -> Response<MockBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    shared.lock().counters.device_polls += 1;
    match verify(shared, headers, body).await {
        Ok(token) => json(StatusCode::OK, &token),
        Err(failure) => failure.into_response(),
    }
}

async fn verify<B>(shared: &Shared, headers: &HeaderMap, body: B) -> Result<DeviceToken, Failure>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    require_json(headers)?;
    let request: PollRequest = read_json(body).await?.ok_or_else(Failure::malformed_json)?;
    let deadline = Instant::now() + timeout_of(request.timeout.as_ref())?;
    let counted = shared.lock().devices.poll(&request.user_code);
    let (poll, granted_for) = counted
        .ok_or_else(|| Failure::protocol(StatusCode::BAD_REQUEST, "22000", "unknown user_code"))?;
    let verdict = decision(shared, poll, deadline).await;
    let mut state = shared.lock();
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

/// Waits, until `deadline` at the latest, for a decision on the `poll`-th
/// poll. The lock is never held across the wait: the receiver is taken
/// under it, so a decision set after the look cannot be missed.
async fn decision(shared: &Shared, poll: u32, deadline: Instant) -> Verdict {
    loop {
        let mut changes = match shared.lock().devices.verdict(poll) {
            Ok(verdict) => return verdict,
            Err(changes) => changes,
        };
        // The sender lives in the state this poll holds a handle to, so
        // `changed` fails only at the deadline.
        let woken = tokio::time::timeout_at(deadline, changes.changed()).await;
        if !matches!(woken, Ok(Ok(()))) {
            return Verdict::TimedOut;
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
