//! What the examples share: the flags that say which SQL node to talk to, and that node,
//! an embedded mock Ocient unless `--url` names a real one.

use http::Uri;
use ocient_mock::{MockOcient, MockServer};
use tower_token_refresh::OcientAuth;

/// `--url`, `--user`, `--password`, `--database`.
pub struct NodeFlags {
    pub url: Option<Uri>,
    pub user: String,
    pub password: String,
    pub database: String,
}

/// The SQL node an example runs against, and the auth that logs in to it.
pub struct Node {
    pub base: Uri,
    pub auth: OcientAuth,
    pub database: String,
    /// The embedded mock, when there is no `--url`; dropping it stops the server.
    pub mock: Option<MockServer>,
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
            password: "secret".into(),
            database: "retail_analytics".into(),
        };
        let mut rest = Vec::new();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--url" => flags.url = Some(value()?.parse().map_err(|e| format!("--url: {e}"))?),
                "--user" => flags.user = value()?,
                "--password" => flags.password = value()?,
                "--database" => flags.database = value()?,
                "-h" | "--help" => return Err(String::new()),
                _ => rest.push(flag),
            }
        }
        if flags
            .url
            .as_ref()
            .is_some_and(|u| u.scheme_str() != Some("http"))
        {
            return Err("--url: the examples' client speaks plain http only".into());
        }
        if flags.database.is_empty() || flags.database.contains(['/', '?', '#']) {
            return Err("--database: a single path segment, please".into());
        }
        Ok((flags, rest))
    }

    /// The node at `--url`, or `mock` serving on 127.0.0.1.
    pub async fn node(&self, mock: MockOcient) -> std::io::Result<Node> {
        let mock = match self.url {
            Some(_) => None,
            None => Some(mock.serve().await?),
        };
        let base = match (&self.url, &mock) {
            (Some(url), _) => url.clone(),
            (None, Some(server)) => server.uri(),
            (None, None) => unreachable!("a mock runs whenever there is no --url"),
        };
        let auth = OcientAuth::new(base.clone())
            .credentials(self.user.clone(), self.password.clone())
            .database(self.database.clone());
        Ok(Node {
            base,
            auth,
            database: self.database.clone(),
            mock,
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
}
