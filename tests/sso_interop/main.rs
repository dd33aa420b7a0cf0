//! Single sign-on against an identity provider no one here wrote: oauth2-mock-server 8.2.3, a
//! Node.js OAuth 2.0 / OpenID Connect server, started from `interop/idp.mjs`.
//!
//! What it proves, on the real clock over real sockets on 127.0.0.1:
//!
//! - a third party's tokens are accepted end to end: a real client-credentials grant
//!   (form-encoded, `client_secret_post`) gets an RS256 JWT signed with a key made by
//!   another JOSE implementation (`jose`), with its `iss`, `aud` and wall-clock `exp`; the
//!   mock Ocient verifies it against the JWKS fetched from that provider over HTTP, and
//!   the layer trades it at `/v1/sso_token` over HTTPS;
//! - the layer then keeps the Ocient token fresh through `/v1/token_refresh` (three
//!   refreshes at least), and when the server stops taking refreshes (the refresh lifetime
//!   is spent) it exchanges anew, asking the provider again: exactly once per exchange,
//!   never per query;
//! - no query failed and every one carried a valid token, across those refreshes and
//!   exchanges;
//! - the launcher exits by itself when its stdin closes, so a test that dies leaves no
//!   node process behind.
//!
//! It needs `node` (20.19+) and `npm ci` in `interop/`. Without them it prints one line
//! saying it is skipped, and passes; with `REQUIRE_SSO_INTEROP=1` in the environment (as
//! `.ci/run` sets once it installed the packages) a skip fails instead.

#[path = "../common/mod.rs"]
mod common;
mod idp;

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use ocient_mock::{Counters, MockOcient, MockServer, TrustedIssuer};
use tokio::time::{Instant, MissedTickBehavior};
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::{IdentityToken, OcientAuth, TokenEvent, TokenRefresh, TokenRefreshLayer};

use common::https::{https_client, HttpsClient};
use common::{millis, secs};
use idp::{Idp, Skip, AUDIENCE};

/// Ocient tokens live 2 s and the layer refreshes them when half is left, about every
/// second; a token from one exchange can be refreshed for 4 s, so the fourth or fifth
/// refresh is refused and the layer exchanges anew. About 4.5 s of queries then see three
/// refreshes and a second exchange.
const TOKEN_LIFETIME: Duration = Duration::from_secs(2);
const REFRESH_LIFETIME: Duration = Duration::from_secs(4);

/// How long the queries may take to see all that: far more than the 4.5 s it takes.
const QUERY_DEADLINE: Duration = Duration::from_secs(12);

/// Bounds the whole run, should anything hang.
const WHOLE_RUN: Duration = Duration::from_secs(45);

/// The refreshes and exchanges to see before stopping.
const REFRESHES: u64 = 3;
const EXCHANGES: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_signs_in_with_a_third_party_identity_providers_tokens() -> Result<(), BoxError> {
    let started = Instant::now();
    let mut idp = match Idp::start().await? {
        Ok(idp) => idp,
        Err(Skip(why)) => return skip(why),
    };
    let outcome = tokio::time::timeout(WHOLE_RUN, run(&idp)).await;
    // Whatever happened, node goes now: by itself once its stdin closes, or killed when
    // `idp` drops on the way out.
    let exit = idp.close_stdin_and_wait(secs(5)).await;
    let measured = match outcome {
        Ok(Ok(measured)) => measured,
        Ok(Err(error)) => {
            return Err(format!("{error}\nidp.mjs's stderr: {:?}", idp.stderr()).into())
        }
        Err(_) => return Err(format!("the interop did not finish within {WHOLE_RUN:?}").into()),
    };
    let status = exit?;
    assert!(
        status.success(),
        "idp.mjs exited with {status} when its stdin closed; stderr: {:?}",
        idp.stderr()
    );
    println!(
        "sso interop: {:.1?} in all, {:.1?} of queries: {} queries, {} Ocient refreshes \
         ({} good), {} SSO exchanges ({} client-credentials grants)",
        started.elapsed(),
        measured.querying,
        measured.queries,
        measured.counters.refreshes,
        measured.refreshed,
        measured.counters.sso_exchanges,
        measured.grants,
    );
    Ok(())
}

