//! The `metrics` feature: each event moves exactly its metric and labels, and nothing else;
//! a request sent with a fresh token records nothing; no label holds a secret or a path.
//! On tokio's paused clock over the in-process mock, read through metrics-util's debugging
//! recorder, installed locally while the layer makes its service (which registers every
//! metric then), so that tests running at once do not see each other's.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, StatusCode};
use http_body_util::Full;
use metrics::{LocalRecorderGuard, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use ocient_mock::{Fault, MockOcient};
use tokio::time::sleep;
use tower::{BoxError, Service, ServiceBuilder};
use tower_token_refresh::{OcientAuth, PerIdentityLayer, TokenRefreshLayer};

use crate::common::{
    auth, layered, metrics_contract, millis, query, query_to, secs, send, switched,
    through_a_revocation, token_error, Recorder, BASE,
};

/// The `layer` label of a layer whose endpoint is [`BASE`]: its host.
const BASE_HOST: &str = "sql-node.test";

/// How a metric moved since the last look.
#[derive(Debug, Clone, PartialEq)]
enum Moved {
    /// A counter went up by this much.
    By(u64),
    /// A gauge was set to this.
    To(f64),
    /// A histogram recorded these.
    Samples(Vec<f64>),
}

/// One series as the recorder holds it.
struct Series {
    name: String,
    labels: Vec<(String, String)>,
    /// The unit and the description it was given.
    described: (Option<Unit>, Option<String>),
    value: DebugValue,
}

/// The metrics of one layer, as a test reads them.
struct Readings {
    snapshotter: Snapshotter,
    layer: String,
    /// Keeps the recorder this thread's default for the whole test: every task of a paused
    /// clock's runtime runs on this thread, so everything the layer records lands here.
    _installed: LocalRecorderGuard<'static>,
}

impl Readings {
    /// A recorder of its own for this test, reading the metrics of the layer named `layer`.
    fn new(layer: &str) -> Readings {
        // Leaked: it must outlive every task that might record, and a test is short.
        let recorder: &'static DebuggingRecorder = Box::leak(Box::default());
        Readings {
            snapshotter: recorder.snapshotter(),
            layer: layer.to_owned(),
            _installed: metrics::set_default_local_recorder(recorder),
        }
    }

    /// Every series registered so far, moved or not, with its labels; each must carry the
    /// layer's name as its `layer` label.
    fn series(&self) -> Vec<Series> {
        let snapshot = self.snapshotter.snapshot().into_vec();
        snapshot
            .into_iter()
            .map(|(key, unit, description, value)| {
                let key = key.key();
                let labels: Vec<(String, String)> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                Series {
                    name: key.name().to_owned(),
                    labels,
                    described: (unit, description.map(|d| d.to_string())),
                    value,
                }
            })
            .collect()
    }

    /// What moved since the last look, by series: `name{label=value,...}`, the `layer`
    /// label checked and left out.
    fn moved(&self) -> BTreeMap<String, Moved> {
        let mut moved = BTreeMap::new();
        for Series {
            name,
            labels,
            value,
            ..
        } in self.series()
        {
            let (layer, others): (Vec<_>, Vec<_>) =
                labels.into_iter().partition(|(k, _)| k == "layer");
            assert_eq!(layer, [("layer".to_owned(), self.layer.clone())], "{name}");
            let movement = match value {
                DebugValue::Counter(0) => continue,
                DebugValue::Counter(by) => Moved::By(by),
                DebugValue::Gauge(to) if to.into_inner() == 0.0 => continue,
                DebugValue::Gauge(to) => Moved::To(to.into_inner()),
                DebugValue::Histogram(samples) if samples.is_empty() => continue,
                DebugValue::Histogram(samples) => {
                    Moved::Samples(samples.into_iter().map(|s| s.into_inner()).collect())
                }
            };
            let others: Vec<String> = others.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let series = match others.is_empty() {
                true => name,
                false => format!("{name}{{{}}}", others.join(",")),
            };
            moved.insert(series, movement);
        }
        moved
    }
}

/// `layer` (named `name`) over what `make` puts beneath it, with a recorder of its own
/// installed first, read through the [`Readings`].
fn recorded<S, T>(
    layer: TokenRefreshLayer,
    name: &str,
    make: impl FnOnce(TokenRefreshLayer) -> (S, T),
) -> (S, T, Readings) {
    let readings = Readings::new(name);
    let (service, inner) = make(layer);
    (service, inner, readings)
}

/// `layer` over the in-process recorder of `mock`, its metrics recorded.
fn observed(
    mock: MockOcient,
    layer: TokenRefreshLayer,
) -> (
    tower_token_refresh::TokenRefresh<Recorder>,
    Recorder,
    Readings,
) {
    recorded(layer, BASE_HOST, |layer| layered(mock, layer))
}

/// The series a successful exchange of `kind` moves, besides the gauges: its count and
/// its duration.
fn exchange_ok(moved: &BTreeMap<String, Moved>, kind: &str, took: Duration) {
    let counter = format!("token_refresh_requests_total{{kind={kind},outcome=ok}}");
    assert_eq!(moved.get(&counter), Some(&Moved::By(1)), "{moved:#?}");
    let duration = format!("token_refresh_request_duration_seconds{{kind={kind}}}");
    assert_eq!(
        moved.get(&duration),
        Some(&Moved::Samples(vec![took.as_secs_f64()]))
    );
}

/// The series a login that a request waited for moves, and `also`, in order.
fn a_login_and<'a>(also: &[&'a str]) -> Vec<&'a str> {
    let mut series = vec![
        "token_expiry_timestamp_seconds",
        "token_generation",
        "token_refresh_request_duration_seconds{kind=login}",
        "token_refresh_requests_total{kind=login,outcome=ok}",
        "token_wait_duration_seconds",
    ];
    series.extend_from_slice(also);
    series.sort_unstable();
    series
}

