//! What every clone of a service shares besides the token, and which origins may see it.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use crate::endpoint::TokenEndpoint;
use crate::error::Error;
use crate::event::{self, Hook, TokenEvent};

/// What every clone of a service shares besides the token.
pub(crate) struct Config {
    pub(crate) endpoint: Arc<dyn TokenEndpoint>,
    /// The endpoint's own origin first, when it names one.
    origins: Vec<Origin>,
    pub(crate) refresh_timeout: Duration,
    /// The user opted in to tokens over plain http to hosts that are not loopback.
    plain_http_allowed: bool,
    /// Told of failovers between nodes.
    hook: Option<Hook>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("origins", &self.origins)
            .field("refresh_timeout", &self.refresh_timeout)
            .field("plain_http_allowed", &self.plain_http_allowed)
            .finish_non_exhaustive()
    }
}

/// Where a request goes, as far as the token is concerned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// To the API: it carries the token.
    Api,
    /// Elsewhere: it passes through untouched.
    Elsewhere,
    /// To the API, but in the clear over the network: it is not sent at all.
    Refused(&'a Origin),
}

impl Config {
    /// The token goes to `endpoint`'s origins and to `extra_origins`.
    pub(crate) fn new(
        endpoint: Arc<dyn TokenEndpoint>,
        extra_origins: &[Origin],
        refresh_timeout: Duration,
        hook: Option<Hook>,
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
            hook,
        }
    }

    /// Tells the user's hook, if any.
    pub(crate) fn report(&self, event: &TokenEvent<'_>) {
        event::tell(self.hook.as_ref(), event);
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
            Some(origin) if self.refuses(origin) => Route::Refused(origin),
            _ => Route::Api,
        }
    }

    /// Why a token request to `uri` must not be sent, if it must not.
    pub(crate) fn refusal(&self, uri: &Uri) -> Option<Error> {
        let origin = Origin::of(uri)?;
        self.refuses(&origin).then(|| origin.refused())
    }

    fn refuses(&self, origin: &Origin) -> bool {
        origin.cleartext && !self.plain_http_allowed
    }
}

/// An origin the token may go to: scheme, host and port, compared as RFC 6454 does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
    /// `host:port`, as most requests spell their authority: matched without parsing.
    authority: String,
    /// Whether `port` is the scheme's default, so a bare `host` names this origin too.
    default_port: bool,
    /// Plain http to a host that is not loopback: anything sent there crosses the network
    /// in the clear.
    cleartext: bool,
}

impl Origin {
    /// The origin of `uri`, when it has a scheme and a host.
    pub(crate) fn of(uri: &Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let host = uri.host()?.to_ascii_lowercase();
        let port = uri.port_u16().or_else(|| default_port(&scheme))?;
        Some(Origin {
            authority: format!("{host}:{port}"),
            default_port: default_port(&scheme) == Some(port),
            cleartext: matches!(scheme.as_str(), "http" | "ws") && !is_loopback(&host),
            scheme,
            host,
            port,
        })
    }

    /// Whether `uri` names this origin. Every request to the API asks this.
    pub(crate) fn matches(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(&self.scheme) {
            return false;
        }
        // Compare the authority as written (most often byte for byte as configured) before
        // paying for parsing out its host and port.
        let written = authority.as_str();
        if written == self.authority
            || written.eq_ignore_ascii_case(&self.authority)
            || (self.default_port && written.eq_ignore_ascii_case(&self.host))
        {
            return true;
        }
        uri.host()
            .is_some_and(|host| host.eq_ignore_ascii_case(&self.host))
            && uri.port_u16().or_else(|| default_port(&self.scheme)) == Some(self.port)
    }
}

