//! [`OcientAuth`]: signing in to the Ocient HTTP Query API (`/v1/login`, or single sign-on
//! through `/v1/sso_token` or the device grant) and `/v1/token_refresh`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::Uri;
use tokio::time::Instant;

mod answer;
mod credentials;
mod device;
mod device_code;
mod jwt;
mod nodes;
mod provider;
mod requests;
mod sso;
mod uri;

use answer::Shape;
use credentials::Credentials;
use device_code::Prompt;
use nodes::Nodes;
use provider::Provider;
use uri::{at, host_and_port};

pub use device_code::DeviceCode;
pub use sso::IdentityToken;

use crate::endpoint::{Answer, FailureKind, TokenClient, TokenEndpoint};
use crate::error::{BoxError, DeviceGrantEnd, Error, ErrorCode};
use crate::grant::{Grant, Secret};

/// How long the user has to approve a device grant, unless told otherwise.
const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest time to approve the layer takes: a deadline must not overflow an `Instant`,
/// and no identity provider keeps a device code for longer.
const MAX_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How to log in to an Ocient SQL node and refresh its access tokens.
///
/// ```
/// use std::time::Duration;
/// use tower_token_refresh::{OcientAuth, TokenRefreshLayer};
///
/// let auth = OcientAuth::new("https://sql-node:443".parse().unwrap())
///     .credentials("jdoe", "secret")
///     .database("retail_analytics");
/// let layer = TokenRefreshLayer::new(auth);
///
/// // A token obtained elsewhere (another process), refreshed for as long as the server
/// // allows; with no way to sign in there is nothing to fall back on.
/// let handed_in = OcientAuth::new("https://sql-node:443".parse().unwrap())
///     .initial_token("eyJhbGciOi...", Duration::from_secs(3600));
/// # let _ = (layer, handed_in);
/// ```
///
/// It signs in one of three ways, the last one set: with a password
/// ([`credentials`](Self::credentials), [`credentials_from`](Self::credentials_from)), or
/// through an OpenID Connect identity provider, by token exchange
/// ([`sso_token_from`](Self::sso_token_from)) or by device grant
/// ([`device_grant`](Self::device_grant)).
///
/// `Debug` shows the nodes and the user, never the password or the token.
#[derive(Clone)]
pub struct OcientAuth {
    nodes: Nodes,
    sign_in: Option<SignIn>,
    database: Option<String>,
    initial: Option<InitialToken>,
    plain_http: bool,
    approval_timeout: Duration,
}

/// How the layer signs in when it needs a new token.
#[derive(Clone)]
enum SignIn {
    /// `/v1/login` with a username and password.
    Password(Credentials),
    /// `/v1/sso_token` with an identity provider's token.
    SsoToken(Provider<IdentityToken>),
    /// `/v1/sso_device_grant`, then `/v1/sso_device_grant_verify` until the user approves.
    DeviceGrant(Prompt),
}

impl SignIn {
    /// What `Debug` calls it.
    fn name(&self) -> &'static str {
        match self {
            SignIn::Password(_) => "password",
            SignIn::SsoToken(_) => "sso_token",
            SignIn::DeviceGrant(_) => "device_grant",
        }
    }
}

#[derive(Clone)]
struct InitialToken {
    token: String,
    expires_in: Duration,
    given_at: Instant,
}

impl OcientAuth {
    /// Talks to the SQL node at `base`, e.g. `https://sql-node:443`.
    #[must_use]
    pub fn new(base: Uri) -> Self {
        OcientAuth {
            nodes: Nodes::new(base),
            sign_in: None,
            database: None,
            initial: None,
            plain_http: false,
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
        }
    }