/// `entries` as [`Readings::moved`] gives them.
fn movements<const N: usize>(entries: [(&str, Moved); N]) -> BTreeMap<String, Moved> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// What a login that ended in `outcome` after `took` seconds moves, nobody waiting.
fn a_login_ended(outcome: &str, took: f64) -> BTreeMap<String, Moved> {
    let counted = format!("token_refresh_requests_total{{kind=login,outcome={outcome}}}");
    let duration = "token_refresh_request_duration_seconds{kind=login}";
    movements([
        (&counted, Moved::By(1)),
        (duration, Moved::Samples(vec![took])),
    ])
}

/// What a login that failed with `outcome` after `took` seconds moves, with the one caller
/// who waited for it all that time and was turned away for the same reason.
fn a_failed_login_turned_away(outcome: &str, took: f64) -> BTreeMap<String, Moved> {
    let mut moved = a_login_ended(outcome, took);
    let turned_away = format!("token_requests_turned_away_total{{reason={outcome}}}");
    moved.extend(movements([
        (&turned_away, Moved::By(1)),
        ("token_wait_duration_seconds", Moved::Samples(vec![took])),
    ]));
    moved
}

/// The keys of `moved`, for comparing with what a test expects, in order.
fn keys(moved: &BTreeMap<String, Moved>) -> Vec<&str> {
    moved.keys().map(String::as_str).collect()
}

