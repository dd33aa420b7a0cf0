//! What the examples share: the flags that say which SQL node to talk to, that node (an
//! embedded mock Ocient unless `--url` names a real one), and the HTTPS client.

#![allow(dead_code)]

pub mod tls;

use std::path::PathBuf;

use http::Uri;
use http_body::Body;
use ocient_mock::{Counters, MockOcient, MockServer};
use tower_token_refresh::OcientAuth;

use tls::{https_client, HttpsClient};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the password comes from when `--password` is not given, so it need not sit in
/// shell history or the process list.
pub const PASSWORD_VARIABLE: &str = "OCIENT_PASSWORD";

/// How the node flags read, for each example's usage line.
pub const NODE_USAGE: &str = "[--url https://SQL-NODE --user U --database D] \
     [--password P, or OCIENT_PASSWORD] [--ca-cert FILE] [--allow-plain-http] [--tls]";

/// `--url`, `--user`, `--password` (or `OCIENT_PASSWORD`), `--database`, `--ca-cert`,
/// `--allow-plain-http`, and `--tls` for the embedded mock.
pub struct NodeFlags {
    pub url: Option<Uri>,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// A private CA to trust besides the system's roots (PEM).
    pub ca_cert: Option<PathBuf>,
    pub allow_plain_http: bool,
    /// Serve the embedded mock over HTTPS.
    pub tls: bool,
}

/// The SQL node an example runs against, the auth that logs in to it, and the CAs its
/// client must trust.
pub struct Node {
    pub base: Uri,
    pub auth: OcientAuth,
    pub database: String,
    /// The embedded mock, when there is no `--url`; dropping it stops the server.
    pub mock: Option<MockServer>,
    private_cas: Vec<String>,
}

impl NodeFlags {
    /// Takes the node's flags from `args` and returns the others, in order, for the example
    /// to read. `-h` and `--help` give an empty error: print the usage.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
    ) -> Result<(NodeFlags, Vec<String>), String> {
        let mut flags = NodeFlags {
            url: None,
            user: "jdoe".into(),
            password: None,
            database: "retail_analytics".into(),
            ca_cert: None,
            allow_plain_http: false,
            tls: false,
        };
        let mut rest = Vec::new();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--url" => flags.url = Some(value()?.parse().map_err(|e| format!("--url: {e}"))?),
                "--user" => flags.user = value()?,
                "--password" => flags.password = Some(value()?),
                "--database" => flags.database = value()?,
                "--ca-cert" => flags.ca_cert = Some(value()?.into()),
                "--allow-plain-http" => flags.allow_plain_http = true,
                "--tls" => flags.tls = true,
                "-h" | "--help" => return Err(String::new()),
                _ => rest.push(flag),
            }
        }
        flags.password = flags
            .password
            .or_else(|| std::env::var(PASSWORD_VARIABLE).ok());
        flags.check()?;
        Ok((flags, rest))
    }

    /// The node's flags from the command line when they are all it takes; otherwise the
    /// usage of `example`, and exit 2.
    pub fn only_or_exit(example: &str) -> NodeFlags {
        let parsed =
            NodeFlags::parse(std::env::args().skip(1)).and_then(|(flags, rest)| {
                match rest.first() {
                    Some(other) => Err(format!("unknown flag {other}")),
                    None => Ok(flags),
                }
            });
        parsed.unwrap_or_else(|message| {
            eprintln!("{message}\nusage: {example} {NODE_USAGE}");
            std::process::exit(2);
        })
    }

    fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.url {
            if !matches!(url.scheme_str(), Some("https" | "http")) || url.host().is_none() {
                return Err("--url: https://host[:port], please".into());
            }
            if self.password.is_none() {
                return Err(format!("--url: give the password in {PASSWORD_VARIABLE}"));
            }
            if self.tls {
                return Err("--tls is for the embedded mock: drop it with --url".into());
            }
        }
        if self.database.is_empty() || self.database.contains(['/', '?', '#']) {
            return Err("--database: a single path segment, please".into());
        }
        Ok(())
    }

    /// The node at `--url`, or `mock` serving on 127.0.0.1 (over HTTPS with `--tls`).
    pub async fn node(&self, mock: MockOcient) -> Result<Node, BoxError> {
        let mut private_cas = Vec::new();
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
            private_cas.push(pem);
        }
        let mock = match (&self.url, self.tls) {
            (Some(_), _) => None,
            (None, false) => Some(mock.serve().await?),
            (None, true) => Some(mock.serve_tls().await?),
        };
        if let Some(ca) = mock.as_ref().and_then(MockServer::ca_certificate_pem) {
            private_cas.push(ca.to_owned());
        }
        let base = match (&self.url, &mock) {
            (Some(url), _) => url.clone(),
            (None, Some(server)) => server.uri(),
            (None, None) => unreachable!("a mock runs whenever there is no --url"),
        };
        // The embedded mock takes the default password; a real node never gets a default.
        let password = self.password.clone().unwrap_or_else(|| "secret".into());
        let mut auth = OcientAuth::new(base.clone())
            .credentials(self.user.clone(), password)
            .database(self.database.clone());
        if self.allow_plain_http {
            auth = auth.allow_plain_http();
        }
        Ok(Node {
            base,
            auth,
            database: self.database.clone(),
            mock,
            private_cas,
        })
    }
}

impl Node {
    /// `{base}/v1/execute/{database}`: where SQL statements go.
    pub fn execute_uri(&self) -> String {
        let base = self.base.to_string();
        format!(
            "{}/v1/execute/{}",
            base.trim_end_matches('/'),
            self.database
        )
    }

    /// A client that speaks HTTPS to this node, trusting the system's roots and the node's
    /// private CA, if any.
    pub fn client<B>(&self) -> Result<HttpsClient<B>, BoxError>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        https_client(&self.private_cas)
    }

    /// The private CAs (PEM) a client must trust besides the system's roots: `--ca-cert`'s,
    /// and the embedded mock's when it serves HTTPS. For a client other than [`Node::client`]
    /// (reqwest's, say), which adds them to its own roots.
    pub fn private_cas(&self) -> &[String] {
        &self.private_cas
    }

    /// Whether the node speaks HTTPS, for the examples' first line.
    pub fn transport(&self) -> &'static str {
        match self.base.scheme_str() {
            Some("https") => "HTTPS",
            _ => "plain HTTP",
        }
    }
}

/// Says what happened when a query met a token revoked on the server, from the mock's
/// counters `before` and `during` it: a 401, then the retry through the layer.
pub fn explain_retry(before: &Counters, during: &Counters) {
    if during.queries_bad_token > before.queries_bad_token && during.logins > before.logins {
        println!("  (its first attempt was answered 401; the layer revoked that token,");
        println!("   and the retry went through the layer again and out with a new one)");
    }
}

/// What the mock saw, for the examples' last lines.
pub fn print_counters(counters: &Counters) {
    println!("\nserver counters");
    println!("  logins                        {}", counters.logins);
    println!("  refreshes                     {}", counters.refreshes);
    println!("  queries with a good token     {}", counters.queries_ok);
    println!(
        "  queries with a revoked token  {}",
        counters.queries_bad_token
    );
    println!(
        "  queries without a token       {}",
        counters.queries_no_token
    );
}
