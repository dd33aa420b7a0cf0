//! A token per identity over real HTTP: a thousand users of one layer, each request
//! carrying its own user's token, which the mock checks against `x-mock-identity`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ocient_mock::{MockOcient, MockServer, IDENTITY_HEADER};
use tokio::task::JoinSet;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_refresh::{Error, OcientAuth, PerIdentity, PerIdentityLayer};

use crate::common;

const USERS: usize = 1000;
const REQUESTS_EACH: usize = 100;
/// Callers sending at once, each for its share of the users.
const CALLERS: usize = 50;

/// Whose request it is, as an application would put it in the extensions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct User(Arc<str>);

type Service = PerIdentity<Client<HttpConnector, Full<Bytes>>, User>;

fn name(user: usize) -> String {
    format!("user-{user}")
}

fn password(user: &str) -> String {
    format!("{user}-password")
}

/// The mock, knowing every user's password.
fn mock_of(users: usize) -> MockOcient {
    (0..users).fold(MockOcient::new(), |mock, user| {
        let name = name(user);
        let password = password(&name);
        mock.user(name, password)
    })
}

fn layered(server: &MockServer) -> Service {
    let uri = server.uri();
    let layer = PerIdentityLayer::new(move |user: &User| {
        OcientAuth::new(uri.clone()).credentials(&*user.0, password(&user.0))
    })
    .max_token_requests_in_flight(8);
    let client = Client::builder(TokioExecutor::new()).build_http();
    ServiceBuilder::new().layer(layer).service(client)
}

/// A query as `user` sends it: the user in the extensions for the layer, and in the
/// mock's header for the check.
fn query_as(server: &Uri, user: &User) -> Request<Full<Bytes>> {
    let mut request = common::query_to(&format!("{server}v1/execute/system"));
    let claim = http::HeaderValue::from_str(&user.0).unwrap();
    request.headers_mut().insert(IDENTITY_HEADER, claim);
    request.extensions_mut().insert(user.clone());
    request
}

