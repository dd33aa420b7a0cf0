//! The protocol seam on a second protocol: the OAuth 2.0 refresh-token grant (RFC 6749
//! section 6) with refresh-token rotation, as a `TokenEndpoint`.
//!
//! ```text
//! cargo run --example oauth2_refresh
//! ```
//!
//! It starts a tiny authorization server on 127.0.0.1 (`oauth2/server.rs`): 2-second access
//! tokens, a new refresh token on every refresh, a used one refused, and a `GET /api/hello`
//! that wants a live bearer token. It sends requests through hyper-util's `Client` under
//! `TokenRefreshLayer::new(OAuth2RefreshGrant { .. })` until the refresh token has rotated
//! three times (about 3 s; at most 15 s), shows the spent first one refused, and exits 0.
//!
//! - It starts from a refresh token alone, obtained earlier (by an authorization-code flow,
//!   say): its `login` trades the newest refresh token it holds, its `refresh` the current
//!   grant's. Once the refresh token is spent, nothing helps.
//! - A refresh is a form `POST` with the client's credentials in HTTP Basic or in the body.
//!   The answer's `refresh_token` replaces the one used; an answer without one keeps it
//!   (RFC 6749 section 6 allows that).
//! - An error answer (section 5.2) becomes `Error::Rejected` with the OAuth `error` as its
//!   `ErrorCode::Named`; `classify` calls `invalid_grant` (the refresh token is expired,
//!   revoked or spent) and `invalid_client` refusals, which the layer does not repeat unasked.
//! - Lifetimes, tokens and server text go through the crate's own checks
//!   (`Grant::from_expires_in`, `Secret::new`, `Error::rejected`).
//!
//! It prints no token or secret. Its tests are in `oauth2/tests.rs`, run by `cargo test`.

pub mod oauth2;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder};
use tower_token_refresh::{
    Answer, Error, Exchange, FailureKind, Grant, Secret, TokenClient, TokenEndpoint,
    TokenRefreshLayer,
};

use oauth2::answer::{expiring, oauth_error, rejected, secret_field};
use oauth2::encoding::{basic_credentials, form_body, FORM};
use oauth2::server::TokenServer;
use oauth2::{client_secret, http_client, say_hello, ACCESS_LIFETIME, CLIENT_ID, CLIENT_SECRET};

