//! What the user needs to approve a device grant, read from the node's answer: the code
//! and where to enter it, cleaned of anything a terminal would take as an order.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::answer;
use crate::endpoint::Answer;
use crate::error::{printable, Error};

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

/// The code for the user, from the answer to `/v1/sso_device_grant`; `scrub` cleans the
/// server's words of any secret before an error repeats them.
/// The longest verification URI or user code taken from the server.
const MAX_FIELD: usize = 2048;

pub(super) fn read(answer: &Answer, scrub: impl Fn(&str) -> String) -> Result<DeviceCode, Error> {
    if let Some(rejection) = answer::rejection(answer, scrub) {
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
    let started = answer::parse_object::<Started>(&answer.body)
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
