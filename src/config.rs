//! What every clone of a service shares besides the token, and which origins may see it.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::endpoint::erased::DynEndpoint;
use crate::error::Error;
use crate::origin::Origin;
use crate::record::Record;
use crate::revoker::{Revoker, Revokers};

/// What every clone of a service shares besides the token.
pub(crate) struct Config {
    pub(crate) endpoint: Arc<dyn DynEndpoint>,
    /// The endpoint's own origin first, when it names one. Shared between the tokens of a
    /// layer that keeps many, when their endpoints name the same (see
    /// [`sharing_origins`](Self::sharing_origins)).
    origins: Arc<[Origin]>,
    pub(crate) refresh_timeout: Duration,
    /// The user opted in to tokens over plain http to hosts that are not loopback.
    plain_http_allowed: bool,
    /// What responses revoke their token through.
    revokers: Revokers,
    /// Where transitions are reported.
    pub(crate) record: Arc<Record>,
    /// Bounds the token requests in flight across the tokens of a layer that keeps many.
    admission: Option<Arc<Semaphore>>,
}

/// Where a request goes, as far as the token is concerned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// To the API: it carries the token.
    Api,
    /// Elsewhere: it passes through untouched.
    Elsewhere,
    /// To the API, but in the clear over the network: it is not sent at all.
    Insecure(&'a Origin),
}

impl Config {
    /// The token goes to `endpoint`'s origins and to `extra_origins`.
    pub(crate) fn new(
        endpoint: Arc<dyn DynEndpoint>,
        extra_origins: &[Origin],
        refresh_timeout: Duration,
        revokers: Revokers,
        record: Arc<Record>,
    ) -> Config {
        let nodes = endpoint.other_origins();
        let origins = Origin::of(endpoint.origin())
            .into_iter()
            .chain(nodes.iter().filter_map(Origin::of))
            .chain(extra_origins.iter().cloned())
            .collect();
        Config {
            plain_http_allowed: endpoint.allows_plain_http(),
            endpoint,
            origins,
            refresh_timeout,
            revokers,
            record,
            admission: None,
        }
    }

    /// Reads its origins from `known`, when they are the same: the tokens of a layer that
    /// keeps one per identity then hold one copy, which every request finds in the cache.
    pub(crate) fn sharing_origins(mut self, known: Option<&Arc<[Origin]>>) -> Self {
        if let Some(known) = known.filter(|known| ***known == *self.origins) {
            self.origins = Arc::clone(known);
        }
        self
    }

    /// Its origins, to share with the next token.
    pub(crate) fn origins(&self) -> &Arc<[Origin]> {
        &self.origins
    }

    /// Sends a token request only with a permit of `admission`, when there is one.
    pub(crate) fn admitted_by(mut self, admission: Option<Arc<Semaphore>>) -> Self {
        self.admission = admission;
        self
    }

