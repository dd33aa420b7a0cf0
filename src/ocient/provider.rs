//! A secret asked anew at each login (a password, an identity provider's token), so one
//! rotated in a secret manager or a mounted file is picked up without a restart.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{BoxError, Error, ProviderError};

/// The user's closure, making a boxed future.
type Ask<T> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>> + Send + Sync>;

/// A provider of `T`, and the secret of what it last gave, to scrub from the server's words.
pub(super) struct Provider<T> {
    ask: Ask<T>,
    last_secret: Arc<Mutex<Option<String>>>,
}

// Not derived: a derive would ask for `T: Clone`.
impl<T> Clone for Provider<T> {
    fn clone(&self) -> Self {
        Provider {
            ask: Arc::clone(&self.ask),
            last_secret: Arc::clone(&self.last_secret),
        }
    }
}

impl<T> Provider<T> {
    pub(super) fn new<F, Fut>(provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
    {
        Provider {
            ask: Arc::new(move || Box::pin(provider())),
            last_secret: Arc::default(),
        }
    }

    /// What the provider gives now; `secret` says which part of it is secret.
    pub(super) async fn get(&self, secret: impl Fn(&T) -> &str) -> Result<T, Error> {
        let provided = (self.ask)().await.map_err(|source| Error::Provider {
            source: ProviderError::new(source),
        })?;
        let mut last = self
            .last_secret
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *last = Some(secret(&provided).to_owned());
        Ok(provided)
    }

    /// The secret of the last thing provided, as far as it is known.
    pub(super) fn last_secret(&self) -> Option<String> {
        self.last_secret
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
