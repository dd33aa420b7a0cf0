//! A token the layer still sends: fresh (no token request at all) or due (sent at once
//! while one refresh runs in the background), and every way that refresh can fail.

use crate::table::*;

rows! {
    // --- Fresh token: sent at once, no token request even with faults queued. ---
    row_27_fresh_sent_at_once: Row {
        name: "fresh: sent at once, a queued hang is never touched",
        start: Start::Fresh,
        faults: &[(F::Hang, 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        ..DEFAULT
    },
    // --- Due: the caller goes out at once and starts one background refresh. ---
    row_28_due_background_refresh: Row {
        name: "due: background refresh, callers never wait, one refresh",
        start: Start::Due,
        latency: 5_000,
        steps: &[
            Call(OK, Not),
            Call(OK, Not),
            Counts(0, 1),
            Sleep(5_001),
            Call(OK, Not),
        ],
        refreshes: Is(1),
        ..DEFAULT
    },
    row_29_due_refresh_503: Row {
        name: "due: refresh 503 keeps serving the valid token, retried after the backoff",
        start: Start::Due,
        faults: &[(F::Status(503), 1)],
        steps: &[
            Call(OK, Not),
            Sleep(500),
            Call(OK, Not),
            Counts(0, 1),
            Sleep(1_500),
            Call(OK, Not),
        ],
        refreshes: Is(2),
        ..DEFAULT
    },
    row_30_due_refresh_hangs: Row {
        name: "due: refresh hangs (5 s timeout), valid token kept, retried",
        start: Start::Due,
        timeout: 5,
        faults: &[(F::Hang, 1)],
        steps: &[
            Call(OK, Not),
            Sleep(3_000),
            Call(OK, Not),
            Counts(0, 1),
            Sleep(4_000),
            Call(OK, Not),
        ],
        refreshes: Is(2),
        ..DEFAULT
    },
    row_31_due_refresh_cut_off: Row {
        name: "due: refresh cut off, valid token kept, retried",
        start: Start::Due,
        faults: &[(F::CutOff, 1)],
        steps: &[Call(OK, Not), Counts(0, 1), Sleep(2_000), Call(OK, Not)],
        refreshes: Is(2),
        ..DEFAULT
    },
    row_32_due_refresh_not_json: Row {
        name: "due: refresh answer not JSON, valid token kept, retried",
        start: Start::Due,
        faults: &[(F::Body("not json at all"), 1)],
        steps: &[Call(OK, Not), Counts(0, 1), Sleep(2_000), Call(OK, Not)],
        refreshes: Is(2),
        ..DEFAULT
    },
    row_33_due_refresh_over_1_mib: Row {
        name: "due: refresh answer over 1 MiB, valid token kept, retried",
        start: Start::Due,
        faults: &[(F::Huge, 1)],
        steps: &[Call(OK, Not), Counts(0, 1), Sleep(2_000), Call(OK, Not)],
        refreshes: Is(2),
        ..DEFAULT
    },
    row_34_due_733_in_band_logs_in: Row {
        name: "due: refresh -733 in band (HTTP 200) -> log in again",
        start: Start::Due,
        in_band: true,
        faults: &[(F::Code(200, -733), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_35_due_733_as_401_logs_in: Row {
        name: "due: refresh -733 as HTTP 401 -> log in again",
        start: Start::Due,
        faults: &[(F::Code(401, -733), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_36_due_1208_in_band_logs_in: Row {
        name: "due: refresh -1208 in band -> log in again",
        start: Start::Due,
        faults: &[(F::Code(200, -1208), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_37_due_304_as_401_logs_in: Row {
        name: "due: refresh -304 as HTTP 401 -> log in again",
        start: Start::Due,
        faults: &[(F::Code(401, -304), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_38_due_403_logs_in: Row {
        name: "due: refresh HTTP 403 -> log in again",
        start: Start::Due,
        faults: &[(F::Status(403), 1)],
        steps: &[Call(OK, Not), Sleep(1_000), Call(OK, Not)],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_39_due_vendor_42_retried: Row {
        name: "due: refresh vendor -42 (not a token error) -> no login, retried",
        start: Start::Due,
        faults: &[(F::Code(200, -42), 1)],
        steps: &[Call(OK, Not), Counts(0, 1), Sleep(2_000), Call(OK, Not)],
        refreshes: Is(2),
        ..DEFAULT
    },
    row_40_due_initial_token_refreshed: Row {
        name: "due: initial token, no credentials, refreshed in the background",
        auth: Auth::InitialToken,
        start: Start::Due,
        steps: &[Call(OK, Not), Sleep(300), Call(OK, Not)],
        refreshes: Is(1),
        ..DEFAULT
    },
    row_41_due_initial_token_refused_until_dead: Row {
        // Background attempts at 61, +1, +2, +4, +8, +16 s (+-25%), never later than the
        // dead point 95: 6 or 7 attempts depending on the jitter, the last one at 95.
        name: "due: initial token, every refresh refused, no latency: retried until dead, then fail fast",
        auth: Auth::InitialToken,
        start: Start::Due,
        latency: 0,
        faults: &[(F::Code(401, -1208), 1_000)],
        steps: &[
            Call(OK, Not),
            Sleep(35_000),
            Call(Rejected(Refresh, 401, -1208), Not),
        ],
        refreshes: Within(6, 7),
        ..DEFAULT
    },
    row_42_due_503_until_dead: Row {
        name: "due: every refresh 503 until dead: valid token served, then cached error, then login after the backoff",
        start: Start::Due,
        faults: &[(F::Status(503), 1_000)],
        steps: &[
            Call(OK, Not),
            Sleep(20_000),
            Call(OK, Not),
            // 96 s: dead; the last attempt failed at 95.2 s, its backoff is >= 22.5 s.
            Sleep(15_000),
            Call(Rejected(Refresh, 503, -1), Not),
            ClearFaults,
            // 136 s: past any 30 s +25% backoff; the token expired: log in.
            Sleep(40_000),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Within(6, 7),
        ..DEFAULT
    },
    row_43_due_revoked_cuts_backoff: Row {
        name: "due: 503 then revoked during the backoff: the 401 cuts the backoff short",
        start: Start::Due,
        faults: &[(F::Status(503), 1)],
        steps: &[
            Call(OK, Not),
            Sleep(300),
            Revoke,
            Call(Status(401), Not),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        refused: 1,
        ..DEFAULT
    },
}
