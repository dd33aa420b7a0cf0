//! [`PerIdentityLayer`]: a token per identity (an end user, a database), each kept as
//! [`TokenRefreshLayer`](crate::TokenRefreshLayer) keeps its one, bounded in number and in
//! the token requests they send at once.

mod identify;
mod recency;
mod registry;
mod service;

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::request::Parts;
use http::Uri;
use tower_layer::Layer;

use crate::endpoint::erased::DynEndpoint;
use crate::endpoint::TokenEndpoint;
use crate::event::TokenEvent;
use crate::settings::Settings;
use crate::status::{IdentitiesStatus, TokenStatus};
use registry::{Limits, Registry};
pub use service::PerIdentity;

/// The user's function from an identity to its endpoint.
type MakeEndpoint<I> = Arc<dyn Fn(&I) -> Arc<dyn DynEndpoint> + Send + Sync>;
/// The user's hook, told whose token an event is about.
type IdentityHook<I> = Arc<dyn Fn(&I, &TokenEvent<'_>) + Send + Sync>;
/// The user's function from a request to its identity.
type IdentifyFn<I> = Arc<dyn Fn(&Parts) -> Option<I> + Send + Sync>;

const DEFAULT_MAX_IDENTITIES: usize = 10_000;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Token requests in flight across all identities: enough that a login's latency is not
/// multiplied for a crowd arriving at once, few enough that no SQL node notices the crowd.
const DEFAULT_TOKEN_REQUESTS: usize = 16;

/// Applies [`PerIdentity`] to a service: a token per identity, for a service that acts for
/// many end users (each with their own Ocient token, so Ocient's access rules and audit
/// apply per person) or reads several databases.
///
/// ```
/// # #[cfg(feature = "ocient")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use ocient_mock::MockOcient;
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_token_refresh::{OcientAuth, PerIdentityLayer};
///
/// /// Whose request it is: the application's own type, put in the request's extensions
/// /// (by its axum middleware, from the session, say).
/// #[derive(Clone, PartialEq, Eq, Hash)]
/// struct User(&'static str);
///
/// let server = MockOcient::new()
///     .user("alice", "alice-pw")
///     .user("bob", "bob-pw")
///     .serve()
///     .await?;
/// let uri = server.uri();
/// let layer = PerIdentityLayer::new(move |user: &User| {
///     // Each user's own credentials: from a vault, or `sso_token_from` their identity
///     // provider's token.
///     OcientAuth::new(uri.clone()).credentials(user.0, format!("{}-pw", user.0))
/// });
/// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
/// let service = ServiceBuilder::new().layer(layer).service(client);
///
/// for user in ["alice", "bob", "alice"] {
///     let mut request = Request::post(format!("{}v1/execute/system", server.uri()))
///         .body(Full::from(r#"{"statement":"SELECT 1"}"#))?;
///     request.extensions_mut().insert(User(user));
///     let response = service.clone().oneshot(request).await?;
///     assert!(response.status().is_success());
/// }
/// assert_eq!(server.mock().counters().logins, 2, "one per user");
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "ocient"))] fn main() {}
/// ```
///
/// # Each identity's token
///
/// Everything [`TokenRefreshLayer`](crate::TokenRefreshLayer) does for its token, this layer
/// does for each identity's: one login, a refresh ahead of expiry shared by that identity's
/// concurrent requests, exact revocation on a 401, backoff and recovery,
/// [`refresh_now`](PerIdentity::refresh_now), a [`status`](PerIdentity::status_of). The
/// builder methods they share mean the same, for each token. A request goes out only with
/// its own identity's token. The endpoint of an identity is made by the function given to
/// [`new`](Self::new) when the identity is first seen (or first seen again after it was
/// dropped); its providers are asked only when that identity needs a new token.
///
/// # Whose request
///
/// By default, the value of type `I` in the request's extensions;
/// [`identity_from`](Self::identity_from) reads it from the request instead. A request that
/// names no identity is answered [`Error::NoIdentity`](crate::Error::NoIdentity) and not
/// sent, unless [`default_identity`](Self::default_identity) says whose it is then. Every
/// request through this layer needs an identity, whatever its origin: configure the layer
/// only on the client that talks to the API.
///
/// # Bounds
///
/// - [`max_identities`](Self::max_identities) (default 10,000): past it, the least recently
///   used identity is dropped.
/// - [`idle_timeout`](Self::idle_timeout) (default 30 minutes): an identity no request used
///   for that long is dropped.
/// - A dropped identity's timers and idle refreshes stop at once, and nothing is sent for it
///   again; a login under way ends for the requests waiting on it. Its next request starts
///   afresh, with a new login. An identity held costs the layer about 2 KiB with its token
///   (see BENCHMARKS.md), plus the endpoint the function made.
/// - [`max_token_requests_in_flight`](Self::max_token_requests_in_flight) (default 16):
///   the logins and refreshes in flight at once, across every identity. Ten thousand users
///   arriving together after a deploy, or all needing a token after an outage, queue for
///   their turn, in order; the wait counts in each request's
///   [`refresh_timeout`](Self::refresh_timeout). A turn is held only while a token request
///   is sent and answered: one identity whose server hangs holds it for at most that
///   timeout, and one whose provider hangs holds none.
///
/// # Observability
///
/// The layer's metrics (feature `metrics`) add up every identity's, with no identity in any
/// label: logins, refreshes, waits, revocations and requests turned away, plus
/// `token_identities` (a gauge of the identities held) and `token_identities_dropped_total`.
/// A layer of many tokens has no one token's expiry or generation, so those two gauges are
/// not set. [`on_token`](Self::on_token) is told whose token each event is about: log what
/// you choose of it.
pub struct PerIdentityLayer<I> {
    make: MakeEndpoint<I>,
    settings: Settings,
    identify: Option<IdentifyFn<I>>,
    default_identity: Option<I>,
    hook: Option<IdentityHook<I>>,
    name: Option<String>,
    limits: Limits,
    /// The tokens of every service made with these settings, made at first use; a builder
    /// method that changes the settings starts anew.
    registry: Arc<OnceLock<Arc<Registry<I>>>>,
}