    /// Logs in as `username` with `password`, at first and whenever the token is no good.
    #[must_use]
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.sign_in = Some(SignIn::Password(Credentials::Fixed {
            username: username.into(),
            password: password.into(),
        }));
        self
    }

    /// Logs in with the username and password `provider` gives, asked anew at **each**
    /// login: a password rotated in a secret manager or a mounted file is picked up at the
    /// next login, without a restart.
    ///
    /// ```
    /// use tower_token_refresh::OcientAuth;
    ///
    /// let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials_from(|| async {
    ///     let password = tokio::fs::read_to_string("/run/secrets/ocient").await?;
    ///     Ok(("jdoe".to_owned(), password.trim().to_owned()))
    /// });
    /// # let _ = auth;
    /// ```
    ///
    /// A provider's error fails that login with
    /// [`Error::Provider`](crate::Error::Provider), which goes through the same
    /// backoff as a login the server rejected. The provider is bounded by the refresh timeout
    /// like the rest of the login.
    #[must_use]
    pub fn credentials_from<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(String, String), BoxError>> + Send + 'static,
    {
        self.sign_in = Some(SignIn::Password(Credentials::Provided(Provider::new(
            provider,
        ))));
        self
    }

    /// Signs in through an OpenID Connect identity provider: exchanges the token `provider`
    /// gives (an ID token or an access token) at `/v1/sso_token` for an Ocient token, then
    /// refreshes that through `/v1/token_refresh`, and exchanges anew only when the server
    /// no longer refreshes it (its refresh lifetime is spent, or it was revoked).
    ///
    /// The provider is asked at **each** exchange, never per request: a token file that a
    /// workload-identity system rotates, or a new client-credentials grant, is picked up
    /// without a restart.
    ///
    /// ```
    /// use tower_token_refresh::{IdentityToken, OcientAuth};
    ///
    /// let auth = OcientAuth::new("https://sql-node".parse().unwrap())
    ///     .database("retail_analytics")
    ///     .sso_token_from(|| async {
    ///         let token = tokio::fs::read_to_string("/var/run/secrets/tokens/oidc").await?;
    ///         Ok(IdentityToken::id_token(token))
    ///     });
    /// # let _ = auth;
    /// ```
    ///
    /// The identity provider's token is a credential like a password: it goes only to the
    /// listed nodes, over HTTPS unless [`allow_plain_http`](Self::allow_plain_http), and
    /// never into `Debug`, an error or a log line. A provider's error fails that exchange
    /// with [`Error::Provider`](crate::Error::Provider), which backs off like a rejected
    /// login; the provider is bounded by the refresh timeout like the rest of the exchange.
    ///
    /// Ocient documents the answer loosely; the layer takes the Ocient token from
    /// `access_token`, or else `id_token`, and its lifetime from `expires_in`, or else the
    /// token's own `exp` claim (read, not verified: only for scheduling), or else assumes
    /// five minutes.
    #[must_use]
    pub fn sso_token_from<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<IdentityToken, BoxError>> + Send + 'static,
    {
        self.sign_in = Some(SignIn::SsoToken(Provider::new(provider)));
        self
    }

    /// Signs in by device grant, for a tool on a machine without a browser: the layer asks
    /// the node for a code, hands it to `prompt` (which shows the user where to go and what
    /// to enter), and polls until the user approves, is refused, or the
    /// [`approval_timeout`](Self::approval_timeout) passes. The token is then refreshed
    /// through `/v1/token_refresh`; a new device grant starts only when nothing else can
    /// help (no token yet, or the server no longer refreshes it).
    ///
    /// ```no_run
    /// use tower_token_refresh::{OcientAuth, TokenRefreshLayer};
    /// use tower::ServiceExt;
    /// # async fn cli(client: impl tower::Service<http::Request<http_body_util::Full<bytes::Bytes>>, Response = http::Response<http_body_util::Full<bytes::Bytes>>, Error = std::convert::Infallible, Future: Send> + Clone + Send + 'static) -> Result<(), tower::BoxError> {
    ///
    /// let auth = OcientAuth::new("https://sql-node".parse()?).device_grant(|code| {
    ///     eprintln!("To sign in, open {} and enter {}", code.verification_uri, code.user_code);
    /// });
    /// let service = tower::ServiceBuilder::new()
    ///     .layer(TokenRefreshLayer::new(auth))
    ///     .service(client);
    /// // Sign in before the first query: the prompt shows now, and this waits for approval.
    /// service.warm_up().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Callers wait for the approval like for any login, and share one device grant. A
    /// refusal fails it with [`Error::DeviceGrant`](crate::Error::DeviceGrant), as does no
    /// approval in time; either backs off like a rejected login, so the user is not asked
    /// again at once. `prompt` is called once per device grant, from the layer's task: it
    /// should print or hand off the code, not block.
    #[must_use]
    pub fn device_grant(mut self, prompt: impl Fn(&DeviceCode) + Send + Sync + 'static) -> Self {
        self.sign_in = Some(SignIn::DeviceGrant(Arc::new(prompt)));
        self
    }

    /// How long the user has to approve a [`device_grant`](Self::device_grant): five
    /// minutes unless set, a day at the most. Each poll asks the node to wait for the
    /// approval for at most what is left of this, and less than the refresh timeout (keep
    /// that above two seconds: the node waits one second at the least).
    #[must_use]
    pub fn approval_timeout(mut self, timeout: Duration) -> Self {
        self.approval_timeout = timeout.min(MAX_APPROVAL_TIMEOUT);
        self
    }

    /// Another SQL node of the same cluster. Token requests go to the node that last
    /// answered and move to the next one on a transport error, a timeout or a 5xx (not on
    /// a rejection: wrong credentials are wrong everywhere). The token goes to every listed
    /// node's origin, and to no other.
    #[must_use]
    pub fn node(mut self, uri: Uri) -> Self {
        self.nodes.add(uri);
        self
    }

    /// The database to log in to and refresh for (the server's default is `system`).
    #[must_use]
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = Some(name.into());
        self
    }

    /// Starts from a token obtained elsewhere, valid for `expires_in` from now. Whitespace
    /// around it (the newline at the end of a file, say) is dropped.
    #[must_use]
    pub fn initial_token(mut self, access_token: impl Into<String>, expires_in: Duration) -> Self {
        self.initial = Some(InitialToken {
            token: access_token.into().trim().to_owned(),
            expires_in,
            given_at: Instant::now(),
        });
        self
    }

    /// Lets the password and the token travel over plain `http://` to a host that is not
    /// loopback: for a service mesh that encrypts underneath, or a lab.
    ///
    /// Off by default: an `http://` base on another host then makes every token request,
    /// and every request that would carry the token, fail with
    /// [`Error::InsecureTransport`](crate::Error::InsecureTransport) without sending
    /// anything. Loopback hosts (`localhost`, 127.0.0.0/8, `::1`) need no opt-in.
    #[must_use]
    pub fn allow_plain_http(mut self) -> Self {
        self.plain_http = true;
        self
    }

    /// Reads a token answer as the layer does: the single sign-on answers' looser shape for
    /// a login by token exchange, the login's for the rest. For fuzzing and tests: the
    /// layer calls it itself.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use tower_token_refresh::{Answer, Exchange, OcientAuth};
    ///
    /// let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials("jdoe", "pw");
    /// let body = r#"{"access_token":"t0ken","expires_in":3600}"#;
    /// let answer = Answer::new(Exchange::Login, StatusCode::OK, HeaderMap::new(), body);
    /// assert_eq!(auth.read_answer(answer).unwrap().access_token().expose(), "t0ken");
    /// ```
    pub fn read_answer(&self, answer: Answer) -> Result<Grant, Error> {
        let shape = match (&self.sign_in, answer.exchange) {
            (Some(SignIn::SsoToken(_)), crate::Exchange::Login) => Shape::SignIn,
            _ => Shape::Login,
        };
        answer::read(answer, shape, |text| self.scrub(text))
    }

    /// Removes the secrets this client knows from text the server sent back (before
    /// [`Error::rejected`] shortens it: a cut could leave part of a secret unrecognised).
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        let signed_in_with = match &self.sign_in {
            Some(SignIn::Password(credentials)) => credentials.password(),
            Some(SignIn::SsoToken(provider)) => provider.last_secret(),
            Some(SignIn::DeviceGrant(_)) | None => None,
        };
        let initial = self.initial.as_ref().map(|i| i.token.clone());
        for secret in [signed_in_with, initial].iter().flatten() {
            if !secret.is_empty() && text.contains(secret) {
                text = text.replace(secret, "<redacted>");
            }
        }
        text
    }
}

