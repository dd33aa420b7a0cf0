//! Nothing secret over plain http: the password and the token never go over `http://` to a
//! host that is not loopback, unless the user opted in with `allow_plain_http()`.
//!
//! Over the in-process mock behind a recorder, which counts every request that reaches the
//! wrapped service.

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Uri};
use ocient_mock::MockOcient;
use tower_token_refresh::{
    Error, Grant, IdentityToken, OcientAuth, Secret, TokenClient, TokenEndpoint, TokenRefreshLayer,
};

use crate::common;
use crate::common::{layered, query_to, secs, send, token_error};

const PLAIN: &str = "http://sql-node.test:9090";

fn auth(base: &str) -> OcientAuth {
    OcientAuth::new(base.parse().unwrap()).credentials("jdoe", "secret")
}

fn query(base: &str) -> http::Request<http_body_util::Full<Bytes>> {
    query_to(&format!("{base}/v1/execute/system"))
}

fn assert_refused(error: &tower::BoxError, origin: &str) {
    match token_error(error) {
        Error::InsecureTransport { origin: refused } => assert_eq!(refused, origin),
        other => panic!("expected InsecureTransport, got {other}"),
    }
    let shown = error.to_string();
    assert!(
        shown.contains("allow_plain_http()"),
        "names the fix: {shown}"
    );
    assert!(!shown.contains("secret"), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn a_login_over_plain_http_to_another_host_is_refused_and_nothing_is_sent() {
    let (service, recorder) = layered(MockOcient::new(), TokenRefreshLayer::new(auth(PLAIN)));
    let error = send(&service, query(PLAIN)).await.unwrap_err();
    assert_refused(&error, PLAIN);
    assert!(recorder.seen().is_empty(), "{:?}", recorder.seen());
}

/// The identity provider's token is a credential too: neither single sign-on path sends
/// anything over plain http to another host.
#[tokio::test(start_paused = true)]
async fn single_sign_on_over_plain_http_to_another_host_is_refused_and_nothing_is_sent() {
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (provider_asked, prompted) = (asked.clone(), asked.clone());
    let sso = OcientAuth::new(PLAIN.parse().unwrap()).sso_token_from(move || {
        provider_asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::future::ready(Ok(IdentityToken::id_token("idp-t0ken")))
    });
    let device = OcientAuth::new(PLAIN.parse().unwrap()).device_grant(move |_| {
        prompted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    for auth in [sso, device] {
        let (service, recorder) = layered(MockOcient::new(), TokenRefreshLayer::new(auth));
        let error = send(&service, query(PLAIN)).await.unwrap_err();
        assert_refused(&error, PLAIN);
        assert!(recorder.seen().is_empty(), "{:?}", recorder.seen());
    }
    let asked = asked.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        asked, 0,
        "no identity provider or user asked for what cannot be sent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_handed_in_is_not_sent_over_plain_http_either() {
    let auth = OcientAuth::new(PLAIN.parse().unwrap()).initial_token("t0ken", secs(3600));
    let (service, recorder) = layered(MockOcient::new(), TokenRefreshLayer::new(auth));
    let error = send(&service, query(PLAIN)).await.unwrap_err();
    assert_refused(&error, PLAIN);
    let origin_form = send(&service, query_to("/v1/execute/system")).await;
    assert_refused(&origin_form.unwrap_err(), PLAIN);
    assert!(recorder.seen().is_empty(), "{:?}", recorder.seen());
}

#[tokio::test(start_paused = true)]
async fn allow_plain_http_opts_in() {
    let auth = auth(PLAIN).allow_plain_http();
    let (service, recorder) = layered(MockOcient::new(), TokenRefreshLayer::new(auth));
    let response = send(&service, query(PLAIN)).await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(recorder.seen_at("/v1/login").len(), 1);
    let queries = recorder.seen_at("/v1/execute/system");
    assert!(queries[0].headers.contains_key(AUTHORIZATION));
}

#[tokio::test(start_paused = true)]
async fn loopback_hosts_need_no_opt_in() {
    for base in [
        "http://127.0.0.1:9090",
        "http://localhost:9090",
        "http://[::1]:9090",
    ] {
        let (service, recorder) = layered(MockOcient::new(), TokenRefreshLayer::new(auth(base)));
        let response = send(&service, query(base)).await.unwrap();
        assert!(response.status().is_success(), "{base}");
        assert_eq!(recorder.seen_at("/v1/login").len(), 1, "{base}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_added_origin_over_plain_http_is_refused_too() {
    let base = "https://sql-node.test:9443";
    let layer =
        TokenRefreshLayer::new(auth(base)).allow_origin("http://replica.test".parse().unwrap());
    let (service, recorder) = layered(MockOcient::new(), layer);
    send(&service, query(base)).await.unwrap();
    let error = send(&service, query("http://replica.test"))
        .await
        .unwrap_err();
    assert_refused(&error, "http://replica.test:80");
    assert_eq!(
        recorder.seen_at("/v1/execute/system").len(),
        1,
        "only the https one"
    );
}

/// A protocol of the user's own, whose API is on https but whose login goes to a plain
/// http server: it gets the same protection without asking.
#[derive(Debug)]
struct Custom {
    api: Uri,
    login: &'static str,
}

impl TokenEndpoint for Custom {
    fn origin(&self) -> &Uri {
        &self.api
    }

    fn can_log_in(&self) -> bool {
        true
    }

    async fn login(&self, client: &mut TokenClient<'_>) -> Result<Grant, Error> {
        let body = Bytes::from_static(br#"{"username":"jdoe","password":"secret"}"#);
        let uri = format!("{}/v1/login", self.login);
        let request = Request::post(uri)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        client.send(request).await?;
        Ok(Grant::new(Secret::new("t").unwrap(), secs(60)))
    }

    async fn refresh(&self, _: &mut TokenClient<'_>, _: &Grant) -> Result<Grant, Error> {
        unreachable!("no token is ever obtained")
    }
}

#[tokio::test(start_paused = true)]
async fn a_custom_endpoint_is_protected_by_default() {
    let base = "https://sql-node.test:9443";
    let endpoint = Custom {
        api: base.parse().unwrap(),
        login: PLAIN,
    };
    let (service, recorder) = layered(MockOcient::new(), TokenRefreshLayer::new(endpoint));
    let error = send(&service, query(base)).await.unwrap_err();
    assert_refused(&error, PLAIN);
    assert!(recorder.seen().is_empty(), "{:?}", recorder.seen());
}

/// A refused request gives back the readiness it was granted: with a limit of one inside,
/// another clone can still get through.
#[tokio::test(start_paused = true)]
async fn a_refused_request_holds_no_slot_of_the_inner_service() {
    use tower::{Layer, Service, ServiceExt};
    let base = "https://sql-node.test:9443";
    let layer =
        TokenRefreshLayer::new(auth(base)).allow_origin("http://replica.test".parse().unwrap());
    let recorder = common::Recorder::new(MockOcient::new());
    let limited = tower::limit::ConcurrencyLimitLayer::new(1).layer(recorder.clone());
    let mut refused = layer.layer(limited);
    let other = refused.clone();

    let ready = refused.ready().await.unwrap();
    let error = ready.call(query("http://replica.test")).await.unwrap_err();
    assert_refused(&error, "http://replica.test:80");
    let answer = tokio::time::timeout(secs(5), other.oneshot(query(base))).await;
    assert!(answer.expect("not starved").unwrap().status().is_success());
}