    /// Waits for a turn to send a token request, in the order asked (tokio's semaphore is
    /// fair): the permit, held until the answer is read, or none where nothing bounds them.
    pub(crate) async fn admission(&self) -> Option<SemaphorePermit<'_>> {
        // Never closed: an error cannot come, and would only mean "no bound".
        self.admission.as_ref()?.acquire().await.ok()
    }

    /// The revoker for a request sent from `place` (see [`Revokers::pick`]).
    pub(crate) fn revoker(&self, place: usize) -> Arc<Revoker> {
        self.revokers.pick(place)
    }

    /// Whether a request for `uri` carries the token: it names one of our origins, or none
    /// at all (origin-form, as a client bound to one connection sends it, taken to go to
    /// the endpoint).
    pub(crate) fn route(&self, uri: &Uri) -> Route<'_> {
        let origin = if uri.authority().is_none() {
            self.origins.first()
        } else {
            match self.origins.iter().find(|o| o.matches(uri)) {
                Some(origin) => Some(origin),
                None => return Route::Elsewhere,
            }
        };
        match origin {
            Some(origin) if self.refuses(origin) => Route::Insecure(origin),
            _ => Route::Api,
        }
    }

    /// Why a token request to `uri` must not be sent, if it must not. A request without
    /// an authority goes where origin-form requests go: to the endpoint's origin.
    pub(crate) fn refusal(&self, uri: &Uri) -> Option<Error> {
        let origin = match uri.authority() {
            Some(_) => Origin::of(uri)?,
            None => self.origins.first()?.clone(),
        };
        self.refuses(&origin).then(|| origin.refused())
    }

    fn refuses(&self, origin: &Origin) -> bool {
        origin.is_cleartext() && !self.plain_http_allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(uri: &str) -> Origin {
        Origin::of(&uri.parse().unwrap()).unwrap()
    }

    /// An endpoint that only names its origin.
    #[derive(Debug)]
    struct Nowhere {
        origin: Uri,
        plain_http: bool,
    }

    impl crate::endpoint::TokenEndpoint for Nowhere {
        fn origin(&self) -> &Uri {
            &self.origin
        }
        async fn refresh(
            &self,
            _: &mut crate::endpoint::TokenClient<'_>,
            _: &crate::grant::Grant,
        ) -> Result<crate::grant::Grant, Error> {
            unreachable!("never asked")
        }
        fn allows_plain_http(&self) -> bool {
            self.plain_http
        }
    }

    fn config(base: &'static str, extra: &[&str], plain_http: bool) -> Config {
        let endpoint = Nowhere {
            origin: Uri::from_static(base),
            plain_http,
        };
        let extra: Vec<Origin> = extra.iter().map(|uri| origin(uri)).collect();
        let revokers = Revokers::none();
        let record = Arc::new(Record::new("test", None));
        let timeout = Duration::from_secs(1);
        Config::new(Arc::new(endpoint), &extra, timeout, revokers, record)
    }

    fn route(config: &Config, uri: &str) -> String {
        match config.route(&uri.parse().unwrap()) {
            Route::Api => "api".into(),
            Route::Elsewhere => "elsewhere".into(),
            Route::Insecure(origin) => format!("refused {origin}"),
        }
    }

    #[test]
    fn the_token_goes_to_its_origins_and_to_origin_form_requests_only() {
        let config = config("https://sql-node", &["https://sql-node-2:9443"], false);
        assert_eq!(route(&config, "https://sql-node/v1/execute/db"), "api");
        assert_eq!(route(&config, "https://sql-node-2:9443/v1/x"), "api");
        assert_eq!(route(&config, "/v1/execute/db"), "api");
        assert_eq!(route(&config, "https://elsewhere/v1/x"), "elsewhere");
        assert_eq!(route(&config, "http://sql-node/v1/x"), "elsewhere");
    }

    #[test]
    fn plain_http_to_another_host_is_refused_unless_allowed() {
        let refused = config("http://sql-node:9090", &["http://10.0.0.8:9090"], false);
        assert_eq!(
            route(&refused, "http://sql-node:9090/v1/x"),
            "refused http://sql-node:9090"
        );
        assert_eq!(
            route(&refused, "http://10.0.0.8:9090/v1/x"),
            "refused http://10.0.0.8:9090"
        );
        assert_eq!(
            route(&refused, "/v1/x"),
            "refused http://sql-node:9090",
            "origin-form goes to the endpoint"
        );
        assert_eq!(route(&refused, "http://elsewhere/v1/x"), "elsewhere");

        let allowed = config("http://sql-node:9090", &["http://10.0.0.8:9090"], true);
        assert_eq!(route(&allowed, "http://sql-node:9090/v1/x"), "api");
        assert_eq!(route(&allowed, "http://10.0.0.8:9090/v1/x"), "api");
        assert_eq!(route(&allowed, "/v1/x"), "api");
    }

    #[test]
    fn loopback_needs_no_opt_in() {
        for base in [
            "http://127.0.0.1:9090",
            "http://127.8.9.10:9090",
            "http://localhost:9090",
            "http://LOCALHOST",
            "http://[::1]:9090",
        ] {
            let config = config(base, &[], false);
            assert_eq!(route(&config, &format!("{base}/v1/x")), "api", "{base}");
            assert!(config
                .refusal(&format!("{base}/v1/login").parse().unwrap())
                .is_none());
        }
        for base in ["http://128.0.0.1", "http://localhost.evil", "http://[::2]"] {
            let config = config(base, &[], false);
            assert!(
                route(&config, &format!("{base}/v1/x")).starts_with("refused"),
                "{base}"
            );
        }
    }

    #[test]
    fn token_requests_in_the_clear_are_refused_with_the_origin_named() {
        let config = config("http://sql-node:9090", &[], false);
        let refusal = config.refusal(&"http://jdoe:pw@sql-node:9090/v1/login".parse().unwrap());
        let shown = refusal.expect("refused").to_string();
        assert!(shown.contains("http://sql-node:9090"), "{shown}");
        assert!(
            shown.contains("allow_plain_http()"),
            "names the fix: {shown}"
        );
        assert!(!shown.contains("pw"), "{shown}");
        assert!(config
            .refusal(&"https://sql-node/v1/login".parse().unwrap())
            .is_none());
        let relative = config.refusal(&"/v1/login".parse().unwrap());
        assert!(relative.is_some(), "it goes to the endpoint, in the clear");
    }
}
