//! Who logs in with a password: a fixed username and password, or a provider asked at each
//! login.

use super::provider::Provider;
use crate::error::Error;

#[derive(Clone)]
pub(super) enum Credentials {
    Fixed { username: String, password: String },
    Provided(Provider<(String, String)>),
}

impl Credentials {
    /// The username and password to log in with now.
    pub(super) async fn get(&self) -> Result<(String, String), Error> {
        match self {
            Credentials::Fixed { username, password } => Ok((username.clone(), password.clone())),
            Credentials::Provided(provider) => provider.get(|(_, password)| password).await,
        }
    }

    /// The password in use, as far as it is known: to scrub from the server's words.
    pub(super) fn password(&self) -> Option<String> {
        match self {
            Credentials::Fixed { password, .. } => Some(password.clone()),
            Credentials::Provided(provider) => provider.last_secret(),
        }
    }

    /// What `Debug` may show: the username when it is fixed, never a password.
    pub(super) fn shown(&self) -> (&str, &'static str) {
        match self {
            Credentials::Fixed { username, .. } => (username, "<redacted>"),
            Credentials::Provided(_) => ("<provided>", "<provided>"),
        }
    }
}
