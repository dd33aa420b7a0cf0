//! What every clone of a service shares besides the token, and which origins may see it.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use crate::endpoint::TokenEndpoint;

/// What every clone of a service shares besides the token.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) endpoint: Arc<dyn TokenEndpoint>,
    pub(crate) origins: Vec<Origin>,
    pub(crate) refresh_timeout: Duration,
}

impl Config {
    /// Whether a request for `uri` may carry the token: it names one of our origins, or
    /// none at all (origin-form, as a client bound to one connection sends it).
    pub(crate) fn authorizes(&self, uri: &Uri) -> bool {
        uri.authority().is_none() || self.origins.iter().any(|o| o.matches(uri))
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

    #[test]
    fn config_authorizes_its_origins_and_origin_form_only() {
        #[derive(Debug)]
        struct Nowhere(Uri);
        impl TokenEndpoint for Nowhere {
            fn origin(&self) -> &Uri {
                &self.0
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
            ) -> Result<crate::grant::Grant, crate::error::Error> {
                unreachable!("never asked")
            }
            fn rejects_token(&self, _: &crate::error::Error) -> bool {
                false
            }
        }
        let config = Config {
            endpoint: Arc::new(Nowhere(Uri::from_static("https://sql-node"))),
            origins: vec![
                origin("https://sql-node"),
                origin("https://sql-node-2:9443"),
            ],
            refresh_timeout: Duration::from_secs(1),
        };
        let authorizes = |uri: &str| config.authorizes(&uri.parse().unwrap());
        assert!(authorizes("https://sql-node/v1/execute/db"));
        assert!(authorizes("https://sql-node-2:9443/v1/execute/db"));
        assert!(authorizes("/v1/execute/db"));
        assert!(!authorizes("https://elsewhere/v1/execute/db"));
        assert!(!authorizes("http://sql-node/v1/execute/db"));
    }
}
