//! A token per identity when the token endpoint fails: ten thousand users through an
//! outage never put more than the cap of token requests on the node, and are all usable
//! again within seconds of its return; a provider that fails for one user fails no other.

use ocient_mock::MockOcient;
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tower::ServiceBuilder;
use tower_token_refresh::{Error, OcientAuth, PerIdentity, PerIdentityLayer};

use crate::common::outage::Switch;
use crate::common::{millis, query, secs, send, BASE};

const USERS: u32 = 10_000;
const CAP: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct User(u32);

type Service = PerIdentity<Switch<MockOcient>, User>;
type Body = http_body_util::Full<bytes::Bytes>;

fn password(user: u32) -> String {
    format!("password-{user}")
}

fn users(count: u32) -> MockOcient {
    (0..count).fold(MockOcient::new(), |mock, user| {
        mock.user(format!("user-{user}"), password(user))
    })
}

fn layer() -> PerIdentityLayer<User> {
    PerIdentityLayer::new(|user: &User| {
        OcientAuth::new(BASE.parse().unwrap())
            .credentials(format!("user-{}", user.0), password(user.0))
    })
    .max_token_requests_in_flight(CAP)
}

/// Every user's token, obtained at once.
async fn warm_up_everyone(service: &Service) {
    let mut users = JoinSet::new();
    for user in 0..USERS {
        users.spawn(service.warm_up(User(user)));
    }
    for warmed in users.join_all().await {
        warmed.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_users_through_an_outage_never_exceed_the_cap_and_recover_within_seconds() {
    // A minute's tokens, and 5 ms a token request, so that requests overlap: the cap of
    // 16 lets 3,200 logins a second through, 10,000 in about 3 s.
    let mock = users(USERS).token_lifetime(secs(60)).latency(millis(5));
    let switch = Switch::new(mock.clone());
    let layer = layer().refresh_when_idle(true);
    let service = ServiceBuilder::new().layer(layer).service(switch.clone());

    warm_up_everyone(&service).await;
    assert_eq!(mock.counters().logins, u64::from(USERS));
    assert_eq!(service.status().usable, USERS as usize);

    // Down for longer than a token lives: every token dies, with nobody sending.
    switch.set_down(true);
    sleep(secs(90)).await;
    assert_eq!(
        service.status().usable,
        0,
        "the outage outlived every token"
    );
    switch.set_down(false);
    let back = Instant::now();
    let mut usable = 0;
    while back.elapsed() <= secs(10) && usable < USERS as usize {
        sleep(millis(100)).await;
        usable = service.status().usable;
    }
    let counters = mock.counters();
    println!(
        "usable again {:?} after the return; {} refused while down; peak {}",
        back.elapsed(),
        switch.refused_token_requests(),
        counters.peak_token_requests_in_flight
    );
    assert_eq!(usable, USERS as usize, "every user, within 10 s");
    assert!(
        counters.peak_token_requests_in_flight <= CAP as u64,
        "{} token requests at once",
        counters.peak_token_requests_in_flight
    );
    assert!(
        counters.peak_token_requests_in_flight >= CAP as u64 / 2,
        "the cap was put to use: {}",
        counters.peak_token_requests_in_flight
    );
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_fails_for_one_user_fails_no_other() {
    let mock = users(3);
    let layer = PerIdentityLayer::new(|user: &User| {
        let name = format!("user-{}", user.0);
        let password = password(user.0);
        let vault_sealed = user.0 == 1;
        OcientAuth::new(BASE.parse().unwrap()).credentials_from(move || {
            let answer = match vault_sealed {
                true => Err("vault sealed".into()),
                false => Ok((name.clone(), password.clone())),
            };
            std::future::ready(answer)
        })
    });
    let service = ServiceBuilder::new().layer(layer).service(mock.clone());
    for round in 0..3 {
        for user in 0..3 {
            let mut request = query();
            request.extensions_mut().insert(User(user));
            let answer = send(&service, request).await;
            match user {
                1 => {
                    let error = answer.unwrap_err();
                    let error = error.downcast_ref::<Error>();
                    assert!(matches!(error, Some(Error::Provider { .. })), "{error:?}");
                }
                _ => assert!(answer.is_ok(), "round {round}, user {user}: {answer:?}"),
            }
        }
        sleep(secs(1)).await;
    }
    let counters = mock.counters();
    assert_eq!(
        counters.logins, 2,
        "one each for the others; none sent for user 1"
    );
    assert_eq!(counters.queries_ok, 6);
    let failing = service.status_of(&User(1)).unwrap();
    assert!(!failing.is_usable());
    assert!(service.status_of(&User(0)).unwrap().is_usable());
}

#[tokio::test(start_paused = true)]
async fn users_whose_provider_hangs_hold_no_turn_from_the_others() {
    let mock = users(2);
    // Users 1 and up wait forever for their credentials; only user 0 has them.
    let layer = PerIdentityLayer::new(|user: &User| {
        let credentials = (format!("user-{}", user.0), password(user.0));
        let hangs = user.0 > 0;
        OcientAuth::new(BASE.parse().unwrap()).credentials_from(move || {
            let credentials = credentials.clone();
            async move {
                if hangs {
                    std::future::pending::<()>().await;
                }
                Ok(credentials)
            }
        })
    })
    .max_token_requests_in_flight(1)
    .refresh_timeout(secs(30));
    let service = ServiceBuilder::new().layer(layer).service(mock.clone());
    let mut stuck = JoinSet::new();
    for user in 1..=5 {
        stuck.spawn(service.warm_up::<Body>(User(user)));
    }
    sleep(secs(1)).await;
    let start = Instant::now();
    service.warm_up::<Body>(User(0)).await.unwrap();
    assert!(
        start.elapsed() < secs(1),
        "user 0 waited {:?} behind the hung providers",
        start.elapsed()
    );
    // The hung ones end at the layer's timeout, as a provider's failure would.
    for hung in stuck.join_all().await {
        assert!(matches!(hung, Err(Error::Timeout { .. })), "{hung:?}");
    }
    assert_eq!(mock.counters().logins, 1);
}

fn query_as(user: u32) -> http::Request<Body> {
    let mut request = query();
    request.extensions_mut().insert(User(user));
    request
}

#[tokio::test(start_paused = true)]
async fn a_401_revokes_only_its_own_user_s_token_and_once() {
    let mock = users(2);
    let service = ServiceBuilder::new().layer(layer()).service(mock.clone());
    for user in 0..2 {
        send(&service, query_as(user)).await.unwrap();
    }
    mock.revoke_all();
    let refused = send(&service, query_as(0)).await.unwrap();
    assert_eq!(refused.status(), http::StatusCode::UNAUTHORIZED);
    assert!(!service.status_of(&User(0)).unwrap().is_usable(), "revoked");
    assert!(
        service.status_of(&User(1)).unwrap().is_usable(),
        "user 1's token was not the one answered 401"
    );
    // User 0's next queries, at once: one new login for them all.
    let mut next = JoinSet::new();
    for _ in 0..5 {
        let service = service.clone();
        next.spawn(async move { send(&service, query_as(0)).await.unwrap().status() });
    }
    for status in next.join_all().await {
        assert_eq!(status, http::StatusCode::OK);
    }
    assert_eq!(mock.counters().logins, 3, "one new login, for user 0");
}

#[tokio::test(start_paused = true)]
async fn refresh_now_renews_one_user_s_token_and_no_one_else_s() {
    let mock = users(2);
    let service = ServiceBuilder::new().layer(layer()).service(mock.clone());
    for user in 0..2 {
        send(&service, query_as(user)).await.unwrap();
    }
    let before = [0, 1].map(|user| service.status_of(&User(user)).unwrap().generation);
    service.refresh_now::<Body>(User(1)).await.unwrap();
    let after = [0, 1].map(|user| service.status_of(&User(user)).unwrap().generation);
    assert_eq!((after[0], after[1]), (before[0], before[1] + 1));
    let counters = mock.counters();
    assert_eq!((counters.logins, counters.refreshes), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn the_hook_is_told_whose_token_each_event_is_about() {
    let mock = users(2);
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let layer = layer().on_token({
        let heard = std::sync::Arc::clone(&heard);
        move |user: &User, event: &tower_token_refresh::TokenEvent<'_>| {
            if let tower_token_refresh::TokenEvent::Obtained { generation, .. } = event {
                heard.lock().unwrap().push((user.0, *generation));
            }
        }
    });
    let service = ServiceBuilder::new().layer(layer).service(mock.clone());
    for user in [1, 0, 1] {
        send(&service, query_as(user)).await.unwrap();
    }
    service.refresh_now::<Body>(User(1)).await.unwrap();
    let heard = heard.lock().unwrap().clone();
    assert_eq!(
        heard,
        [(1, 1), (0, 1), (1, 2)],
        "each user's own generations"
    );
}
