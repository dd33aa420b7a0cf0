//! The refresh point's random spread: a fleet started together does not refresh together,
//! and the spread never swallows the window a token has to be refreshed in.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use ocient_mock::MockOcient;
use tokio::time::{sleep, Instant};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_token_refresh::{OcientAuth, TokenRefreshLayer};

use crate::common::{auth, layered, millis, query, secs, send, BASE};

// Refresh points are spread over a tenth of the lifetime, so a fleet started together
// does not refresh together.
#[tokio::test(start_paused = true)]
async fn a_fleet_started_together_spreads_its_refreshes() {
    const FLEET: usize = 10_000;
    let refreshed_at = Arc::new(Mutex::new(Vec::with_capacity(FLEET)));
    let start = Instant::now();
    let endpoint = {
        let refreshed_at = Arc::clone(&refreshed_at);
        service_fn(move |request: Request<Full<Bytes>>| {
            if request.uri().path() == "/v1/token_refresh" {
                refreshed_at.lock().unwrap().push(start.elapsed());
            }
            let body = r#"{"access_token":"next","expires_in":100,"status":{"vendor_code":0}}"#;
            async move { Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(body))) }
        })
    };
    let fleet: Vec<_> = (0..FLEET)
        .map(|_| {
            let auth = OcientAuth::new(BASE.parse().unwrap()).initial_token("same", secs(100));
            ServiceBuilder::new()
                .layer(TokenRefreshLayer::new(auth))
                .service(endpoint.clone())
        })
        .collect();
    // Every member sends a request each second from 49 s to 61 s.
    sleep(secs(49)).await;
    for _ in 49..=61 {
        for member in &fleet {
            member.clone().oneshot(query()).await.unwrap();
        }
        sleep(secs(1)).await;
    }
    let times = refreshed_at.lock().unwrap().clone();
    assert_eq!(times.len(), FLEET, "each member refreshed once");
    let mut per_second = [0usize; 12];
    for t in &times {
        let second = t.as_secs();
        assert!(
            (50..=61).contains(&second),
            "refreshed at {t:?}, outside 50..61 s"
        );
        per_second[(second - 50) as usize] += 1;
    }
    // The window is 50..60 s; requests come once a second, so each second of it should
    // hold about a tenth of the fleet. Lockstep would put them all in one second.
    for (second, &count) in per_second[1..10].iter().enumerate() {
        assert!(
            (FLEET / 20..FLEET / 5).contains(&count),
            "second {}: {count} refreshes ({per_second:?})",
            51 + second
        );
    }
}

// The spread never swallows the due window: with a tenth of the lifetime left to refresh
// in, a request inside it goes out at once and starts the refresh.
#[tokio::test(start_paused = true)]
async fn the_spread_leaves_a_window_to_refresh_in() {
    for _ in 0..20 {
        let mock = MockOcient::new().token_lifetime(secs(100));
        let layer = TokenRefreshLayer::new(auth()).refresh_at(0.1);
        let (service, _) = layered(mock.clone(), layer);
        let start = Instant::now();
        send(&service, query()).await.unwrap();
        // Due from 90 s, moved by at most half the 5 s before the dead point at 95 s.
        tokio::time::sleep_until(start + millis(92_600)).await;
        let before = Instant::now();
        send(&service, query()).await.unwrap();
        assert_eq!(Instant::now(), before, "the token was still usable");
        sleep(millis(10)).await;
        assert_eq!(
            mock.counters().refreshes,
            1,
            "and due: the request started a refresh"
        );
    }
}