/// Prints why the interop cannot run, past the test harness's capture so it shows, and
/// passes; or fails when the environment says the interop must run.
fn skip(why: String) -> Result<(), BoxError> {
    if std::env::var_os("REQUIRE_SSO_INTEROP").is_some_and(|v| !v.is_empty() && v != "0") {
        return Err(format!("REQUIRE_SSO_INTEROP is set, but {why}").into());
    }
    let _ = writeln!(std::io::stderr(), "sso_interop {why}");
    Ok(())
}

/// What one run saw.
struct Measured {
    querying: Duration,
    queries: u64,
    /// Client-credentials grants the layer's provider made.
    grants: u64,
    /// Refreshes that gave a new token, as the layer saw them.
    refreshed: u64,
    counters: Counters,
}

async fn run(idp: &Idp) -> Result<Measured, BoxError> {
    // The provider speaks plain HTTP on loopback; this client trusts no CA at all.
    let idp_client: HttpsClient<Full<Bytes>> = https_client(&[])?;
    let jwks = idp::get(&idp_client, &idp.endpoints.jwks_uri)
        .await
        .map_err(|error| format!("fetching the provider's JWKS: {error}"))?;
    let jwks = std::str::from_utf8(&jwks).map_err(|error| format!("the JWKS: {error}"))?;
    let issuer = TrustedIssuer::new(idp.endpoints.issuer.clone(), jwks)
        .map_err(|error| format!("the mock does not take the provider's JWKS: {error}"))?
        .audience(AUDIENCE);
    let mock = MockOcient::new()
        .token_lifetime(TOKEN_LIFETIME)
        .refresh_lifetime(REFRESH_LIFETIME)
        .trust_issuer(issuer);
    let server = mock
        .serve_tls()
        .await
        .map_err(|error| format!("serving the mock Ocient: {error}"))?;

    let grants = Arc::new(AtomicU64::new(0));
    let provider = {
        let (grants, client) = (Arc::clone(&grants), idp_client.clone());
        let token_endpoint = idp.endpoints.token_endpoint.clone();
        move || {
            let (grants, client) = (Arc::clone(&grants), client.clone());
            let token_endpoint = token_endpoint.clone();
            async move {
                grants.fetch_add(1, Ordering::SeqCst);
                let token = idp::client_credentials(&client, &token_endpoint).await?;
                Ok(IdentityToken::access_token(token))
            }
        }
    };
    let auth = OcientAuth::new(server.uri())
        .database("retail_analytics")
        .sso_token_from(provider);

    let events = Events::default();
    let layer = TokenRefreshLayer::new(auth)
        .refresh_timeout(secs(5))
        .on_token(events.hook());
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(ocient_client(&server)?);
    let uri = format!("{}v1/execute/retail_analytics", server.uri());

    // Three callers at a time, about every 25 ms, until the layer has refreshed three
    // times and exchanged twice.
    let querying = Instant::now();
    let deadline = querying + QUERY_DEADLINE;
    let mut ticks = tokio::time::interval(millis(25));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut queries = 0_u64;
    loop {
        ticks.tick().await;
        let (a, b, c) = tokio::join!(
            query(&service, &uri),
            query(&service, &uri),
            query(&service, &uri)
        );
        for outcome in [a, b, c] {
            queries += 1;
            outcome.map_err(|error| format!("query {queries} failed: {error}"))?;
        }
        let exchanges = grants.load(Ordering::SeqCst);
        let refreshed = events.obtained().saturating_sub(exchanges);
        if refreshed >= REFRESHES && exchanges >= EXCHANGES {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "after {QUERY_DEADLINE:?} of queries: {refreshed} refreshes and {exchanges} \
                 exchanges, waiting for {REFRESHES} and {EXCHANGES}; layer failures: {:?}; \
                 mock: {:?}",
                events.failures(),
                server.mock().counters()
            )
            .into());
        }
    }
    let querying = querying.elapsed();

    // A refresh the last queries started may still be on its way: wait until every token
    // request the mock counted has been answered and reported to the layer's hook.
    let counters = settled(&server, &grants, &events).await?;
    let grants = grants.load(Ordering::SeqCst);
    let refreshed = events.obtained().saturating_sub(grants);

    assert_eq!(
        events.failures(),
        Vec::<String>::new(),
        "no exchange or refresh failed"
    );
    assert!(
        counters.refreshes >= REFRESHES && refreshed >= REFRESHES,
        "at least {REFRESHES} refreshes: the mock counted {}, {refreshed} gave a token",
        counters.refreshes
    );
    assert!(grants >= EXCHANGES, "a new exchange once refreshes ran out");
    assert_eq!(
        counters.sso_exchanges, grants,
        "the provider is asked exactly once per exchange"
    );
    assert_eq!(
        counters.failed_token_requests,
        grants - 1,
        "the only token requests refused are the refreshes past the refresh lifetime, each \
         followed by an exchange: {counters:?}"
    );
    assert_eq!(counters.logins, 0, "single sign-on only: {counters:?}");
    assert_eq!(
        counters.queries_bad_token, 0,
        "every query carried a valid token"
    );
    assert_eq!(counters.queries_no_token, 0, "every query carried a token");
    assert_eq!(
        counters.queries_ok, queries,
        "every query reached the node and was answered"
    );
    Ok(Measured {
        querying,
        queries,
        grants,
        refreshed,
        counters,
    })
}

