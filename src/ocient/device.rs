//! Single sign-on by device grant, for a tool on a machine without a browser: the server
//! hands out a code, the user approves it on another device, and the layer polls
//! `/v1/sso_device_grant_verify` until the approval (or the refusal) comes.

use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use super::answer::{self, Shape};
use super::device_code::{self, Prompt};
use super::OcientAuth;
use crate::endpoint::{Answer, FailureKind, TokenClient, TokenEndpoint};
use crate::error::{DeviceGrantEnd, Error};
use crate::grant::Grant;

/// How often to ask when the server answers at once that the user has not approved yet
/// (OAuth 2.0's device grant suggests 5 s).
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The longest wait `/v1/sso_device_grant_verify` takes, in seconds.
const MAX_SERVER_WAIT: u64 = 600;

impl OcientAuth {
    /// Signs in by device grant: asks for a code, prompts the user with it, then polls for
    /// the approval until it comes, the user is refused, or the approval timeout passes.
    pub(super) async fn sign_in_by_device(
        &self,
        prompt: &Prompt,
        client: &mut TokenClient<'_>,
    ) -> Result<Grant, Error> {
        let auth = self;
        let started = client.send(auth.device_grant_request()).await?;
        let code = device_code::read(&started, |text| auth.scrub(text))?;
        tracing::debug!("device sign-in waiting for the user's approval");
        prompt(&code);
        let mut poll = Poll {
            auth,
            deadline: Instant::now() + auth.approval_timeout,
            interval: POLL_INTERVAL,
        };
        loop {
            let sent_at = Instant::now();
            let server_wait = poll.server_wait(client.timeout());
            let request = auth.device_verify_request(&code.user_code, server_wait);
            let sent = client.send(request).await;
            // Why to ask again, if the approval may still come.
            let again = match poll.read(sent) {
                Read::Over(outcome) => return outcome,
                Read::Again(why) => why,
            };
            if Instant::now() >= poll.deadline {
                let reason = format!("no approval within {:?}", auth.approval_timeout);
                let timed_out = Error::device_grant(DeviceGrantEnd::TimedOut, &reason);
                return Err(again.unwrap_or(timed_out));
            }
            if let Some(error) = &again {
                tracing::debug!(%error, "device sign-in poll failed; asking again");
            }
            // A server that held the poll has waited already; one that answered at once is
            // asked again after the interval.
            client
                .sleep(poll.interval.saturating_sub(sent_at.elapsed()))
                .await;
        }
    }
}

/// Polling for the approval of one device code.
struct Poll<'a> {
    auth: &'a OcientAuth,
    deadline: Instant,
    /// The least time between two polls: longer each time the server asks to slow down.
    interval: Duration,
}

/// What came of one poll.
enum Read {
    /// A grant, or the end of the device grant.
    Over(Result<Grant, Error>),
    /// Ask again: the user has not decided yet, or (with the error) the server failed.
    Again(Option<Error>),
}

impl Poll<'_> {
    /// The seconds the server may hold a poll: what is left of the approval time, and less
    /// than the layer gives the request, so that the server's answer comes back in time
    /// (with a refresh timeout under two seconds, the one second the server takes at the
    /// least may be too long: that poll times out, and the next one is sent).
    fn server_wait(&self, request_timeout: Duration) -> u64 {
        let margin = (request_timeout / 4).max(Duration::from_secs(1));
        let for_the_server = request_timeout.saturating_sub(margin);
        let left = self.deadline.saturating_duration_since(Instant::now());
        let seconds = for_the_server.min(left).as_secs();
        seconds.clamp(1, MAX_SERVER_WAIT)
    }

    /// What came of a poll: a grant, the end, or another poll.
    fn read(&mut self, sent: Result<Answer, Error>) -> Read {
        match sent {
            Ok(answer) => match answer::pending(&answer) {
                Some(pending) => {
                    if pending.slow_down {
                        self.interval += POLL_INTERVAL;
                    }
                    Read::Again(None)
                }
                None => match self.verdict(answer) {
                    Err(error) if self.server_failed(&error) => Read::Again(Some(error)),
                    outcome => Read::Over(outcome),
                },
            },
            // The code stays good while the server is away: a new device grant would ask
            // the user again.
            Err(error) if self.server_failed(&error) => Read::Again(Some(error)),
            Err(error) => Read::Over(Err(error)),
        }
    }

    /// The grant an answer carries, or why there is none: a rejection by a server that
    /// failed stays one (another poll may get past it); any other ends the device grant.
    fn verdict(&self, answer: Answer) -> Result<Grant, Error> {
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

    /// Whether the server could not answer (unreachable, too slow, a 5xx or a 429), as the
    /// endpoint classifies every failure.
    fn server_failed(&self, error: &Error) -> bool {
        self.auth.classify(error) == FailureKind::Away
    }
}