impl fmt::Debug for OcientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = [self.nodes.primary()]
            .into_iter()
            .chain(self.nodes.others())
            .map(without_userinfo)
            .collect();
        let shown = match &self.sign_in {
            Some(SignIn::Password(credentials)) => Some(credentials.shown()),
            _ => None,
        };
        f.debug_struct("OcientAuth")
            .field("nodes", &nodes)
            .field("sign_in", &self.sign_in.as_ref().map(SignIn::name))
            .field("username", &shown.map(|(user, _)| user))
            .field("password", &shown.map(|(_, password)| password))
            .field("database", &self.database)
            .field(
                "initial_token",
                &self.initial.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_plain_http", &self.plain_http)
            .field("approval_timeout", &self.approval_timeout)
            .finish()
    }
}

impl TokenEndpoint for OcientAuth {
    fn origin(&self) -> &Uri {
        self.nodes.primary()
    }

    fn other_origins(&self) -> Vec<Uri> {
        self.nodes.others().to_vec()
    }

    fn fail_over(&self) -> Option<(Uri, Uri)> {
        let (from, to) = self.nodes.fail_over()?;
        Some((at(from, ""), at(to, "")))
    }

    fn initial_grant(&self) -> Option<Grant> {
        let initial = self.initial.as_ref()?;
        let token = Secret::new(initial.token.clone())
            .inspect_err(|error| tracing::warn!(%error, "the initial token is not usable"))
            .ok()?;
        let left = initial
            .expires_in
            .saturating_sub(initial.given_at.elapsed());
        Some(Grant::new(token, left))
    }