/// The expiry gauge was set to the Unix time `left` after the system clock's now, give or
/// take the real time a test takes. The gauge reads the system clock when the token is
/// installed, and the paused clock does not move it: `left` is what the token had left
/// then.
fn assert_expiry_set(moved: &BTreeMap<String, Moved>, left: Duration) {
    let Some(Moved::To(expiry)) = moved.get("token_expiry_timestamp_seconds") else {
        panic!("no expiry set: {moved:#?}");
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let expected = (now + left).as_secs_f64();
    assert!(
        (expiry - expected).abs() < 0.1,
        "expiry {expiry}, expected {expected}"
    );
}

/// What moved after a request past the refresh point of a 100-second token obtained 61 s
/// before (half the lifetime, plus up to a tenth), which starts a refresh in the
/// background, and `settle` for that refresh to end.
async fn past_the_refresh_point(
    service: &tower_token_refresh::TokenRefresh<Recorder>,
    readings: &Readings,
    settle: Duration,
) -> BTreeMap<String, Moved> {
    sleep(secs(61)).await;
    send(service, query()).await.unwrap();
    sleep(settle).await;
    readings.moved()
}

// A login, then refreshes: each moves its count, its duration, the generation and the
// expiry; the requests in between, sent with a fresh token, move nothing.
#[tokio::test(start_paused = true)]
async fn a_login_and_each_refresh_move_their_own_series_and_fresh_requests_none() {
    let mock = MockOcient::new()
        .token_lifetime(secs(100))
        .latency(millis(200));
    let (service, _, readings) = observed(mock.clone(), TokenRefreshLayer::new(auth()));
    assert!(readings.moved().is_empty(), "registered, not moved");

    send(&service, query()).await.unwrap();
    let moved = readings.moved();
    assert_eq!(keys(&moved), a_login_and(&[]));
    exchange_ok(&moved, "login", millis(200));
    assert_eq!(moved["token_generation"], Moved::To(1.0));
    // The first request waited for the login: its round trip.
    assert_eq!(
        moved["token_wait_duration_seconds"],
        Moved::Samples(vec![0.2])
    );
    // Obtained 200 ms before it was installed: the lifetime counts from the request.
    assert_expiry_set(&moved, secs(100) - millis(200));

    for _ in 0..100 {
        send(&service, query()).await.unwrap();
    }
    assert_eq!(
        readings.moved(),
        BTreeMap::new(),
        "fresh-token requests record nothing"
    );

    for refresh in 1..=3 {
        let moved = past_the_refresh_point(&service, &readings, secs(1)).await;
        assert_eq!(
            keys(&moved),
            [
                "token_expiry_timestamp_seconds",
                "token_generation",
                "token_refresh_request_duration_seconds{kind=refresh}",
                "token_refresh_requests_total{kind=refresh,outcome=ok}",
            ],
            "refresh {refresh}: nobody waited"
        );
        exchange_ok(&moved, "refresh", millis(200));
        assert_eq!(moved["token_generation"], Moved::To(1.0 + refresh as f64));
        assert_expiry_set(&moved, secs(100) - millis(200));
    }
    assert_eq!(mock.counters().refreshes, 3);
}

// A refresh the server rejects (not as revoked) counts as rejected; the token is still
// good, so no request waits or is turned away.
#[tokio::test(start_paused = true)]
async fn a_rejected_refresh_counts_as_rejected_and_turns_nobody_away() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let (service, _, readings) = observed(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    readings.moved();

    mock.fail_token_requests(Fault::Status(StatusCode::BAD_REQUEST), 1);
    let moved = past_the_refresh_point(&service, &readings, millis(1)).await;
    assert_eq!(
        keys(&moved),
        [
            "token_refresh_request_duration_seconds{kind=refresh}",
            "token_refresh_requests_total{kind=refresh,outcome=rejected}",
        ]
    );
    assert_eq!(
        moved["token_refresh_requests_total{kind=refresh,outcome=rejected}"],
        Moved::By(1)
    );
}

// A node that cannot be reached: the login counts as a transport failure, the caller who
// waited for it is turned away, and so is the next one, at once, during the backoff.
#[tokio::test(start_paused = true)]
async fn a_transport_failure_counts_and_turns_its_callers_away() {
    let layer = TokenRefreshLayer::new(auth());
    let (service, switch, readings) =
        recorded(layer, BASE_HOST, |layer| switched(MockOcient::new(), layer));
    switch.set_down(true);

    let error = send(&service, query()).await.unwrap_err();
    assert!(matches!(
        token_error(&error),
        tower_token_refresh::Error::Transport { .. }
    ));
    // It led the login and waited for its outcome.
    assert_eq!(
        readings.moved(),
        a_failed_login_turned_away("transport", 0.0)
    );

    send(&service, query()).await.unwrap_err();
    assert_eq!(
        readings.moved(),
        movements([(
            "token_requests_turned_away_total{reason=transport}",
            Moved::By(1)
        )]),
        "turned away at once, without waiting"
    );
}

// A token endpoint that never answers: the login times out at the refresh timeout, and
// the caller waited exactly that long.
#[tokio::test(start_paused = true)]
async fn a_timed_out_login_counts_as_a_timeout_with_its_duration_and_wait() {
    let mock = MockOcient::new();
    mock.fail_token_requests(Fault::Hang, 1);
    let layer = TokenRefreshLayer::new(auth()).refresh_timeout(secs(5));
    let (service, _, readings) = observed(mock, layer);

    let error = send(&service, query()).await.unwrap_err();
    assert!(matches!(
        token_error(&error),
        tower_token_refresh::Error::Timeout { .. }
    ));
    assert_eq!(readings.moved(), a_failed_login_turned_away("timeout", 5.0));
}

// A 401 revokes the token: one revocation, then the login that replaces it, which the
// next request waits for.
#[tokio::test(start_paused = true)]
async fn a_401_counts_one_revocation_and_the_login_that_replaces_it() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let (service, _, readings) = observed(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    readings.moved();

    through_a_revocation(&service, &mock).await;
    let moved = readings.moved();
    assert_eq!(keys(&moved), a_login_and(&["token_revocations_total"]));
    assert_eq!(moved["token_revocations_total"], Moved::By(1));
    assert_eq!(moved["token_generation"], Moved::To(2.0));
    assert_eq!(
        moved["token_wait_duration_seconds"],
        Moved::Samples(vec![0.0])
    );
}

/// The recorder of the in-process mock, but every request to `dead_host` fails in
/// transport, as a node whose port is closed, or, if it `panics`, takes its caller down.
#[derive(Clone)]
struct DeadHost {
    inner: Recorder,
    dead_host: &'static str,
    panics: bool,
}

impl Service<Request<Full<bytes::Bytes>>> for DeadHost {
    type Response = <Recorder as Service<Request<Full<bytes::Bytes>>>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<bytes::Bytes>>) -> Self::Future {
        if request.uri().host() == Some(self.dead_host) {
            assert!(!self.panics, "the inner service failed");
            return Box::pin(async { Err::<_, BoxError>("connection refused".into()) });
        }
        let answer = self.inner.call(request);
        Box::pin(async move { answer.await.map_err(|e: Infallible| match e {}) })
    }
}

