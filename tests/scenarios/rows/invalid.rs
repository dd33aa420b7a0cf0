//! A token the layer no longer sends: dead in the margin (callers wait for a refresh),
//! expired (straight to a login) or revoked (by a 401).

use crate::table::*;

rows! {
    // --- Dead in the margin: valid on the server, but never sent; callers wait. ---
    row_44_dead_waits_for_refresh: Row {
        name: "dead in margin: caller waits for one refresh",
        start: Start::DeadInMargin,
        steps: &[Call(OK, Ms(200))],
        refreshes: Is(1),
        ..DEFAULT
    },
    row_45_dead_callers_share_refresh: Row {
        name: "dead in margin: 20 callers share one refresh",
        start: Start::DeadInMargin,
        steps: &[Launch(20), Land(OK)],
        refreshes: Is(1),
        ..DEFAULT
    },
    row_46_dead_refresh_503: Row {
        name: "dead in margin: refresh 503 -> waiter gets it, next caller fails fast, recovery after the backoff",
        start: Start::DeadInMargin,
        faults: &[(F::Status(503), 1)],
        steps: &[
            Call(Rejected(Refresh, 503, -1), Ms(200)),
            Sleep(500),
            Call(Rejected(Refresh, 503, -1), Not),
            Counts(0, 1),
            Sleep(1_000),
            Call(OK, Ms(200)),
        ],
        refreshes: Is(2),
        ..DEFAULT
    },
    row_47_dead_1208_logs_in: Row {
        name: "dead in margin: refresh -1208 (401) -> login, caller waits for both",
        start: Start::DeadInMargin,
        faults: &[(F::Code(401, -1208), 1)],
        steps: &[Call(OK, Ms(400))],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_48_dead_login_502: Row {
        name: "dead in margin: refresh refused, then the login 502s -> the login's error",
        start: Start::DeadInMargin,
        faults: &[(F::Code(401, -1208), 1), (F::Status(502), 1)],
        steps: &[Call(Rejected(Login, 502, -1), Ms(400))],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_49_dead_vendor_42_no_login: Row {
        name: "dead in margin: refresh vendor -42 in band -> error, no login",
        start: Start::DeadInMargin,
        faults: &[(F::Code(200, -42), 1)],
        steps: &[Call(Rejected(Refresh, 200, -42), Ms(200))],
        refreshes: Is(1),
        ..DEFAULT
    },
    row_50_dead_refresh_hangs: Row {
        name: "dead in margin: refresh hangs -> Timeout at 5 s; after the backoff, expired: login",
        start: Start::DeadInMargin,
        timeout: 5,
        faults: &[(F::Hang, 1)],
        steps: &[
            Call(Timeout(Refresh, 5), Ms(5_000)),
            Sleep(1_500),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    // --- Expired: log in directly, no refresh that would only be refused. ---
    row_51_expired_logs_in: Row {
        name: "expired: log in directly",
        start: Start::Expired,
        steps: &[Call(OK, Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_52_expired_callers_share_login: Row {
        name: "expired: 30 callers share one login, none sends the expired token",
        start: Start::Expired,
        steps: &[Launch(30), Land(OK)],
        logins: Is(1),
        ..DEFAULT
    },
    row_53_expired_initial_token_refused: Row {
        name: "expired: initial token, no credentials -> refresh refused -1208, then fail fast",
        auth: Auth::InitialToken,
        start: Start::Expired,
        steps: &[
            Call(Rejected(Refresh, 401, -1208), Ms(200)),
            Sleep(500),
            Call(Rejected(Refresh, 401, -1208), Not),
        ],
        refreshes: Is(1),
        ..DEFAULT
    },
    // --- Revoked: a 401 revoked the token. ---
    row_54_revoked_logs_in: Row {
        name: "revoked: log in directly",
        start: Start::Revoked,
        steps: &[Call(OK, Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_55_revoked_initial_token_refused: Row {
        name: "revoked: initial token, no credentials -> refresh refused -1205",
        auth: Auth::InitialToken,
        start: Start::Revoked,
        steps: &[Call(Rejected(Refresh, 401, -1205), Ms(200))],
        refreshes: Is(1),
        ..DEFAULT
    },
    row_56_revoked_in_flight_one_new_token: Row {
        name: "fresh, revoked on the server: 10 queries in flight get 401 -> exactly one new token",
        start: Start::Fresh,
        steps: &[
            Revoke,
            QueryLatency(1_000),
            Launch(10),
            Sleep(1_001),
            QueryLatency(0),
            Call(OK, Ms(200)),
            Land(Status(401)),
        ],
        logins: Is(1),
        refused: 10,
        ..DEFAULT
    },
    row_57_late_401_keeps_new_token: Row {
        name: "fresh, revoked: a 401 landing after the new token does not revoke the new token",
        start: Start::Fresh,
        steps: &[
            Revoke,
            QueryLatency(1_000),
            Launch(1),
            Sleep(500),
            Launch(4),
            Sleep(501),
            QueryLatency(0),
            Call(OK, Ms(200)),
            Sleep(400),
            Call(OK, Not),
            Land(Status(401)),
        ],
        logins: Is(1),
        refused: 5,
        ..DEFAULT
    },
    row_58_recovered_refresh_waits_backoff: Row {
        // Setup revoked the token with a 401 while no flight ran. That revocation is
        // handled by the login below; it must not also cut short a later flight's backoff.
        name: "revoked then recovered: a later refresh failure still waits out its backoff",
        start: Start::Revoked,
        steps: &[
            Call(OK, Ms(200)),
            // 70.2 s: the new token (sent at 10 s) is due.
            Sleep(60_000),
            Fail(F::Status(503), 1),
            Call(OK, Not),
            Sleep(500),
            Counts(1, 1),
            Sleep(1_500),
        ],
        logins: Is(1),
        refreshes: Is(2),
        ..DEFAULT
    },
}
