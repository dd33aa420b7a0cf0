//! The timing knobs: when the lifetime starts, `refresh_at`, and the margin of short
//! tokens.

use crate::table::*;

rows! {
    // --- Timing knobs. ---
    row_59_lifetime_from_sending: Row {
        name: "lifetime counts from when the login was sent, not answered",
        // Sent at 0, answered at 3: dead at 95, not 98. refresh_at 0: no due phase.
        refresh_at: 0.0,
        latency: 3_000,
        steps: &[
            Call(OK, Ms(3_000)),
            Sleep(91_900),
            Call(OK, Not),
            Sleep(101),
            Call(OK, Ms(3_000)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_60_refresh_at_0_8: Row {
        name: "refresh_at 0.8: not due at 19.2 s, due by 30.1 s",
        refresh_at: 0.8,
        steps: &[
            Call(OK, Ms(200)),
            Sleep(19_000),
            Call(OK, Not),
            Counts(1, 0),
            Sleep(10_900),
            Call(OK, Not),
            Sleep(300),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_61_refresh_at_0_9: Row {
        name: "refresh_at 0.9: not due at 9.9 s, due by 20.1 s",
        refresh_at: 0.9,
        steps: &[
            Call(OK, Ms(200)),
            Sleep(9_700),
            Call(OK, Not),
            Counts(1, 0),
            Sleep(10_200),
            Call(OK, Not),
            Sleep(300),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_62_margin_20_s_token: Row {
        name: "20 s token: the margin is 2 s (a tenth), not 5 s",
        lifetime: 20,
        refresh_at: 0.0,
        steps: &[
            Call(OK, Ms(200)),
            Sleep(17_799),
            Call(OK, Not),
            Sleep(2),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
    row_63_margin_1_s_token: Row {
        name: "1 s token: the margin is 100 ms",
        lifetime: 1,
        refresh_at: 0.0,
        steps: &[
            Call(OK, Ms(200)),
            Sleep(600),
            Call(OK, Not),
            Sleep(101),
            Call(OK, Ms(200)),
        ],
        logins: Is(1),
        refreshes: Is(1),
        ..DEFAULT
    },
}