// The first node is down: its login counts as a transport failure, the switch to the next
// node as one failover, and that node's login as ok.
#[tokio::test(start_paused = true)]
async fn a_failover_counts_once_between_the_failed_and_the_good_login() {
    let auth = OcientAuth::new("https://sql-node-1.test:9443".parse().unwrap())
        .node(BASE.parse().unwrap())
        .credentials("jdoe", "secret")
        .database("retail_analytics");
    let layer = TokenRefreshLayer::new(auth).name("failover");
    let (service, _, readings) = recorded(layer, "failover", |layer| {
        let inner = DeadHost {
            inner: Recorder::new(MockOcient::new()),
            dead_host: "sql-node-1.test",
            panics: false,
        };
        (ServiceBuilder::new().layer(layer).service(inner), ())
    });

    send(&service, query()).await.unwrap();
    let moved = readings.moved();
    let failed = "token_refresh_requests_total{kind=login,outcome=transport}";
    assert_eq!(
        keys(&moved),
        a_login_and(&["token_failovers_total", failed])
    );
    assert_eq!(moved["token_failovers_total"], Moved::By(1));
    assert_eq!(
        moved["token_refresh_requests_total{kind=login,outcome=transport}"],
        Moved::By(1)
    );
    let Moved::Samples(durations) = &moved["token_refresh_request_duration_seconds{kind=login}"]
    else {
        panic!("{moved:#?}")
    };
    assert_eq!(durations.len(), 2, "one per login attempt");
}

// A request bound for plain http to another host is turned away before anything is sent.
#[tokio::test(start_paused = true)]
async fn a_request_refused_over_plain_http_counts_as_turned_away_and_nothing_else() {
    let auth =
        OcientAuth::new("http://sql-node.test:9090".parse().unwrap()).credentials("jdoe", "secret");
    let (service, recorder, readings) = observed(MockOcient::new(), TokenRefreshLayer::new(auth));

    let error = send(
        &service,
        query_to("http://sql-node.test:9090/v1/execute/db"),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        token_error(&error),
        tower_token_refresh::Error::InsecureTransport { .. }
    ));
    assert_eq!(
        readings.moved(),
        movements([(
            "token_requests_turned_away_total{reason=insecure}",
            Moved::By(1)
        )])
    );
    assert!(recorder.seen().is_empty(), "nothing was sent");
}

