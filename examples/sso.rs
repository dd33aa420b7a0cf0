//! Single sign-on by token exchange: a service that holds no database password signs in to
//! Ocient with a token from its OpenID Connect identity provider.
//!
//! ```text
//! cargo run --example sso                        # a built-in identity provider, the embedded mock
//! cargo run --example sso -- --tls               # the same, the mock over HTTPS
//! IDP_CLIENT_SECRET=... cargo run --example sso -- --idp http://127.0.0.1:PORT \
//!     --client-id tower-token-refresh            # another identity provider: see interop/
//! ```
//!
//! The provider handed to `OcientAuth::sso_token_from` runs a client-credentials grant
//! (RFC 6749 section 4.4) at the identity provider's token endpoint each time the layer needs
//! a new Ocient token, and nothing more: the layer exchanges that token at `/v1/sso_token`,
//! refreshes the Ocient token through `/v1/token_refresh`, and comes back to the provider only
//! when the refresh lifetime is spent.
//!
//! The embedded mock Ocient trusts the identity provider's keys (its JWKS, found through its
//! OpenID discovery document) and checks each token's signature, issuer and expiry. Its
//! tokens live 2 s and can be refreshed for 5 s, so 8 s of queries span several refreshes and
//! exchanges. It prints what happened, no token, and exits 1 if any query failed.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use ocient_mock::{MockOcient, TestIdentityProvider, TrustedIssuer};
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::{IdentityToken, OcientAuth, TokenEvent, TokenRefreshLayer};

use support::tls::{https_client, HttpsClient};

const USAGE: &str = "usage: sso [--idp http://IDENTITY-PROVIDER [--client-id ID] \
     [--audience AUD], the secret in IDP_CLIENT_SECRET] [--tls]";
const RUN_FOR: Duration = Duration::from_secs(8);
/// Where the client secret comes from, out of shell history and the process list.
const SECRET_VARIABLE: &str = "IDP_CLIENT_SECRET";

/// The identity provider to get tokens from, and who the example is there.
struct Flags {
    /// `None`: the built-in one, which takes any client.
    idp: Option<Uri>,
    client_id: String,
    /// The audience asked for, and the one the mock Ocient wants in a token.
    audience: String,
    tls: bool,
}

/// The client as the identity provider knows it.
#[derive(Clone)]
struct Client {
    id: String,
    secret: String,
    audience: String,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let flags = match flags(std::env::args().skip(1)) {
        Ok(flags) => flags,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    // The built-in identity provider lives as long as `_built_in`.
    let (idp, _built_in) = match flags.idp.clone() {
        Some(url) => (url, None),
        None => {
            let server = TestIdentityProvider::serve().await?;
            (server.uri(), Some(server))
        }
    };
    let http = https_client::<Full<Bytes>>(&[])?;
    let discovery = get_json(
        &http,
        &format!("{}.well-known/openid-configuration", slash(&idp)),
    )
    .await?;
    let text = |key: &str| {
        discovery[key]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("discovery has no {key}"))
    };
    let (issuer, token_endpoint) = (text("issuer")?, text("token_endpoint")?);
    let jwks = get_json(&http, &text("jwks_uri")?).await?.to_string();
    println!("identity provider {issuer}");

    let mock = MockOcient::new()
        .token_lifetime(Duration::from_secs(2))
        .refresh_lifetime(Duration::from_secs(5))
        .trust_issuer(TrustedIssuer::new(issuer, &jwks)?.audience(&flags.audience));
    let server = if flags.tls {
        mock.serve_tls().await?
    } else {
        mock.serve().await?
    };
    println!("embedded mock Ocient at {}", server.uri());

