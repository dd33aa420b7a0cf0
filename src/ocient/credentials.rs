//! Who logs in: a fixed username and password, or a provider asked at each login, so a
//! password rotated in a secret manager or a mounted file is picked up without a restart.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{BoxError, Error, ProviderError};

/// What a provider's future resolves to.
type Provided = Result<(String, String), BoxError>;

/// A provider as the layer keeps it: a closure making a boxed future.
type Provider = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Provided> + Send>> + Send + Sync>;

#[derive(Clone)]
pub(super) enum Credentials {
    Fixed {
        username: String,
        password: String,
    },
    Provided {
        provider: Provider,
        /// The password of the last login, so the server's echo of it can be scrubbed.
        last_password: Arc<Mutex<Option<String>>>,
    },
}

impl Credentials {
    pub(super) fn provided<F, Fut>(provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Provided> + Send + 'static,
    {
        Credentials::Provided {
            provider: Arc::new(move || Box::pin(provider())),
            last_password: Arc::default(),
        }
    }

    /// The username and password to log in with now.
    pub(super) async fn get(&self) -> Result<(String, String), Error> {
        match self {
            Credentials::Fixed { username, password } => Ok((username.clone(), password.clone())),
            Credentials::Provided {
                provider,
                last_password,
            } => {
                let (username, password) = provider().await.map_err(|source| Error::Provider {
                    source: ProviderError::new(source),
                })?;
                let mut last = last_password.lock().unwrap_or_else(PoisonError::into_inner);
                *last = Some(password.clone());
                Ok((username, password))
            }
        }
    }

    /// The password in use, as far as it is known: to scrub from the server's words.
    pub(super) fn password(&self) -> Option<String> {
        match self {
            Credentials::Fixed { password, .. } => Some(password.clone()),
            Credentials::Provided { last_password, .. } => last_password
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// What `Debug` may show: the username when it is fixed, never a password.
    pub(super) fn shown(&self) -> (&str, &'static str) {
        match self {
            Credentials::Fixed { username, .. } => (username, "<redacted>"),
            Credentials::Provided { .. } => ("<provided>", "<provided>"),
        }
    }
}
