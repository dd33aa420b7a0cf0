//! [`TokenRefreshLayer`]: configuration, and the [`Layer`] that applies it.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::Uri;
use tower_layer::Layer;

use crate::endpoint::erased::DynEndpoint;
use crate::endpoint::TokenEndpoint;
use crate::event::{Hook, TokenEvent};
use crate::record::Record;
use crate::service::TokenRefresh;
use crate::settings::{default_name, Fleet, Settings, Shared};
use crate::status::TokenStatus;

/// Revokers for the one token of a layer, which every request on every core sends.
const REVOKERS: usize = 16;

/// Applies [`TokenRefresh`] to a service.
///
/// ```no_run
/// # #[cfg(feature = "ocient")]
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper_rustls::HttpsConnectorBuilder;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tower::ServiceBuilder;
/// use tower_token_refresh::{OcientAuth, TokenRefreshLayer};
///
/// let auth = OcientAuth::new("https://sql-node".parse().unwrap())
///     .credentials("jdoe", "secret")
///     .database("retail_analytics");
/// let https = HttpsConnectorBuilder::new()
///     .with_native_roots()
///     .unwrap()
///     .https_only()
///     .enable_http1()
///     .build();
/// let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https);
/// let service = ServiceBuilder::new()
///     .layer(TokenRefreshLayer::new(auth).refresh_at(0.3))
///     .service(client);
/// # let _ = service;
/// # }
/// # #[cfg(not(feature = "ocient"))] fn main() {}
/// ```
///
/// Every service this layer makes, and every clone of them, shares one token: one login,
/// one refresh at a time, sent through whichever of those services needs it first. Changing
/// the configuration starts a new token.
///
/// The wrapped service must take request bodies that can be made from [`Bytes`](bytes::Bytes)
/// (`B: From<Bytes>`, as `http_body_util::Full<Bytes>` and axum's `Body` are), since the
/// layer sends its own login and refresh requests through it.
#[derive(Clone)]
pub struct TokenRefreshLayer {
    endpoint: Arc<dyn DynEndpoint>,
    settings: Settings,
    hook: Option<Hook>,
    /// The `layer` label of its metrics; the endpoint's host when unset.
    name: Option<String>,
    /// The token and configuration of every service made with these settings, made at
    /// first use; a builder method that changes the settings starts a new one.
    shared: Arc<OnceLock<Shared>>,
}

impl TokenRefreshLayer {
    /// Keeps a token from `endpoint` (an [`OcientAuth`](crate::OcientAuth)) fresh.
    #[must_use]
    pub fn new(endpoint: impl TokenEndpoint) -> Self {
        TokenRefreshLayer {
            endpoint: Arc::new(endpoint),
            settings: Settings::default(),
            hook: None,
            name: None,
            shared: Arc::default(),
        }
    }

    /// Refreshes once `remaining_fraction` of the token's lifetime is **left** (default
    /// `0.5`, as Ocient advises): `0.3` refreshes when 30% of the lifetime remains.
    ///
    /// Clamped to `0.0..=0.9`. The refresh point is moved later at random by up to a tenth
    /// of the lifetime (never more than half the time left before the token's dead point),
    /// so clients started together do not refresh together. `0.0` means no proactive
    /// refresh: callers then wait for a new token each time one dies.
    #[must_use]
    pub fn refresh_at(self, remaining_fraction: f64) -> Self {
        self.with(|layer| layer.settings.refresh_at(remaining_fraction))
    }

    /// Bounds each login and refresh request, answer body included (default 30 s, at least
    /// 10 ms).
    #[must_use]
    pub fn refresh_timeout(self, timeout: Duration) -> Self {
        self.with(|layer| layer.settings.refresh_timeout(timeout))
    }

