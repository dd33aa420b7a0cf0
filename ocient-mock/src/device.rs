//! The device grant's state: the user's decision, [`DeviceApproval`], which
//! the test sets, and the user codes handed out, each with its polls. The
//! endpoints that hand out codes and poll them are in `handler/device.rs`.

use std::collections::HashMap;
use std::fmt;

use tokio::sync::watch;

use crate::ids::user_code;

/// What `/v1/sso_device_grant_verify` answers, set with
/// [`MockOcient::set_device_approval`](crate::MockOcient::set_device_approval):
/// the user's decision, which a real server learns from the identity provider.
///
/// An approved poll answers HTTP 200 with `{"access_token", "username":
/// "device-user", "database", "status"}`: a JWT-shaped token (its payload's
/// `exp` says when it expires) and no `expires_in`, as the OpenAPI document
/// shows. The server tracks the token like a login's. With
/// [`MockOcient::errors_in_band`](crate::MockOcient::errors_in_band), the
/// refusals below are HTTP 200 carrying the same status object.
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
pub(crate) enum Verdict {
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
    /// Sets the user's decision for every code; it wakes the polls held.
    pub(crate) fn set_approval(&mut self, approval: DeviceApproval) {
        self.approval.send_replace(approval);
    }

    /// A fresh user code for a grant on `database`.
    pub(crate) fn start(&mut self, database: String) -> String {
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
    pub(crate) fn poll(&mut self, code: &str) -> Option<(u32, String)> {
        let grant = self.grants.get_mut(code)?;
        grant.polls = grant.polls.saturating_add(1);
        Some((grant.polls, grant.database.clone()))
    }

    /// What the `poll`-th poll of a code gets or, while the user has not
    /// decided, a receiver that hears the decision when it is set. Both come
    /// from one look at the decision, so one set after it is not missed.
    pub(crate) fn verdict(&self, poll: u32) -> Result<Verdict, watch::Receiver<DeviceApproval>> {
        let approval = *self.approval.borrow();
        approval
            .verdict(poll)
            .ok_or_else(|| self.approval.subscribe())
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

#[cfg(test)]
mod tests;