    let grants = Arc::new(AtomicU64::new(0));
    let auth = OcientAuth::new(server.uri())
        .database("retail_analytics")
        .sso_token_from(client_credentials(
            http.clone(),
            token_endpoint.parse()?,
            client(&flags),
            Arc::clone(&grants),
        ));
    let layer = TokenRefreshLayer::new(auth).on_token(|event: &TokenEvent<'_>| match event {
        TokenEvent::Obtained { generation, grant } => {
            println!("  Ocient token #{generation}, for {:?}", grant.lifetime())
        }
        TokenEvent::Failed { error, .. } => println!("  token request failed: {error}"),
        _ => {}
    });
    let cas: Vec<String> = server
        .ca_certificate_pem()
        .map(str::to_owned)
        .into_iter()
        .collect();
    let api = ServiceBuilder::new()
        .layer(layer)
        .service(https_client::<Full<Bytes>>(&cas)?);

    let query = format!("{}v1/execute/retail_analytics", slash(&server.uri()));
    let (mut ok, mut failed) = (0u32, 0u32);
    let deadline = tokio::time::Instant::now() + RUN_FOR;
    while tokio::time::Instant::now() < deadline {
        let request = Request::post(&query)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::from(r#"{"statement":"SELECT 1"}"#))?;
        match api.clone().oneshot(request).await {
            Ok(response) if response.status() == StatusCode::OK => ok += 1,
            outcome => {
                failed += 1;
                match outcome {
                    Ok(response) => println!("  query answered {}", response.status()),
                    Err(error) => println!("  query failed: {error}"),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let counters = server.mock().counters();
    println!("\n{ok} queries ok, {failed} failed over {RUN_FOR:?}");
    println!(
        "  client-credentials grants at the identity provider  {}",
        grants.load(Ordering::SeqCst)
    );
    println!(
        "  exchanges at /v1/sso_token                          {}",
        counters.sso_exchanges
    );
    println!(
        "  refreshes at /v1/token_refresh                      {}",
        counters.refreshes
    );
    if failed > 0 || ok == 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// The provider: a client-credentials grant at `token_endpoint`, counted in `grants`.
fn client_credentials(
    http: HttpsClient<Full<Bytes>>,
    token_endpoint: Uri,
    client: Client,
    grants: Arc<AtomicU64>,
) -> impl Fn() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<IdentityToken, BoxError>> + Send>,
> + Send
       + Sync
       + 'static {
    move || {
        let (http, token_endpoint, client, grants) = (
            http.clone(),
            token_endpoint.clone(),
            client.clone(),
            Arc::clone(&grants),
        );
        Box::pin(async move {
            let form = form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &client.id)
                .append_pair("client_secret", &client.secret)
                .append_pair("aud", &client.audience)
                .finish();
            let request = Request::post(token_endpoint)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::from(form))?;
            let answer = json_of(http.request(request).await?).await?;
            grants.fetch_add(1, Ordering::SeqCst);
            let token = answer["access_token"]
                .as_str()
                .ok_or("no access_token in the answer")?;
            Ok(IdentityToken::access_token(token))
        })
    }
}

async fn get_json(
    http: &HttpsClient<Full<Bytes>>,
    uri: &str,
) -> Result<serde_json::Value, BoxError> {
    let request = Request::get(uri).body(Full::default())?;
    json_of(http.request(request).await?).await
}

async fn json_of(
    response: http::Response<hyper::body::Incoming>,
) -> Result<serde_json::Value, BoxError> {
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("the identity provider answered {status}").into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// `uri` as text, ending in one slash.
fn slash(uri: &Uri) -> String {
    format!("{}/", uri.to_string().trim_end_matches('/'))
}

fn flags(args: impl IntoIterator<Item = String>) -> Result<Flags, String> {
    let mut flags = Flags {
        idp: None,
        client_id: "tower-token-refresh".into(),
        audience: "ocient".into(),
        tls: false,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--idp" => flags.idp = Some(value()?.parse().map_err(|e| format!("--idp: {e}"))?),
            "--client-id" => flags.client_id = value()?,
            "--audience" => flags.audience = value()?,
            "--tls" => flags.tls = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(flags)
}

/// Who the example is at the identity provider. The built-in one takes any client; the
/// secret `interop/idp.mjs` expects unless told otherwise stands in for a missing one.
fn client(flags: &Flags) -> Client {
    Client {
        id: flags.client_id.clone(),
        secret: std::env::var(SECRET_VARIABLE).unwrap_or_else(|_| "interop-secret".into()),
        audience: flags.audience.clone(),
    }
}