impl Origin {
    /// The error for a request that must not go here.
    pub(crate) fn refused(&self) -> Error {
        Error::InsecureTransport {
            origin: self.to_string(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// `localhost`, 127.0.0.0/8 or `::1`: traffic that never leaves the machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(uri: &str) -> Origin {
        Origin::of(&uri.parse().unwrap()).unwrap()
    }

    fn matches(origin_uri: &str, request_uri: &str) -> bool {
        origin(origin_uri).matches(&request_uri.parse().unwrap())
    }

    #[test]
    fn the_same_scheme_host_and_port_match() {
        assert!(matches(
            "https://sql-node:9443",
            "https://sql-node:9443/v1/execute/db"
        ));
        assert!(matches(
            "http://10.0.0.7:9090",
            "http://10.0.0.7:9090/v1/login"
        ));
    }

    #[test]
    fn case_does_not_matter_in_scheme_or_host() {
        assert!(matches("https://SQL-Node:443", "HTTPS://sql-node:443/x"));
        assert!(matches("https://sql-node", "https://SQL-NODE/x"));
    }

    #[test]
    fn a_default_port_may_be_written_or_left_out() {
        assert!(matches("https://sql-node", "https://sql-node:443/x"));
        assert!(matches("https://sql-node:443", "https://sql-node/x"));
        assert!(matches("http://sql-node:80", "http://sql-node/x"));
        assert!(!matches("https://sql-node", "https://sql-node:80/x"));
        assert!(!matches("http://sql-node", "http://sql-node:443/x"));
    }

    #[test]
    fn another_port_is_another_origin() {
        assert!(!matches("http://sql-node:9090", "http://sql-node:9091/x"));
        assert!(!matches("http://sql-node:9090", "http://sql-node/x"));
    }

    #[test]
    fn another_scheme_is_another_origin() {
        assert!(!matches("https://sql-node:9090", "http://sql-node:9090/x"));
        assert!(!matches("https://sql-node", "http://sql-node/x"));
        assert!(!matches("http://sql-node", "ws://sql-node/x"));
    }

    #[test]
    fn another_host_is_another_origin() {
        assert!(!matches("https://sql-node", "https://sql-node.evil/x"));
        assert!(!matches("https://sql-node", "https://evil-sql-node/x"));
    }

    #[test]
    fn userinfo_is_not_part_of_the_origin() {
        assert!(matches("https://sql-node", "https://jdoe:pw@sql-node/x"));
        assert!(matches("https://u:p@sql-node:443", "https://sql-node/x"));
        // The host is what follows the '@', whatever precedes it.
        assert!(!matches("https://sql-node", "https://sql-node@evil/x"));
    }

    #[test]
    fn ipv6_literals_match_with_or_without_the_default_port() {
        assert!(matches("https://[::1]:9443", "https://[::1]:9443/x"));
        assert!(matches("https://[::1]", "https://[::1]:443/x"));
        assert!(matches("https://[::1]:443", "https://[::1]/x"));
        assert!(!matches("https://[::1]", "https://[::2]/x"));
    }

    #[test]
    fn origin_form_requests_name_no_origin() {
        assert!(!matches("https://sql-node", "/v1/execute/db"));
    }

    #[test]
    fn a_uri_without_scheme_or_host_names_no_origin() {
        assert!(Origin::of(&"/v1/login".parse().unwrap()).is_none());
        assert!(Origin::of(&"sql-node:9090".parse().unwrap()).is_none());
        assert!(Origin::of(&"ftp://sql-node/x".parse().unwrap()).is_none());
        assert!(Origin::of(&"ftp://sql-node:21/x".parse().unwrap()).is_some());
    }

    /// An endpoint that only names its origin.
    #[derive(Debug)]
    struct Nowhere {
        origin: Uri,
        plain_http: bool,
    }

    impl TokenEndpoint for Nowhere {
        fn origin(&self) -> &Uri {
            &self.origin
        }
        fn login_request(&self) -> Option<http::Request<bytes::Bytes>> {
            None
        }
        fn refresh_request(&self, _: &crate::grant::Grant) -> http::Request<bytes::Bytes> {
            unreachable!("never asked")
        }
        fn read_answer(
            &self,
            _: crate::endpoint::Answer<'_>,
        ) -> Result<crate::grant::Grant, Error> {
            unreachable!("never asked")
        }
        fn rejects_token(&self, _: &Error) -> bool {
            false
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
        Config::new(Arc::new(endpoint), &extra, Duration::from_secs(1), None)
    }

    fn route(config: &Config, uri: &str) -> String {
        match config.route(&uri.parse().unwrap()) {
            Route::Api => "api".into(),
            Route::Elsewhere => "elsewhere".into(),
            Route::Refused(origin) => format!("refused {origin}"),
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
        assert!(config.refusal(&"/v1/login".parse().unwrap()).is_none());
    }
}