    /// After a failed login or refresh, waits `first` before the next attempt, doubling
    /// with each further failure up to `max` (defaults 1 s and 30 s; at least 10 ms), each wait varied by
    /// ±25% at random so clients that failed together do not retry together.
    ///
    /// While the token is still valid the layer retries on its own, never later than the
    /// token's dead point. With no usable token, callers during the wait get the last error
    /// at once instead of hammering the server; the first caller after it tries again (or,
    /// with [`refresh_when_idle`](Self::refresh_when_idle), the layer itself). Once the
    /// token is gone and the server could not answer, the wait stops growing at
    /// [`retry_backoff_while_down`](Self::retry_backoff_while_down).
    ///
    /// A `Retry-After` on a 429 or 503 answer from the token endpoint (seconds or an HTTP
    /// date) sets the earliest next attempt, capped at `max`.
    #[must_use]
    pub fn retry_backoff(self, first: Duration, max: Duration) -> Self {
        self.with(|layer| layer.settings.retry_backoff(first, max))
    }

    /// The longest wait between attempts while the layer is **down**: no usable token, and
    /// the last attempt failed because the server could not be reached or could not answer
    /// (a transport error, a timeout, a 5xx, a 429). Default 2 s, varied by ±25%; kept
    /// between the `first` and `max` of [`retry_backoff`](Self::retry_backoff).
    ///
    /// The trade-off: while down, every second of backoff past the server's return is an
    /// outage of this service, so the default keeps the layer within about 2.5 s of the
    /// server however long the outage lasted. In exchange, a server that is down sees about
    /// 30 token requests a minute from each layer (one at a time, never more, however many
    /// callers), where `retry_backoff`'s cap alone would send 2. Raise it for a large
    /// fleet against a cluster that recovers slowly; a server that needs more time says so
    /// with `Retry-After`, which the layer's own attempts honour (only
    /// [`refresh_now`](crate::TokenRefresh::refresh_now), and a token revoked while callers
    /// wait, go ahead of it). A server that answers and rejects the login (a wrong password) gets the
    /// full backoff: asking again soon would not change its mind.
    #[must_use]
    pub fn retry_backoff_while_down(self, max: Duration) -> Self {
        self.with(|layer| layer.settings.retry_backoff_while_down(max))
    }

    /// Also sends the token to `uri`'s origin (scheme, host and port).
    ///
    /// Requests to any other origin pass through without the token. A `uri` without a
    /// scheme or host names no origin and is ignored.
    #[must_use]
    pub fn allow_origin(self, uri: Uri) -> Self {
        self.with(|layer| layer.settings.allow_origin(&uri))
    }

