//! No token yet: the first caller's request waits for the one login, and every way
//! that login can fail.

use crate::table::*;

rows! {
    // --- No token yet: the caller waits for the one login. ---
    row_01_login_ok_waits: Row {
        name: "no token: login ok, caller waits for it",
        steps: &[Call(OK, Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_02_concurrent_callers_share_login: Row {
        name: "no token: 50 concurrent callers share one login",
        steps: &[Launch(50), Land(OK)],
        logins: Is(1),
        ..DEFAULT
    },
    row_03_login_503: Row {
        name: "no token: login 503 -> Rejected(login, 503)",
        faults: &[(F::Status(503), 1)],
        steps: &[Call(Rejected(Login, 503, -1), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_04_login_503_backoff_fails_fast: Row {
        name: "no token: login 503, second caller inside the backoff fails fast, recovery after it",
        faults: &[(F::Status(503), 1)],
        steps: &[
            Call(Rejected(Login, 503, -1), Ms(200)),
            Sleep(500),
            Call(Rejected(Login, 503, -1), Not),
            Counts(1, 0),
            Sleep(1_000),
            Call(OK, Ms(200)),
        ],
        logins: Is(2),
        ..DEFAULT
    },
    row_05_login_backoff_doubles: Row {
        name: "no token: two login failures, the backoff doubles (1 s then 2 s, +-25%)",
        faults: &[(F::Status(500), 2)],
        steps: &[
            Call(Rejected(Login, 500, -1), Ms(200)),
            // 1.5 s: past the first backoff (<= 1.45 s).
            Sleep(1_300),
            Call(Rejected(Login, 500, -1), Ms(200)),
            // 2.7 s: inside the second backoff (>= 3.2 s).
            Sleep(1_000),
            Call(Rejected(Login, 500, -1), Not),
            Counts(2, 0),
            // 4.3 s: past the second backoff (<= 4.2 s).
            Sleep(1_600),
            Call(OK, Ms(200)),
        ],
        logins: Is(3),
        ..DEFAULT
    },
    row_06_login_304_as_401: Row {
        name: "no token: login -304 as HTTP 401",
        faults: &[(F::Code(401, -304), 1)],
        steps: &[Call(Rejected(Login, 401, -304), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_07_login_304_in_band: Row {
        name: "no token: login -304 in band (HTTP 200)",
        in_band: true,
        faults: &[(F::Code(200, -304), 1)],
        steps: &[Call(Rejected(Login, 200, -304), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_08_login_not_json: Row {
        name: "no token: login answer is not JSON",
        faults: &[(F::Body("<html>gateway says hi</html>"), 1)],
        steps: &[Call(Invalid(Login, "not a token answer"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_09_login_lacks_access_token: Row {
        name: "no token: login answer lacks access_token",
        faults: &[(
            F::Body(
                r#"{"expires_in":60,"status":{"reason":"ok","sql_state":"00000","vendor_code":0}}"#,
            ),
            1,
        )],
        steps: &[Call(Invalid(Login, "access_token is missing"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_10_token_with_crlf: Row {
        name: "no token: access_token with CR/LF (header injection)",
        faults: &[(
            F::Body(r#"{"access_token":"abc\r\nX-Evil: 1","expires_in":60}"#),
            1,
        )],
        steps: &[Call(Invalid(Login, "access_token refused"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_11_token_with_space: Row {
        name: "no token: access_token with a space",
        faults: &[(F::Body(r#"{"access_token":"abc def","expires_in":60}"#), 1)],
        steps: &[Call(Invalid(Login, "access_token refused"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_12_token_non_ascii: Row {
        name: "no token: access_token with non-ASCII",
        faults: &[(F::Body(r#"{"access_token":"tök","expires_in":60}"#), 1)],
        steps: &[Call(Invalid(Login, "access_token refused"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_13_expires_in_zero: Row {
        name: "no token: expires_in 0",
        faults: &[(F::Body(r#"{"access_token":"abc","expires_in":0}"#), 1)],
        steps: &[Call(Invalid(Login, "expires_in is not positive"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_14_expires_in_negative: Row {
        name: "no token: expires_in negative",
        faults: &[(F::Body(r#"{"access_token":"abc","expires_in":-60}"#), 1)],
        steps: &[Call(Invalid(Login, "expires_in is not positive"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_15_expires_in_missing: Row {
        name: "no token: expires_in missing",
        faults: &[(F::Body(r#"{"access_token":"abc"}"#), 1)],
        steps: &[Call(Invalid(Login, "expires_in is missing"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_16_expires_in_string: Row {
        name: "no token: expires_in is a string",
        faults: &[(F::Body(r#"{"access_token":"abc","expires_in":"3600"}"#), 1)],
        steps: &[Call(Invalid(Login, "expires_in is not a number"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_17_expires_in_1e300_clamped: Row {
        // The token is not one the mock issued, so the query is refused (-1205) and the
        // 401 revokes it: the next caller logs in again.
        name: "no token: expires_in 1e300 is accepted (clamped), no overflow",
        faults: &[(F::Body(r#"{"access_token":"huge-1e300","expires_in":1e300}"#), 1)],
        steps: &[Call(Status(401), Ms(200)), Call(OK, Ms(200))],
        logins: Is(2),
        refused: 1,
        ..DEFAULT
    },
    row_18_expires_in_i64_max_clamped: Row {
        name: "no token: expires_in i64::MAX is accepted (clamped), no overflow",
        faults: &[(
            F::Body(r#"{"access_token":"huge-i64","expires_in":9223372036854775807}"#),
            1,
        )],
        steps: &[Call(Status(401), Ms(200)), Call(OK, Ms(200))],
        logins: Is(2),
        refused: 1,
        ..DEFAULT
    },
    row_19_login_over_1_mib: Row {
        name: "no token: login answer over 1 MiB",
        faults: &[(F::Huge, 1)],
        steps: &[Call(Invalid(Login, "larger than 1 MiB"), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_20_login_hangs_timeout: Row {
        name: "no token: login hangs -> Timeout after the 5 s refresh timeout",
        timeout: 5,
        faults: &[(F::Hang, 1)],
        steps: &[Call(Timeout(Login, 5), Ms(5_000))],
        logins: Is(1),
        ..DEFAULT
    },
    row_21_login_slower_than_timeout: Row {
        name: "no token: login latency 40 s > default 30 s timeout; next caller fails fast",
        latency: 40_000,
        steps: &[
            Call(Timeout(Login, 30), Ms(30_000)),
            Sleep(500),
            Call(Timeout(Login, 30), Not),
        ],
        logins: Is(1),
        ..DEFAULT
    },
    row_22_login_cut_off: Row {
        name: "no token: login answer cut off mid-body -> Transport",
        faults: &[(F::CutOff, 1)],
        steps: &[Call(Transport(Login), Ms(200))],
        logins: Is(1),
        ..DEFAULT
    },
    row_23_no_credentials: Row {
        name: "no token, no credentials -> MissingCredentials at once",
        auth: Auth::Nothing,
        steps: &[Call(MissingCredentials, Not)],
        ..DEFAULT
    },
    row_24_dead_on_arrival: Row {
        name: "no token: latency near the lifetime -> every token dead on arrival",
        // 10 s tokens (dead 9 s after sending), 9.5 s latency: three rounds, then an error.
        lifetime: 10,
        latency: 9_500,
        steps: &[Call(Invalid(Refresh, "dead on arrival"), Ms(28_500))],
        logins: Is(1),
        refreshes: Is(2),
        ..DEFAULT
    },
    row_25_give_up_keeps_login: Row {
        name: "no token: a caller that gives up does not strand the login",
        latency: 5_000,
        steps: &[
            GiveUp(1_000),
            Counts(1, 0),
            Sleep(4_100),
            Call(OK, Not),
        ],
        logins: Is(1),
        ..DEFAULT
    },
    row_26_two_give_up_third_joins: Row {
        name: "no token: two callers give up, a third joins the same login",
        latency: 5_000,
        steps: &[GiveUp(1_000), GiveUp(1_000), Call(OK, Ms(3_000))],
        logins: Is(1),
        ..DEFAULT
    },
}
