//! Single sign-on by token exchange (`OcientAuth::sso_token_from`): the identity provider's
//! token traded at `/v1/sso_token`, asked for once per exchange, exchanged anew only when the
//! Ocient token can no longer be refreshed; the answer shapes Ocient leaves open; the
//! identity provider's token as a secret. On tokio's paused clock over the in-process mock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use ocient_mock::{MockOcient, SsoAnswer};
use tokio::time::sleep;
use tower_token_refresh::{Error, IdentityToken, OcientAuth, TokenEvent, TokenRefreshLayer};

use crate::common::capture::Capture;
use crate::common::{
    all_ok_at_once, layered, query, secs, send, through_a_revocation, token_error, BASE,
};

/// A provider handing out `idp-1`, `idp-2`, ... as `kind`, counting how often it is asked.
fn provider(kind: fn(String) -> IdentityToken) -> (OcientAuth, Arc<AtomicU32>) {
    let asked = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&asked);
    let auth = OcientAuth::new(BASE.parse().unwrap())
        .database("retail_analytics")
        .sso_token_from(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready(Ok(kind(format!("idp-{n}"))))
        });
    (auth, asked)
}

fn id_token(token: String) -> IdentityToken {
    IdentityToken::id_token(token)
}

fn access_token(token: String) -> IdentityToken {
    IdentityToken::access_token(token)
}