// Every series is registered with the first service, described with its unit, under a
// small fixed set of label values: the layer's name (the host alone, not the user or
// password of the base URI), the kinds, the outcomes and the reasons. None holds the
// token, even after one.
#[tokio::test(start_paused = true)]
async fn labels_are_a_fixed_set_without_user_password_path_or_token() {
    let auth = OcientAuth::new("https://jdoe:secret@sql-node.test:9443".parse().unwrap())
        .credentials("jdoe", "secret")
        .database("retail_analytics");
    let mock = MockOcient::new().token_lifetime(secs(100));
    let (service, recorder, readings) = observed(mock.clone(), TokenRefreshLayer::new(auth));
    through_a_revocation(&service, &mock).await;
    let token = recorder.seen_at("/v1/execute/retail_analytics")[0].headers["authorization"]
        .to_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned();

    let series = readings.series();
    let mut names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, metrics_contract::NAMES);
    for Series {
        name, described, ..
    } in &series
    {
        // A generation counts nothing: it has no unit.
        let unit = match name.as_str() {
            "token_generation" => None,
            seconds if seconds.ends_with("_seconds") => Some(Unit::Seconds),
            _ => Some(Unit::Count),
        };
        let (described_unit, description) = described;
        assert_eq!(*described_unit, unit, "{name}");
        assert!(
            description.as_ref().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
    for Series { name, labels, .. } in &series {
        for (key, value) in labels {
            let allowed = metrics_contract::allowed(key, value, BASE_HOST);
            assert!(allowed, "{name}: {key}={value}");
            assert!(
                !value.contains(&token) && !value.contains('/'),
                "{name}: {value}"
            );
        }
    }
    // 2 kinds x 7 outcomes (`ok`, and every failure but `no_runtime` and `no_identity`),
    // 2 durations, 8 reasons, revocations, failovers, waits, and the two gauges of the
    // tokens since.
    assert_eq!(series.len(), 14 + 2 + 8 + 3 + 2);
}

// Two layers in one process are told apart by name; the default is the API's host.
#[tokio::test(start_paused = true)]
async fn a_named_layer_labels_its_metrics_with_its_name() {
    let layer = TokenRefreshLayer::new(auth()).name("reporting");
    let (service, _, readings) = recorded(layer, "reporting", |layer| {
        layered(MockOcient::new(), layer)
    });
    send(&service, query()).await.unwrap();
    // `moved` checks the label of every series.
    assert_eq!(readings.moved()["token_generation"], Moved::To(1.0));
}

// The stack was built before any recorder was installed (a client made at startup, the
// exporter later): each event still finds the recorder in force when it happens.
#[tokio::test(start_paused = true)]
async fn a_recorder_installed_after_the_stack_was_built_records_every_event() {
    let (service, _) = layered(MockOcient::new(), TokenRefreshLayer::new(auth()));
    let readings = Readings::new(BASE_HOST);
    send(&service, query()).await.unwrap();
    assert_eq!(keys(&readings.moved()), a_login_and(&[]));
}

// The inner service panics under the login: the flight's task dies, and the login counts
// as the transport failure its callers are told of, rather than not at all.
#[tokio::test(start_paused = true)]
async fn a_login_whose_task_died_counts_as_a_transport_failure() {
    let layer = TokenRefreshLayer::new(auth());
    let (service, _, readings) = recorded(layer, BASE_HOST, |layer| {
        let inner = DeadHost {
            inner: Recorder::new(MockOcient::new()),
            dead_host: BASE_HOST,
            panics: true,
        };
        (ServiceBuilder::new().layer(layer).service(inner), ())
    });

    let error = send(&service, query()).await.unwrap_err();
    assert!(matches!(
        token_error(&error),
        tower_token_refresh::Error::Transport { .. }
    ));
    let moved = readings.moved();
    let login = "token_refresh_requests_total{kind=login,outcome=transport}";
    assert_eq!(moved.get(login), Some(&Moved::By(1)), "{moved:#?}");
    let duration = "token_refresh_request_duration_seconds{kind=login}";
    assert_eq!(moved.get(duration), Some(&Moved::Samples(vec![0.0])));
}

// A caller that gives up while the login hangs: its wait is recorded when it lets go, and
// the login when it times out, with nobody left to turn away.
#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_records_how_long_it_waited() {
    let mock = MockOcient::new();
    mock.fail_token_requests(Fault::Hang, 1);
    let layer = TokenRefreshLayer::new(auth()).refresh_timeout(secs(5));
    let (service, _, readings) = observed(mock, layer);

    let gave_up = tokio::time::timeout(secs(1), send(&service, query())).await;
    assert!(gave_up.is_err(), "still waiting after 1 s");
    assert_eq!(
        readings.moved(),
        movements([("token_wait_duration_seconds", Moved::Samples(vec![1.0]))])
    );

    sleep(secs(5)).await;
    assert_eq!(readings.moved(), a_login_ended("timeout", 5.0));
}