    fn can_log_in(&self) -> bool {
        self.sign_in.is_some()
    }

    async fn login(&self, client: &mut TokenClient<'_>) -> Result<Grant, Error> {
        match &self.sign_in {
            Some(SignIn::Password(credentials)) => {
                let (username, password) = credentials.get().await?;
                let answer = client.send(self.login_with(&username, &password)).await?;
                self.read_answer(answer)
            }
            Some(SignIn::SsoToken(provider)) => {
                let token = provider.get(IdentityToken::expose).await?;
                if token.expose().is_empty() {
                    return Err(Error::provider("the identity provider's token is empty"));
                }
                let answer = client.send(self.sso_request(&token)).await?;
                self.read_answer(answer)
            }
            Some(SignIn::DeviceGrant(prompt)) => self.sign_in_by_device(prompt, client).await,
            None => Err(Error::MissingCredentials),
        }
    }

    async fn refresh(&self, client: &mut TokenClient<'_>, current: &Grant) -> Result<Grant, Error> {
        let mut body = serde_json::Map::new();
        self.database_field(&mut body);
        let mut request = self.json_post("/v1/token_refresh", body.into());
        request
            .headers_mut()
            .insert(AUTHORIZATION, current.bearer_header());
        let answer = client.send(request).await?;
        self.read_answer(answer)
    }

    fn classify(&self, error: &Error) -> FailureKind {
        answer::classify(error)
    }

    fn allows_plain_http(&self) -> bool {
        self.plain_http
    }
}

impl Error {
    /// The Ocient vendor code, for an [`Error::Rejected`] by an Ocient node: `-304` is a
    /// wrong user or password.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use tower_token_refresh::{Answer, Exchange, OcientAuth};
    ///
    /// let auth = OcientAuth::new("https://sql-node".parse().unwrap()).credentials("jdoe", "pw");
    /// let body = r#"{"status":{"vendor_code":-304,"reason":"bad password"}}"#;
    /// let answer = Answer::new(Exchange::Login, StatusCode::UNAUTHORIZED, HeaderMap::new(), body);
    /// assert_eq!(auth.read_answer(answer).unwrap_err().vendor_code(), Some(-304));
    /// ```
    pub fn vendor_code(&self) -> Option<i64> {
        match self.code()? {
            ErrorCode::Ocient { vendor_code, .. } => Some(*vendor_code),
            _ => None,
        }
    }

    /// A device grant that ended without approval; `reason` is the server's text, if any.
    pub fn device_grant(ended: DeviceGrantEnd, reason: &str) -> Self {
        Error::DeviceGrant {
            ended,
            reason: crate::error::printable(reason),
        }
    }
}

/// `uri` as text, with any `user:password@` replaced.
fn without_userinfo(uri: &Uri) -> String {
    let text = uri.to_string();
    match uri.authority() {
        Some(authority) if authority.as_str().contains('@') => {
            let redacted = format!("<redacted>@{}", host_and_port(uri));
            text.replacen(authority.as_str(), &redacted, 1)
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests;