/// The client under the layer: it trusts the mock's CA, and no other.
fn ocient_client(server: &MockServer) -> Result<HttpsClient<Full<Bytes>>, BoxError> {
    let cas: Vec<String> = server
        .ca_certificate_pem()
        .into_iter()
        .map(Into::into)
        .collect();
    https_client(&cas)
}

/// One query through the layer; an error unless the node answered it with success.
async fn query(
    service: &TokenRefresh<HttpsClient<Full<Bytes>>>,
    uri: &str,
) -> Result<(), BoxError> {
    let response = service.clone().oneshot(common::query_to(uri)).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status != StatusCode::OK || answer["status"]["vendor_code"] != 0 {
        let body = String::from_utf8_lossy(&body);
        return Err(format!("{status}: {body}").into());
    }
    Ok(())
}

/// Waits (for the condition, at most 10 s) until every token request the mock counted was
/// answered and the layer heard of it, and every grant led to an exchange; then the
/// mock's counters.
async fn settled(
    server: &MockServer,
    grants: &AtomicU64,
    events: &Events,
) -> Result<Counters, BoxError> {
    let deadline = Instant::now() + secs(10);
    loop {
        let counters = server.mock().counters();
        let answered = events.obtained() + counters.failed_token_requests;
        let quiet = counters.token_requests() == answered
            && counters.sso_exchanges == grants.load(Ordering::SeqCst);
        if quiet {
            return Ok(counters);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "token requests still in flight after 10 s: {} grants, {} tokens obtained, \
                 mock: {counters:?}",
                grants.load(Ordering::SeqCst),
                events.obtained()
            )
            .into());
        }
        tokio::time::sleep(millis(10)).await;
    }
}

/// What the layer's `on_token` hook heard.
#[derive(Clone, Default)]
struct Events {
    obtained: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Events {
    fn hook(&self) -> impl Fn(&TokenEvent<'_>) + Send + Sync + 'static {
        let events = self.clone();
        move |event| match event {
            TokenEvent::Obtained { .. } => {
                events.obtained.fetch_add(1, Ordering::SeqCst);
            }
            TokenEvent::Failed { error, .. } => {
                if let Ok(mut failures) = events.failures.lock() {
                    failures.push(error.to_string());
                }
            }
            _ => {}
        }
    }

    /// New tokens: one per exchange and one per good refresh.
    fn obtained(&self) -> u64 {
        self.obtained.load(Ordering::SeqCst)
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