    /// Calls `hook` on every new token, every failed attempt and every token the server
    /// revoked: for metrics, alerts, or persisting the token for the next process.
    ///
    /// ```
    /// # #[cfg(feature = "ocient")] {
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use tower_token_refresh::{OcientAuth, TokenEvent, TokenRefreshLayer};
    ///
    /// let failures = Arc::new(AtomicU64::new(0));
    /// let counter = Arc::clone(&failures);
    /// let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials("jdoe", "secret");
    /// let layer = TokenRefreshLayer::new(auth).on_token(move |event| {
    ///     if let TokenEvent::Failed { .. } = event {
    ///         counter.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// });
    /// # let _ = layer;
    /// # }
    /// ```
    ///
    /// The hook runs on the refresh task (or, for a revoked token, in the response future):
    /// keep it short and non-blocking. Events from different tasks may arrive out of order
    /// (a token can be reported revoked just before it is reported obtained): use the
    /// `generation` to order them.
    #[must_use]
    pub fn on_token(self, hook: impl Fn(&TokenEvent<'_>) + Send + Sync + 'static) -> Self {
        let hook: Hook = Arc::new(hook);
        self.with(|layer| layer.hook = Some(hook))
    }

    /// With `true`, refreshes the token at its refresh point even when no request comes,
    /// so a service idle for hours still finds a fresh token and never waits (default
    /// `false`: the first request after the refresh point starts the refresh).
    ///
    /// The refresh goes through a clone of the wrapped service kept for that purpose (taken
    /// from the first request, or from [`warm_up`](crate::TokenRefresh::warm_up)), with
    /// the same backoff, jitter and fallback to a login as any refresh.
    ///
    /// It also keeps trying once the token is past saving (an outage outlived it), on the
    /// short backoff of [`retry_backoff_while_down`](Self::retry_backoff_while_down), until
    /// a token is usable again: a readiness probe built on [`status`](Self::status) turns
    /// ready within seconds of the server's return, with no request. Without it, a service
    /// that an orchestrator took out of rotation (so no request comes) would never recover.
    /// It stops only when the server rejected the credentials or the token (a wrong password,
    /// which a lockout policy would count; without credentials, a token the server no longer
    /// refreshes); an answer it cannot use is tried again on the full backoff. The failure goes to the
    /// [`on_token`](Self::on_token) hook, and the next request starts again.
    ///
    /// Nothing outlives the layer: once it and every service it made are dropped, no task,
    /// timer or clone of the wrapped service is left.
    #[must_use]
    pub fn refresh_when_idle(self, refresh: bool) -> Self {
        self.with(|layer| layer.settings.refresh_when_idle = refresh)
    }

    /// Names the layer in its metrics (the `layer` label, with the `metrics` feature), so
    /// that two layers in one process are told apart. Default: the host of the endpoint's
    /// origin (`sql-node` for `https://jdoe:pw@sql-node:9443`), never a user or a path.
    ///
    /// ```
    /// # #[cfg(feature = "ocient")] {
    /// use tower_token_refresh::{OcientAuth, TokenRefreshLayer};
    ///
    /// let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials("jdoe", "secret");
    /// let reporting = TokenRefreshLayer::new(auth).name("reporting");
    /// # let _ = reporting;
    /// # }
    /// ```
    ///
    /// Each event goes to the recorder in force when it happens. The counters and
    /// histograms are registered at zero when the layer makes its first service (or is first
    /// asked for its [`status`](Self::status)), with the recorder in force then: install
    /// it (`metrics::set_global_recorder`, or an exporter's `install`) before building the
    /// stack to see them from the start. Layers of the same name add up their counters and
    /// share their gauges. Keep names few and fixed, as label values should be.
    #[must_use]
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|layer| layer.name = Some(name))
    }

    /// Where the token of every service this layer makes is: see [`TokenStatus`]. Sends
    /// nothing, starts nothing.
    pub fn status(&self) -> TokenStatus {
        self.shared().state.status()
    }

    /// The settings changed by `change`, for services that share a token of their own:
    /// every builder method goes through here, so none can keep the old token by mistake.
    fn with(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self.shared = Arc::default();
        self
    }

    fn shared(&self) -> &Shared {
        self.shared.get_or_init(|| {
            let name = self.name.clone();
            let name = name.unwrap_or_else(|| default_name(&*self.endpoint));
            let fleet = Fleet {
                record: Arc::new(Record::new(&name, self.hook.clone())),
                revokers: REVOKERS,
                admission: None,
                origins: None,
            };
            self.settings.share(Arc::clone(&self.endpoint), fleet)
        })
    }
}

impl<S> Layer<S> for TokenRefreshLayer {
    type Service = TokenRefresh<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let Shared { state, config } = self.shared();
        TokenRefresh::new(inner, Arc::clone(state), Arc::clone(config))
    }
}

impl fmt::Debug for TokenRefreshLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.settings;
        let name = self.name.clone();
        f.debug_struct("TokenRefreshLayer")
            .field("endpoint", &self.endpoint)
            .field("timing", &settings.timing)
            .field("refresh_timeout", &settings.refresh_timeout)
            .field("extra_origins", &settings.extra_origins)
            .field("on_token", &self.hook.as_ref().map(|_| "<hook>"))
            .field("refresh_when_idle", &settings.refresh_when_idle)
            .field(
                "name",
                &name.unwrap_or_else(|| default_name(&*self.endpoint)),
            )
            .finish()
    }
}