// A 401 that no new token replaces (the server is down for logins): the expiry says the
// token is unusable from the revocation on, so that the expiry alert fires, and stays
// there while logins fail.
#[tokio::test(start_paused = true)]
async fn a_revoked_token_expires_now_until_another_replaces_it() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let (service, _, readings) = observed(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    readings.moved();

    mock.revoke_all();
    mock.fail_token_requests(Fault::Status(StatusCode::SERVICE_UNAVAILABLE), 100);
    let revoked = send(&service, query()).await.unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    let moved = readings.moved();
    assert_eq!(
        keys(&moved),
        ["token_expiry_timestamp_seconds", "token_revocations_total"]
    );
    assert_expiry_set(&moved, Duration::ZERO);

    send(&service, query()).await.unwrap_err();
    let moved = readings.moved();
    assert!(
        !moved.contains_key("token_expiry_timestamp_seconds"),
        "{moved:#?}"
    );
    let failed = "token_refresh_requests_total{kind=login,outcome=rejected}";
    assert_eq!(moved.get(failed), Some(&Moved::By(1)), "{moved:#?}");
}

// A refresh the server rejects as revoked (-733) counts as rejected, and the login that
// replaces the token as ok; the request that started the refresh went out at once.
#[tokio::test(start_paused = true)]
async fn a_refresh_rejected_as_revoked_counts_with_the_login_after_it() {
    let mock = MockOcient::new().token_lifetime(secs(100));
    let (service, _, readings) = observed(mock.clone(), TokenRefreshLayer::new(auth()));
    send(&service, query()).await.unwrap();
    readings.moved();

    let revoked = Fault::VendorCode {
        http: StatusCode::OK,
        vendor_code: -733,
        sql_state: "08004",
    };
    mock.fail_token_requests(revoked, 1);
    let moved = past_the_refresh_point(&service, &readings, secs(1)).await;
    assert_eq!(
        keys(&moved),
        [
            "token_expiry_timestamp_seconds",
            "token_generation",
            "token_refresh_request_duration_seconds{kind=login}",
            "token_refresh_request_duration_seconds{kind=refresh}",
            "token_refresh_requests_total{kind=login,outcome=ok}",
            "token_refresh_requests_total{kind=refresh,outcome=rejected}",
        ],
        "and no wait"
    );
    assert_eq!(moved["token_generation"], Moved::To(2.0));
}

/// Whose request it is, for a per-identity layer.
#[derive(Clone, PartialEq, Eq, Hash)]
struct User(String);

// A layer of many tokens adds them all up, under its own name: no user in any label, the
// identities held and dropped, and no one token's expiry or generation.
#[tokio::test(start_paused = true)]
async fn a_per_identity_layer_names_no_identity_in_any_label() {
    let users = ["user-alice", "user-bob", "user-carol"];
    let mock = users
        .iter()
        .fold(MockOcient::new(), |mock, user| mock.user(*user, "secret"));
    let readings = Readings::new("per_identity");
    let layer = PerIdentityLayer::new(|user: &User| {
        OcientAuth::new(BASE.parse().unwrap()).credentials(user.0.clone(), "secret")
    })
    .max_identities(2);
    let service = ServiceBuilder::new().layer(layer).service(mock.clone());
    for user in users {
        let mut request = query();
        request.extensions_mut().insert(User(user.to_owned()));
        send(&service, request).await.unwrap();
    }
    let mut anonymous = query();
    anonymous.extensions_mut().clear();
    send(&service, anonymous).await.unwrap_err();

    // What moved first: a look takes the movements with it.
    let moved = readings.moved();
    let series = readings.series();
    let mut names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, metrics_contract::PER_IDENTITY_NAMES);
    for Series { name, labels, .. } in &series {
        for (key, value) in labels {
            assert!(
                metrics_contract::allowed(key, value, "per_identity"),
                "{name}: {key}={value}"
            );
            assert!(!value.contains("user"), "{name}: {value}");
        }
    }
    assert_eq!(
        moved["token_refresh_requests_total{kind=login,outcome=ok}"],
        Moved::By(3)
    );
    assert_eq!(moved["token_identities"], Moved::To(2.0));
    assert_eq!(moved["token_identities_dropped_total"], Moved::By(1));
    assert_eq!(
        moved["token_requests_turned_away_total{reason=no_identity}"],
        Moved::By(1)
    );
}