/// How the client authenticates to the token endpoint (RFC 6749 section 2.3.1).
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(urlencode(client_id) ":" urlencode(client_secret))`.
    Basic(Secret),
    /// `client_secret` in the form body, next to `client_id`.
    Body(Secret),
}

/// The OAuth 2.0 refresh-token grant. `Debug` shows no secret: `Secret` hides them.
#[derive(Debug, Clone)]
pub struct OAuth2RefreshGrant {
    /// The authorization server's token endpoint.
    pub token_url: Uri,
    /// The resource server: requests to its origin get `Authorization: Bearer`.
    pub api: Uri,
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// The refresh token to start from.
    pub refresh_token: Secret,
    /// The lifetime of an answer without `expires_in` (it is only RECOMMENDED).
    pub default_lifetime: Duration,
    /// The newest refresh token an answer gave: rotation spends each one, so a login (after
    /// a 401 revoked the access token) trades this one, not the first.
    pub rotated: Arc<Mutex<Option<Secret>>>,
}

impl OAuth2RefreshGrant {
    /// The request that trades `refresh_token` for a new grant.
    pub fn refresh_request(&self, refresh_token: &Secret) -> Request<Bytes> {
        let mut form = vec![("grant_type", "refresh_token")];
        form.push(("refresh_token", refresh_token.expose()));
        form.push(("client_id", &self.client_id));
        let mut request = Request::new(Bytes::new());
        match &self.client_auth {
            ClientAuth::Basic(secret) => {
                let value = basic_credentials(&self.client_id, secret.expose());
                // A `Secret` and a form-encoded id are visible ASCII: always a valid value.
                if let Ok(mut value) = HeaderValue::from_str(&value) {
                    value.set_sensitive(true);
                    request.headers_mut().insert(AUTHORIZATION, value);
                }
            }
            ClientAuth::Body(secret) => form.push(("client_secret", secret.expose())),
        }
        *request.body_mut() = Bytes::from(form_body(&form));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.token_url.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(FORM));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        request
    }

    /// Reads the answer to a trade of `traded`: a grant that carries the new refresh token,
    /// or `traded` when the answer gave none.
    pub fn read_answer(&self, answer: Answer, traded: &Secret) -> Result<Grant, Error> {
        let exchange = answer.exchange;
        if !answer.status.is_success() {
            return Err(rejected(exchange, answer.status, &answer.body));
        }
        // serde's message can quote the body, and the body holds tokens: say where only.
        let parsed: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|e| {
            let at = format!("not JSON (line {} column {})", e.line(), e.column());
            Error::invalid_response(exchange, at)
        })?;
        let field = |name: &str| parsed.get(name).filter(|v| !v.is_null());

        // RFC 6749 section 7.1: a client must not use a token type it does not understand.
        match field("token_type").and_then(|v| v.as_str()) {
            Some(kind) if kind.eq_ignore_ascii_case("bearer") => {}
            Some(_) => {
                return Err(Error::invalid_response(
                    exchange,
                    "token_type is not Bearer",
                ))
            }
            None => return Err(Error::invalid_response(exchange, "token_type is missing")),
        }
        let access_token = secret_field(exchange, "access_token", field("access_token"))?;
        let grant = match field("expires_in") {
            None => Grant::new(access_token, self.default_lifetime),
            Some(expires_in) => expiring(exchange, access_token, expires_in)?,
        };
        // Rotation: a new refresh token replaces the one used; none means "keep it".
        let refresh_token = match field("refresh_token") {
            Some(value) => secret_field(exchange, "refresh_token", Some(value))?,
            None => traded.clone(),
        };
        Ok(grant.with_refresh_token(refresh_token))
    }

    /// Trades `refresh_token` for a new grant, and keeps the refresh token it carries.
    async fn trade(
        &self,
        client: &mut TokenClient<'_>,
        refresh_token: &Secret,
    ) -> Result<Grant, Error> {
        let answer = client.send(self.refresh_request(refresh_token)).await?;
        let grant = self.read_answer(answer, refresh_token)?;
        *self.rotated.lock().unwrap() = grant.refresh_token().cloned();
        Ok(grant)
    }
}

impl TokenEndpoint for OAuth2RefreshGrant {
    fn origin(&self) -> &Uri {
        &self.api
    }

    fn can_log_in(&self) -> bool {
        true
    }

    async fn login(&self, client: &mut TokenClient<'_>) -> Result<Grant, Error> {
        let newest = self.rotated.lock().unwrap().clone();
        self.trade(client, newest.as_ref().unwrap_or(&self.refresh_token))
            .await
    }

    async fn refresh(&self, client: &mut TokenClient<'_>, current: &Grant) -> Result<Grant, Error> {
        // Every grant this endpoint makes carries a refresh token.
        let refresh_token = current.refresh_token().unwrap_or(&self.refresh_token);
        self.trade(client, refresh_token).await
    }

    fn classify(&self, error: &Error) -> FailureKind {
        match oauth_error(error) {
            // RFC 6749 section 5.2: the grant or the client is no good; asking again
            // unasked would not change that.
            Some("invalid_grant") if error_exchange(error) == Some(Exchange::Refresh) => {
                FailureKind::Revoked
            }
            Some("invalid_grant" | "invalid_client" | "unauthorized_client") => {
                FailureKind::Refused
            }
            _ => FailureKind::of(error),
        }
    }
}

/// Which exchange a rejection answered.
fn error_exchange(error: &Error) -> Option<Exchange> {
    match error {
        Error::Rejected { exchange, .. } => Some(*exchange),
        _ => None,
    }
}

/// A grant for the example's client at `server`, starting from the refresh token `refresh`.
pub fn grant_for(server: &TokenServer, auth: ClientAuth, refresh: Secret) -> OAuth2RefreshGrant {
    OAuth2RefreshGrant {
        token_url: server.uri("/oauth/token"),
        api: server.uri("/"),
        client_id: CLIENT_ID.to_owned(),
        client_auth: auth,
        refresh_token: refresh,
        default_lifetime: Duration::from_secs(60),
        rotated: Arc::default(),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    const ROTATIONS: u64 = 3;
    let server = TokenServer::start(CLIENT_ID, CLIENT_SECRET, ACCESS_LIFETIME).await?;
    let first_refresh_token = server.first_refresh_token();
    let token_url = server.uri("/oauth/token");
    print!("OAuth 2.0 token endpoint {token_url} ");
    println!("(access tokens live {ACCESS_LIFETIME:?}, refresh tokens rotate)");
    println!("protected resource      {}", server.uri("/api/hello"));
    println!("the client starts from a refresh token obtained earlier, and no access token\n");

    let basic = ClientAuth::Basic(client_secret());
    let grant = grant_for(&server, basic, first_refresh_token.clone());
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(grant))
        .service(http_client());

    let mut ok = true;
    let deadline = Instant::now() + oauth2::DEADLINE;
    let mut pace = tokio::time::interval(Duration::from_millis(200));
    let mut n = 0;
    while server.stats().refreshes < ROTATIONS {
        if Instant::now() > deadline {
            println!("no {ROTATIONS} rotations within {:?}", oauth2::DEADLINE);
            ok = false;
            break;
        }
        pace.tick().await;
        n += 1;
        let outcome = say_hello(&service, &server).await;
        let refreshes = server.stats().refreshes;
        match outcome {
            Ok((status, text)) => {
                ok &= status == StatusCode::OK;
                println!("request {n:>2}: HTTP {status}  {text:<22} refreshes so far {refreshes}");
            }
            Err(error) => {
                ok = false;
                println!("request {n:>2}: failed: {error}");
            }
        }
    }

    let stats = server.stats();
    println!("\nserver saw\n{stats}");
    ok &= stats.max_presentations == 1 && stats.api_unauthorized == 0;

    println!("\na second client starts from the first refresh token, spent long ago");
    println!("(it sends its client secret in the form body instead of HTTP Basic)");
    let in_body = ClientAuth::Body(client_secret());
    let stale = grant_for(&server, in_body, first_refresh_token);
    let stale_service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(stale.clone()))
        .service(http_client());
    match say_hello(&stale_service, &server).await {
        Ok((status, _)) => {
            ok = false;
            println!("  unexpectedly answered HTTP {status}");
        }
        Err(error) => match error.downcast_ref::<Error>() {
            Some(error) => {
                println!("  {error}");
                let kind = stale.classify(error);
                println!("  the grant calls that refresh token {kind:?}");
                ok &= oauth_error(error) == Some("invalid_grant");
            }
            None => {
                ok = false;
                println!("  failed in transport: {error}");
            }
        },
    }
    let reused = server.stats().reuse_refused;
    println!("  server refused reused refresh tokens {reused} time(s)");

    match say_hello(&service, &server).await {
        Ok((status, text)) => {
            ok &= status == StatusCode::OK;
            println!("\nthe first client carries on: HTTP {status}  {text}");
        }
        Err(error) => {
            ok = false;
            println!("\nthe first client failed: {error}");
        }
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
