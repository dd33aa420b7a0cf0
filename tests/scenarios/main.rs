//! The scenario table: (token state, what the server answers, when the caller calls)
//! → (token requests made, what the caller gets, whether it waited).
//!
//! Every row is a test of its own, `row_NN_<short name>`, run on tokio's paused clock on
//! a fresh mock and a fresh layer: `cargo test --test scenarios row_58` runs one row, and
//! a row that disagrees fails by its name, with everything it got wrong.
//!
//! Timeline of a 100 s token obtained at `t`: refresh point in `[t+50, t+60)`
//! (`refresh_at` 0.5 plus up to 10 % spread), dead point `t+95` (5 s margin), expiry
//! `t+100`. The `Start` states are reached from a login at 0 with no latency.
//!
//! - `table`: the vocabulary the rows are written in;
//! - `rows`: the table itself, in the order of the token's life;
//! - `server`, `run`: the mock behind the layer, and how a row is run and checked.

#[path = "../common/mod.rs"]
mod common;
mod run;
mod server;
mod table;

/// Turns `row_NN_name: Row { .. },` entries into one paused-clock test each, named
/// after the entry, and keeps the entries as the module's `ROWS` for the checks on the
/// table as a whole.
macro_rules! rows {
    ($($test:ident: $row:expr,)+) => {
        pub const ROWS: &[$crate::table::Row] = &[$($row),+];

        $(
            #[tokio::test(start_paused = true)]
            async fn $test() {
                const ROW: $crate::table::Row = $row;
                $crate::run::check(&ROW).await;
            }
        )+
    };
}

mod rows {
    pub mod invalid;
    pub mod no_token;
    pub mod timing;
    pub mod valid;
}

/// Every row of the table, in order.
fn all_rows() -> Vec<&'static table::Row> {
    [
        rows::no_token::ROWS,
        rows::valid::ROWS,
        rows::invalid::ROWS,
        rows::timing::ROWS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[test]
fn table_has_every_row_once() {
    let all = all_rows();
    assert!(all.len() >= 30, "the table has {} rows", all.len());
    let mut names = std::collections::HashSet::new();
    for row in all {
        assert!(names.insert(row.name), "two rows named {:?}", row.name);
    }
}

/// How many scenarios `doc` says the table holds: the `N` of its "a table of N
/// scenarios", which must be said exactly once.
fn scenarios_claimed(doc: &str) -> usize {
    let words: Vec<&str> = doc.split_whitespace().collect();
    let claims: Vec<usize> = words
        .windows(2)
        .filter(|pair| pair[1].trim_end_matches(|c: char| !c.is_alphanumeric()) == "scenarios")
        .filter_map(|pair| pair[0].replace(',', "").parse().ok())
        .collect();
    assert_eq!(
        claims.len(),
        1,
        "the number of scenarios should be given once: {claims:?}"
    );
    claims[0]
}

#[test]
fn the_table_has_as_many_rows_as_the_readme_says() {
    for (name, doc) in [
        ("README.md", include_str!("../../README.md")),
        ("BENCHMARKS.md", include_str!("../../BENCHMARKS.md")),
    ] {
        let claimed = scenarios_claimed(doc);
        assert_eq!(
            all_rows().len(),
            claimed,
            "{name} says {claimed} scenarios: update it, or the table"
        );
    }
}
