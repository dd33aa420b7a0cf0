//! Which origins may receive the token: scheme, host and port, and whether reaching one
//! means crossing the network in the clear.

use std::fmt;
use std::net::IpAddr;

use http::Uri;

use crate::error::Error;

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
    /// Whether anything sent here crosses the network in the clear.
    pub(crate) fn is_cleartext(&self) -> bool {
        self.cleartext
    }

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
}