/// `REQUESTS_EACH` rounds over every user, interleaved: caller `c` sends for the users
/// `c`, `c + CALLERS`, ... in each round, round `r` no sooner than `r * pace` from the
/// start. Every answer must be 200.
async fn rounds(server: &MockServer, service: &Service, pace: Duration) -> Duration {
    let users: Arc<[User]> = (0..USERS).map(|u| User(name(u).into())).collect();
    let start = tokio::time::Instant::now();
    let mut callers = JoinSet::new();
    for caller in 0..CALLERS {
        let (service, users, server) = (service.clone(), Arc::clone(&users), server.uri());
        callers.spawn(async move {
            for round in 0..REQUESTS_EACH {
                tokio::time::sleep_until(start + pace * round as u32).await;
                for user in users.iter().skip(caller).step_by(CALLERS) {
                    let request = query_as(&server, user);
                    let response = service.clone().oneshot(request).await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK, "{user:?}");
                }
            }
        });
    }
    callers.join_all().await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_users_each_send_only_their_own_token_from_one_login() {
    let server = mock_of(USERS).serve().await.unwrap();
    let service = layered(&server);
    let started = Instant::now();
    rounds(&server, &service, Duration::ZERO).await;
    println!(
        "{} requests for {USERS} users in {:?}",
        USERS * REQUESTS_EACH,
        started.elapsed()
    );

    let counters = server.mock().counters();
    assert_eq!(counters.queries_wrong_identity, 0, "never another's token");
    assert_eq!(counters.queries_ok, (USERS * REQUESTS_EACH) as u64);
    assert_eq!(counters.logins, USERS as u64, "one login per user");
    assert_eq!(counters.token_requests(), USERS as u64, "and nothing else");
    assert!(
        counters.peak_token_requests_in_flight <= 8,
        "{} token requests at once",
        counters.peak_token_requests_in_flight
    );
    let status = service.status();
    assert_eq!((status.held, status.usable), (USERS, USERS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_second_tokens_each_user_refreshes_as_one_token_would() {
    let lifetime = Duration::from_secs(2);
    let server = mock_of(USERS)
        .token_lifetime(lifetime)
        .serve()
        .await
        .unwrap();
    let service = layered(&server);
    // A round every 60 ms: six seconds, three lifetimes, if the machine keeps up.
    let took = rounds(&server, &service, Duration::from_millis(60)).await;

    let counters = server.mock().counters();
    println!("{USERS} users for {took:?}: {counters:?}");
    assert_eq!(counters.queries_wrong_identity, 0, "never another's token");
    assert_eq!(counters.queries_bad_token, 0, "never a dead token");
    assert_eq!(counters.queries_ok, (USERS * REQUESTS_EACH) as u64);
    assert_eq!(
        counters.logins, USERS as u64,
        "one login per user, then refreshes"
    );
    // A token is refreshed once half its lifetime is left (later by up to a tenth of it):
    // no user refreshes more often than that, and each one keeps refreshing.
    let half_life = lifetime.as_secs_f64() / 2.0;
    let most_each = (took.as_secs_f64() / half_life).ceil() as u64;
    assert!(
        counters.refreshes <= USERS as u64 * most_each,
        "{} refreshes in {took:?}",
        counters.refreshes
    );
    let least_each = ((took.as_secs_f64() - lifetime.as_secs_f64()) / (half_life * 1.2)) as u64;
    assert!(
        least_each >= 2 && counters.refreshes >= USERS as u64 * least_each,
        "{} refreshes in {took:?}",
        counters.refreshes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_whose_login_fails_hold_no_one_else_back() {
    let server = mock_of(3).serve().await.unwrap();
    let uri = server.uri();
    // The second user's password is wrong: their login is rejected, the others' are not.
    let layer = PerIdentityLayer::new(move |user: &User| {
        let password = match &*user.0 {
            "user-1" => "wrong".to_owned(),
            name => password(name),
        };
        OcientAuth::new(uri.clone()).credentials(&*user.0, password)
    });
    let client = Client::builder(TokioExecutor::new()).build_http();
    let service = ServiceBuilder::new().layer(layer).service(client);
    let users: Vec<User> = (0..3).map(|u| User(name(u).into())).collect();
    for _ in 0..3 {
        for user in &users {
            let answer = service.clone().oneshot(query_as(&server.uri(), user)).await;
            match &*user.0 {
                "user-1" => assert!(answer.is_err(), "rejected: {answer:?}"),
                _ => assert_eq!(answer.unwrap().status(), StatusCode::OK),
            }
        }
    }
    let counters = server.mock().counters();
    assert_eq!(counters.queries_ok, 6);
    assert_eq!(counters.queries_wrong_identity, 0);
    let status = service.status();
    assert_eq!((status.held, status.usable, status.failing), (3, 2, 1));
    let refused = service.status_of(&users[1]).unwrap();
    assert!(refused.last_error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_names_no_identity_is_not_sent() {
    let server = mock_of(1).serve().await.unwrap();
    let service = layered(&server);
    let mut anonymous = query_as(&server.uri(), &User("user-0".into()));
    anonymous.extensions_mut().clear();
    let error = service.clone().oneshot(anonymous).await.unwrap_err();
    assert!(
        matches!(error.downcast_ref::<Error>(), Some(Error::NoIdentity)),
        "{error}"
    );
    let counters = server.mock().counters();
    assert_eq!(counters.token_requests(), 0, "no login");
    assert_eq!(
        counters.queries_ok + counters.queries_no_token,
        0,
        "nothing sent"
    );
    assert_eq!(service.status().held, 0);

    // Unless the layer says whose such a request is.
    let uri = server.uri();
    let layer = PerIdentityLayer::new(move |user: &User| {
        OcientAuth::new(uri.clone()).credentials(&*user.0, password(&user.0))
    })
    .default_identity(User("user-0".into()));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let service = ServiceBuilder::new().layer(layer).service(client);
    let mut anonymous = query_as(&server.uri(), &User("user-0".into()));
    anonymous.extensions_mut().clear();
    let response = service.oneshot(anonymous).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.mock().counters().queries_wrong_identity, 0);
}