impl<I> Clone for PerIdentityLayer<I>
where
    I: Clone,
{
    fn clone(&self) -> Self {
        PerIdentityLayer {
            make: Arc::clone(&self.make),
            settings: self.settings.clone(),
            identify: self.identify.clone(),
            default_identity: self.default_identity.clone(),
            hook: self.hook.clone(),
            name: self.name.clone(),
            limits: self.limits,
            registry: Arc::clone(&self.registry),
        }
    }
}

impl<I> PerIdentityLayer<I>
where
    I: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Keeps a token per identity, from the endpoint `make` gives for it (an
    /// [`OcientAuth`](crate::OcientAuth) with that user's credentials or identity-provider
    /// token, or for that database).
    #[must_use]
    pub fn new<E>(make: impl Fn(&I) -> E + Send + Sync + 'static) -> Self
    where
        E: TokenEndpoint,
    {
        let make: MakeEndpoint<I> = Arc::new(move |identity| Arc::new(make(identity)));
        PerIdentityLayer {
            make,
            settings: Settings::default(),
            identify: None,
            default_identity: None,
            hook: None,
            name: None,
            limits: Limits {
                max_identities: DEFAULT_MAX_IDENTITIES,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                token_requests: DEFAULT_TOKEN_REQUESTS,
            },
            registry: Arc::default(),
        }
    }

    /// Reads whose request it is with `identify` (from a header, a path segment, a value
    /// in the extensions) instead of taking the `I` in its extensions. `None` means the
    /// request names no identity.
    ///
    /// ```
    /// # #[cfg(feature = "ocient")] {
    /// use tower_token_refresh::{OcientAuth, PerIdentityLayer};
    ///
    /// let node: http::Uri = "https://sql-node".parse().unwrap();
    /// // A token per database: `/v1/execute/{database}`.
    /// let layer = PerIdentityLayer::new(move |database: &String| {
    ///     OcientAuth::new(node.clone()).credentials("reporting", "secret").database(database)
    /// })
    /// .identity_from(|request| {
    ///     let database = request.uri.path().strip_prefix("/v1/execute/")?;
    ///     Some(database.to_owned())
    /// });
    /// # let _ = layer;
    /// # }
    /// ```
    ///
    /// It runs on every request: keep it cheap, and prefer an identity that clones without
    /// allocating (an `Arc<str>`, a number) on a busy path.
    #[must_use]
    pub fn identity_from(
        self,
        identify: impl Fn(&Parts) -> Option<I> + Send + Sync + 'static,
    ) -> Self {
        let identify: IdentifyFn<I> = Arc::new(identify);
        self.with(|layer| layer.identify = Some(identify))
    }

    /// The identity of a request that names none (a service account, say); without it,
    /// such a request is answered [`Error::NoIdentity`](crate::Error::NoIdentity).
    #[must_use]
    pub fn default_identity(self, identity: I) -> Self {
        self.with(|layer| layer.default_identity = Some(identity))
    }

    /// Holds at most `max` identities (default 10,000, at least 1): a new one past it drops
    /// the least recently used, as told by a clock that ticks every eighth of the
    /// [`idle_timeout`](Self::idle_timeout), at most a second: identities last used in the
    /// same tick count as used together.
    #[must_use]
    pub fn max_identities(self, max: usize) -> Self {
        self.with(|layer| layer.limits.max_identities = max.max(1))
    }

    /// Drops an identity no request used for `idle` (default 30 minutes, at least 10 ms),
    /// to within an eighth of it (and at most a second).
    #[must_use]
    pub fn idle_timeout(self, idle: Duration) -> Self {
        let idle = idle.max(Duration::from_millis(10));
        self.with(|layer| layer.limits.idle_timeout = idle)
    }

    /// Sends at most `max` logins and refreshes at once across every identity (default 16,
    /// at least 1); the others wait for their turn, in order. See the type's docs.
    #[must_use]
    pub fn max_token_requests_in_flight(self, max: usize) -> Self {
        self.with(|layer| layer.limits.token_requests = max.max(1))
    }

    /// Calls `hook` at every event of every identity's token, with the identity: see
    /// [`TokenRefreshLayer::on_token`](crate::TokenRefreshLayer::on_token).
    #[must_use]
    pub fn on_token(self, hook: impl Fn(&I, &TokenEvent<'_>) + Send + Sync + 'static) -> Self {
        let hook: IdentityHook<I> = Arc::new(hook);
        self.with(|layer| layer.hook = Some(hook))
    }

    /// Names the layer in its metrics (default `per_identity`): see
    /// [`TokenRefreshLayer::name`](crate::TokenRefreshLayer::name).
    #[must_use]
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|layer| layer.name = Some(name))
    }

    /// For each token: see [`TokenRefreshLayer::refresh_at`](crate::TokenRefreshLayer::refresh_at).
    #[must_use]
    pub fn refresh_at(self, remaining_fraction: f64) -> Self {
        self.with(|layer| layer.settings.refresh_at(remaining_fraction))
    }

    /// For each token request: see
    /// [`TokenRefreshLayer::refresh_timeout`](crate::TokenRefreshLayer::refresh_timeout).
    #[must_use]
    pub fn refresh_timeout(self, timeout: Duration) -> Self {
        self.with(|layer| layer.settings.refresh_timeout(timeout))
    }

    /// For each token: see
    /// [`TokenRefreshLayer::retry_backoff`](crate::TokenRefreshLayer::retry_backoff).
    #[must_use]
    pub fn retry_backoff(self, first: Duration, max: Duration) -> Self {
        self.with(|layer| layer.settings.retry_backoff(first, max))
    }

    /// For each token: see
    /// [`TokenRefreshLayer::retry_backoff_while_down`](crate::TokenRefreshLayer::retry_backoff_while_down).
    #[must_use]
    pub fn retry_backoff_while_down(self, max: Duration) -> Self {
        self.with(|layer| layer.settings.retry_backoff_while_down(max))
    }

    /// For each token: see
    /// [`TokenRefreshLayer::allow_origin`](crate::TokenRefreshLayer::allow_origin).
    #[must_use]
    pub fn allow_origin(self, uri: Uri) -> Self {
        self.with(|layer| layer.settings.allow_origin(&uri))
    }

    /// For each token: see
    /// [`TokenRefreshLayer::refresh_when_idle`](crate::TokenRefreshLayer::refresh_when_idle).
    /// An identity stops being refreshed when it is dropped.
    #[must_use]
    pub fn refresh_when_idle(self, refresh: bool) -> Self {
        self.with(|layer| layer.settings.refresh_when_idle = refresh)
    }

    /// The identities held and how many have a usable token. Sends nothing.
    pub fn status(&self) -> IdentitiesStatus {
        IdentitiesStatus::of(self.registry().statuses())
    }

    /// Where `identity`'s token is, if the identity is held. Sends nothing, starts nothing,
    /// and does not count as a use.
    pub fn status_of(&self, identity: &I) -> Option<TokenStatus> {
        self.registry().status_of(identity)
    }

    /// Every builder method goes through here, so none can keep the old tokens by mistake.
    fn with(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self.registry = Arc::default();
        self
    }

    fn registry(&self) -> &Arc<Registry<I>> {
        self.registry.get_or_init(|| {
            let identify = identify::Identify {
                with: self.identify.clone(),
                default: self.default_identity.clone(),
            };
            let name = self.name.as_deref().unwrap_or("per_identity");
            let (make, settings) = (Arc::clone(&self.make), self.settings.clone());
            Registry::new(
                make,
                settings,
                self.hook.clone(),
                name,
                self.limits,
                identify,
            )
        })
    }
}

impl<S, I> Layer<S> for PerIdentityLayer<I>
where
    I: Hash + Eq + Clone + Send + Sync + 'static,
{
    type Service = PerIdentity<S, I>;

    fn layer(&self, inner: S) -> Self::Service {
        PerIdentity::new(inner, Arc::clone(self.registry()))
    }
}

impl<I> fmt::Debug for PerIdentityLayer<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.settings;
        f.debug_struct("PerIdentityLayer")
            .field("timing", &settings.timing)
            .field("refresh_timeout", &settings.refresh_timeout)
            .field("extra_origins", &settings.extra_origins)
            .field("refresh_when_idle", &settings.refresh_when_idle)
            .field("limits", &self.limits)
            .field("identity_from", &self.identify.as_ref().map(|_| "<fn>"))
            .field(
                "default_identity",
                &self.default_identity.as_ref().map(|_| ".."),
            )
            .field("on_token", &self.hook.as_ref().map(|_| "<hook>"))
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
