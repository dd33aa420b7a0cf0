//! Single sign-on by device grant, for a tool on a machine without a browser: the server
//! hands out a code, the user approves it on another device, and the layer polls
//! `/v1/sso_device_grant_verify` until the approval (or the refusal) comes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;
use tokio::time::Instant;

use super::answer::{self, Shape};
use super::OcientAuth;
use crate::endpoint::{Answer, LoginStep};
use crate::error::{printable, DeviceGrantEnd, Error};
use crate::grant::Grant;

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

impl DeviceCode {
    /// A code to enter at `verification_uri`: for testing a prompt.
    pub fn new(verification_uri: impl Into<String>, user_code: impl Into<String>) -> Self {
        DeviceCode {
            verification_uri: verification_uri.into(),
            verification_uri_complete: None,
            user_code: user_code.into(),
        }
    }
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("verification_uri", &self.verification_uri)
            .field("user_code", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The user's prompt, shared by every clone of the `OcientAuth`.
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
        Err(error) => return LoginStep::done(Err(error)),
    };
    tracing::debug!("device sign-in waiting for the user's approval");
    prompt(&code);
    let poll = Poll {
        auth,
        user_code: code.user_code,
        deadline: Instant::now() + approval_timeout,
        approval_timeout,
        interval: POLL_INTERVAL,
    };
    poll.after(Duration::ZERO, answer.request_timeout)
}

/// Polling for the approval of one device code.
struct Poll<'a> {
    auth: &'a OcientAuth,
    user_code: String,
    deadline: Instant,
    approval_timeout: Duration,
    /// The least time between two polls: longer each time the server asks to slow down.
    interval: Duration,
}

impl<'a> Poll<'a> {
    /// The next poll, sent `wait` from now, for a request the layer gives `request_timeout`.
    fn after(self, wait: Duration, request_timeout: Duration) -> LoginStep<'a> {
        let server_wait = self.server_wait(request_timeout, wait);
        let (auth, user_code) = (self.auth, self.user_code.clone());
        let next = Box::pin(async move { Ok(auth.device_verify_request(&user_code, server_wait)) });
        let sent_at = Instant::now() + wait;
        LoginStep::then(next, move |sent| self.read(sent, sent_at, request_timeout)).after(wait)
    }

    /// The seconds the server may hold a poll: what is left of the approval time, and less
    /// than the layer gives the request, so that the server's answer comes back in time
    /// (with a refresh timeout under two seconds, the one second the server takes at the
    /// least may be too long: that poll times out, and the next one is sent).
    fn server_wait(&self, request_timeout: Duration, wait: Duration) -> u64 {
        let margin = (request_timeout / 4).max(Duration::from_secs(1));
        let for_the_server = request_timeout.saturating_sub(margin);
        let left = self
            .deadline
            .saturating_duration_since(Instant::now() + wait);
        let seconds = for_the_server.min(left).as_secs();
        seconds.clamp(1, MAX_SERVER_WAIT)
    }

    /// What came of a poll sent at `sent_at`: a grant, the end, or another poll.
    fn read(
        mut self,
        sent: Result<Answer<'_>, Error>,
        sent_at: Instant,
        request_timeout: Duration,
    ) -> LoginStep<'a> {
        // Why to ask again, if the approval may still come.
        let again = match sent {
            Ok(answer) => match answer::pending(&answer) {
                Some(pending) => {
                    if pending.slow_down {
                        self.interval += POLL_INTERVAL;
                    }
                    None
                }
                None => match self.verdict(answer) {
                    Err(error) if self.server_failed(&error) => Some(error),
                    outcome => return LoginStep::done(outcome),
                },
            },
            // The code stays good while the server is away: a new device grant would ask
            // the user again.
            Err(error) if self.server_failed(&error) => Some(error),
            Err(error) => return LoginStep::done(Err(error)),
        };
        if Instant::now() >= self.deadline {
            let reason = format!("no approval within {:?}", self.approval_timeout);
            let timed_out = Error::device_grant(DeviceGrantEnd::TimedOut, &reason);
            return LoginStep::done(Err(again.unwrap_or(timed_out)));
        }
        if let Some(error) = again {
            tracing::debug!(%error, "device sign-in poll failed; asking again");
        }
        // A server that held the poll has waited already; one that answered at once is
        // asked again after the interval.
        let wait = self.interval.saturating_sub(sent_at.elapsed());
        self.after(wait, request_timeout)
    }

    /// The grant an answer carries, or why there is none: a rejection by a server that
    /// failed stays one (another poll may get past it); any other ends the device grant.
    fn verdict(&self, answer: Answer<'_>) -> Result<Grant, Error> {
        let scrub = |text: &str| self.auth.scrub(text);
        answer::read(answer, Shape::SignIn, scrub).map_err(|error| match &error {
            // A node that has no device grant (404) denies nobody.
            Error::Rejected { reason, status, .. }
                if !self.server_failed(&error) && *status != StatusCode::NOT_FOUND =>
            {
                Error::device_grant(DeviceGrantEnd::Denied, reason)
            }
            _ => error,
        })
    }

    /// Whether the server could not answer: unreachable, too slow, a 5xx or a 429.
    fn server_failed(&self, error: &Error) -> bool {
        match error {
            Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::Rejected { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
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
        // Parsed so that a status object that does not parse leaves no code to take.
        #[allow(dead_code)]
        status: Option<answer::Status>,
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
    // Not taken from `verification_uri_complete`, which holds the user code.
    let verification_uri =
        field(started.verification_uri).ok_or_else(|| invalid("verification_uri is missing"))?;
    Ok(DeviceCode {
        verification_uri,
        verification_uri_complete,
        user_code,
    })
}