#[tokio::test(start_paused = true)]
async fn an_id_token_or_an_access_token_is_exchanged_once_for_many_queries() {
    for (kind, field) in [
        (id_token as fn(_) -> _, "id_token"),
        (access_token, "access_token"),
    ] {
        let mock = MockOcient::new().sso_tokens(["idp-1"]);
        let (auth, asked) = provider(kind);
        let (service, recorder) = layered(mock.clone(), TokenRefreshLayer::new(auth));
        for _ in 0..50 {
            let response = send(&service, query()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{field}");
        }
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "{field}: asked once, not per request"
        );
        let counters = mock.counters();
        assert_eq!(
            (counters.sso_exchanges, counters.queries_ok),
            (1, 50),
            "{field}"
        );
        let exchange = &recorder.seen_at("/v1/sso_token")[0];
        let body: serde_json::Value = serde_json::from_slice(&exchange.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({field: "idp-1", "database": "retail_analytics"})
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_callers_at_start_share_one_provider_call_and_one_exchange() {
    let mock = MockOcient::new()
        .sso_tokens(["idp-1"])
        .latency(Duration::from_millis(200));
    let (auth, asked) = provider(access_token);
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    all_ok_at_once(&service, 1000).await;
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    let counters = mock.counters();
    assert_eq!((counters.sso_exchanges, counters.queries_ok), (1, 1000));
}

#[tokio::test(start_paused = true)]
async fn an_identity_token_the_node_refuses_is_a_rejection_without_a_storm() {
    let mock = MockOcient::new().sso_tokens(["another-token"]);
    let (auth, asked) = provider(id_token);
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    let error = send(&service, query()).await.unwrap_err();
    match token_error(&error) {
        Error::Rejected { status, .. } => assert_eq!(*status, StatusCode::UNAUTHORIZED),
        other => panic!("expected a rejection, got {other}"),
    }
    assert_eq!(token_error(&error).vendor_code(), Some(-1205));
    // Callers keep coming: they get the failure until the backoff is over.
    for _ in 0..100 {
        assert!(send(&service, query()).await.is_err());
        sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(mock.counters().sso_exchanges, 1, "no retry storm");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_spent_refresh_lifetime_leads_to_a_new_exchange_with_a_fresh_identity_token() {
    let mock = MockOcient::new()
        .sso_tokens(["idp-1"])
        .token_lifetime(secs(20))
        .refresh_lifetime(secs(50));
    let (auth, asked) = provider(id_token);
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    send(&service, query()).await.unwrap();
    // From now on the identity provider's first token is no longer taken: only a fresh
    // one gets past the exchange.
    mock.set_sso_tokens(["idp-2"]);
    for _ in 0..20 {
        sleep(secs(5)).await;
        let response = send(&service, query()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let counters = mock.counters();
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "asked again for the new exchange"
    );
    assert_eq!(counters.sso_exchanges, 2);
    assert!(
        counters.refreshes >= 2,
        "refreshed in between: {counters:?}"
    );
    assert_eq!(counters.queries_bad_token, 0);
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_leads_to_a_new_exchange() {
    let mock = MockOcient::new().sso_tokens(["idp-1", "idp-2"]);
    let (auth, asked) = provider(access_token);
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    through_a_revocation(&service, &mock).await;
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert_eq!(mock.counters().sso_exchanges, 2);
}

/// Refreshes the mock saw after a query at each of `at` (seconds from the first query).
async fn refreshes_seen(answer: SsoAnswer, lifetime: u64, at: &[u64]) -> Vec<u64> {
    let mock = MockOcient::new()
        .sso_tokens(["idp-1"])
        .sso_answer(answer)
        .token_lifetime(secs(lifetime));
    let (auth, _) = provider(id_token);
    let (service, _) = layered(mock.clone(), TokenRefreshLayer::new(auth));
    send(&service, query()).await.unwrap();
    let start = tokio::time::Instant::now();
    let mut seen = Vec::new();
    for &second in at {
        tokio::time::sleep_until(start + secs(second)).await;
        let response = send(&service, query()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "at {second} s");
        sleep(Duration::from_millis(10)).await;
        seen.push(mock.counters().refreshes);
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn each_answer_shape_ocient_leaves_open_is_refreshed_in_time() {
    // The refresh point is at half the lifetime, plus a spread of up to a tenth of it.
    // `expires_in`, as login answers: 100 s, so refreshed between 50 and 60 s.
    let like_login = refreshes_seen(SsoAnswer::LikeLogin, 100, &[49, 61]).await;
    assert_eq!(like_login, [0, 1]);
    // `id_token` alone, a JWT: its `exp` says the same 100 s (in whole seconds: a little less).
    let with_exp = refreshes_seen(SsoAnswer::IdTokenWithExp, 100, &[48, 61]).await;
    assert_eq!(with_exp, [0, 1]);
    // `id_token` alone and opaque: five minutes assumed, so refreshed between 150 and 180 s.
    let opaque = refreshes_seen(SsoAnswer::IdTokenOpaque, 3600, &[61, 149, 181]).await;
    assert_eq!(opaque, [0, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn the_identity_token_shows_nowhere() {
    let logs = Arc::new(Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Capture(Arc::clone(&logs)));
    let events = Arc::new(Mutex::new(String::new()));
    let heard = Arc::clone(&events);
    let mock = MockOcient::new().sso_tokens(["idp-1"]);
    let (auth, _) = provider(access_token);
    let layer = TokenRefreshLayer::new(auth.clone()).on_token(move |event: &TokenEvent<'_>| {
        heard.lock().unwrap().push_str(&format!("{event:?}\n"));
    });
    let (service, _) = layered(mock.clone(), layer.clone());
    send(&service, query()).await.unwrap(); // idp-1 exchanged
    mock.revoke_all();
    send(&service, query()).await.unwrap(); // 401: revoked
    let error = send(&service, query()).await.unwrap_err(); // idp-2 refused

    let status = service.status();
    let shown = format!(
        "{auth:?} {layer:?} {error} {error:?} {status:?} {} {}",
        events.lock().unwrap(),
        logs.lock().unwrap()
    );
    assert!(
        shown.contains("Rejected"),
        "the refusal is in what was checked: {shown}"
    );
    for secret in ["idp-1", "idp-2"] {
        assert!(!shown.contains(secret), "{secret} leaked into: {shown}");
    }
}
