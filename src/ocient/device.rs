//! Single sign-on by device grant, for a tool on a machine without a browser: the server
//! hands out a code, the user approves it on another device, and the layer polls
//! `/v1/sso_device_grant_verify` until the approval (or the refusal) comes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::answer::{self, Shape};
use super::OcientAuth;
use crate::endpoint::{Answer, LoginStep};
use crate::error::{printable, DeviceGrantEnd, Error};

/// How often to ask when the server answers at once that the user has not approved yet
/// (OAuth 2.0's device grant suggests 5 s).
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The longest wait `/v1/sso_device_grant_verify` takes, in seconds.
const MAX_SERVER_WAIT: u64 = 600;

/// What the user needs to approve the sign-in: where to go and the code to enter. Handed to
/// the prompt of [`OcientAuth::device_grant`](crate::OcientAuth::device_grant).
///
/// The server's text, without control characters (a terminal takes no orders from it).
/// `Debug` leaves out the user code.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceCode {
    /// Where the user goes to approve, e.g. `https://idp.example/device`.
    pub verification_uri: String,
    /// The same with the code filled in, when the server gave it: a link or QR code.
    pub verification_uri_complete: Option<String>,
    /// The code the user enters there.
    pub user_code: String,
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("verification_uri", &self.verification_uri)
            .field("user_code", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The prompt, as the layer keeps it.
pub(super) type Prompt = Arc<dyn Fn(&DeviceCode) + Send + Sync>;

/// A device grant just started: its answer holds the code for the user. Prompts the user,
/// then polls for the approval until `approval_timeout` has passed.
pub(super) fn started<'a>(
    auth: &'a OcientAuth,
    prompt: &Prompt,
    approval_timeout: Duration,
    answer: Answer<'_>,
) -> LoginStep<'a> {
    let code = match device_code(auth, &answer) {
        Ok(code) => code,
        Err(error) => return LoginStep::Done(Err(error)),
    };
    tracing::info!(uri = %code.verification_uri, "device sign-in waiting for approval");
    prompt(&code);
    let poll = Poll {
        auth,
        user_code: code.user_code,
        deadline: Instant::now() + approval_timeout,
        approval_timeout,
    };
    poll.after(Duration::ZERO, answer.request_timeout)
}

/// Polling for the approval of one device code.
struct Poll<'a> {
    auth: &'a OcientAuth,
    user_code: String,
    deadline: Instant,
    approval_timeout: Duration,
}

impl<'a> Poll<'a> {
    /// The next poll, sent `wait` from now, for a request the layer gives `request_timeout`.
    fn after(self, wait: Duration, request_timeout: Duration) -> LoginStep<'a> {
        // The wait counts against the request's time, so it takes at most half of it.
        let wait = wait.min(request_timeout / 2);
        let server_wait = self.server_wait(request_timeout, wait);
        let (auth, user_code) = (self.auth, self.user_code.clone());
        let next = Box::pin(async move {
            tokio::time::sleep(wait).await;
            Ok(auth.device_verify_request(&user_code, server_wait))
        });
        let sent_at = Instant::now() + wait;
        LoginStep::then(next, move |answer| self.read(answer, sent_at))
    }

    /// The seconds the server may hold a poll: what is left of the approval time, and less
    /// than the layer gives the request, so that the server's answer comes back in time.
    fn server_wait(&self, request_timeout: Duration, wait: Duration) -> u64 {
        let margin = (request_timeout / 4).max(Duration::from_secs(1));
        let for_the_server = request_timeout.saturating_sub(wait + margin);
        let left = self
            .deadline
            .saturating_duration_since(Instant::now() + wait);
        let seconds = for_the_server.min(left).as_secs();
        seconds.clamp(1, MAX_SERVER_WAIT)
    }

    /// The answer to a poll sent at `sent_at`: a grant, the end, or another poll.
    fn read(self, answer: Answer<'_>, sent_at: Instant) -> LoginStep<'a> {
        let scrub = |text: &str| self.auth.scrub(text);
        if !answer::is_pending(&answer) || has_token(&answer) {
            return LoginStep::Done(answer::read(answer, Shape::SignIn, scrub).map_err(denied));
        }
        if Instant::now() >= self.deadline {
            let reason = format!("no approval within {:?}", self.approval_timeout);
            return LoginStep::Done(Err(Error::device_grant(DeviceGrantEnd::TimedOut, &reason)));
        }
        tracing::debug!("device sign-in not approved yet; asking again");
        // A server that held the poll has waited already; one that answered at once is
        // asked again after the interval.
        let wait = POLL_INTERVAL.saturating_sub(sent_at.elapsed());
        let request_timeout = answer.request_timeout;
        self.after(wait, request_timeout)
    }
}

/// A rejected poll ends the device grant as denied, unless the server failed (a 5xx, a
/// 429): that stays a rejection, which another attempt or node may get past.
fn denied(error: Error) -> Error {
    match &error {
        Error::Rejected { status, reason, .. }
            if !status.is_server_error() && status.as_u16() != 429 =>
        {
            Error::device_grant(DeviceGrantEnd::Denied, reason)
        }
        _ => error,
    }
}

/// Whether the answer carries a token, so that it is no "not yet" whatever it says.
fn has_token(answer: &Answer<'_>) -> bool {
    #[derive(Deserialize)]
    struct Token {
        access_token: Option<serde_json::Value>,
        id_token: Option<serde_json::Value>,
    }
    answer::parse_object::<Token>(answer.body)
        .is_ok_and(|t| t.access_token.is_some() || t.id_token.is_some())
}

/// The longest verification URI or user code taken from the server.
const MAX_FIELD: usize = 2048;

/// The code for the user, from the answer to `/v1/sso_device_grant`.
fn device_code(auth: &OcientAuth, answer: &Answer<'_>) -> Result<DeviceCode, Error> {
    if let Some(rejection) = answer::rejection(answer, |text| auth.scrub(text)) {
        return Err(rejection);
    }
    #[derive(Deserialize)]
    struct Started {
        verification_uri: Option<String>,
        verification_uri_complete: Option<String>,
        user_code: Option<String>,
    }
    let invalid = |reason: &str| Error::invalid_response(answer.exchange, reason);
    let started = answer::parse_object::<Started>(answer.body)
        .map_err(|_| invalid("not a device grant answer"))?;
    let field = |value: Option<String>| {
        value
            .map(|text| printable(text.trim()))
            .filter(|text| !text.is_empty() && text.len() <= MAX_FIELD)
    };
    let user_code = field(started.user_code).ok_or_else(|| invalid("user_code is missing"))?;
    let verification_uri_complete = field(started.verification_uri_complete);
    let verification_uri = field(started.verification_uri)
        .or_else(|| verification_uri_complete.clone())
        .ok_or_else(|| invalid("verification_uri is missing"))?;
    Ok(DeviceCode {
        verification_uri,
        verification_uri_complete,
        user_code,
    })
}
