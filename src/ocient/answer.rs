//! Reading Ocient's token answers (login, token_refresh, single sign-on): the status
//! object, the token, its lifetime, and which rejections say the token is revoked.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use serde::Deserialize;

use crate::endpoint::{Answer, FailureKind};
use crate::error::{Error, ErrorCode, Exchange};
use crate::grant::{Grant, Secret};

use super::jwt;

/// A token's lifetime when a single sign-on answer gives neither `expires_in` nor a JWT
/// `exp`: short, so that a token which lives less is refreshed before it dies.
pub(super) const UNSTATED_LIFETIME: Duration = Duration::from_secs(300);

/// What a token answer must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `/v1/login` and `/v1/token_refresh`: `access_token` and `expires_in`.
    Login,
    /// The single sign-on answers, which Ocient documents with less: the token in
    /// `access_token` or else `id_token`, its lifetime in `expires_in`, else in the JWT's
    /// `exp`, else [`UNSTATED_LIFETIME`].
    SignIn,
}

/// Ocient vendor codes that mean "this token is no good": only a new login helps.
///
/// -304 wrong user/password, -733 session expired, -1204 no session, -1205 token invalid,
/// -1206 signature mismatch, -1207 unknown issuer, -1208 token expired.
const TOKEN_NO_GOOD: [i64; 7] = [-304, -733, -1204, -1205, -1206, -1207, -1208];

/// The status object every Ocient answer carries.
#[derive(Deserialize, Default)]
pub(super) struct Status {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    sql_state: String,
    #[serde(default)]
    vendor_code: i64,
}

/// A login or token_refresh answer; fields are loose so each defect gets its own message.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<serde_json::Value>,
    id_token: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<Status>,
}

/// Turns an answer into a grant, or into the error that explains why not; `scrub` cleans
/// the server's own words of any secret before an error repeats them.
pub(super) fn read(
    answer: Answer,
    shape: Shape,
    scrub: impl Fn(&str) -> String,
) -> Result<Grant, Error> {
    let exchange = answer.exchange;
    let parsed = parse_object::<TokenAnswer>(&answer.body);
    // A status object that does not parse leaves the answer unparsed: no token is taken
    // from a 2xx whose status cannot be read.
    let status = parsed.as_ref().ok().and_then(|p| p.status.as_ref());
    if let Some(rejection) = rejection_by(&answer, status, &scrub) {
        return Err(rejection);
    }
    // serde's message can quote the body, and the body can hold a token: say where only.
    let parsed = parsed.map_err(|e| {
        let at = format!("line {} column {}", e.line(), e.column());
        Error::invalid_response(exchange, format!("not a token answer ({at})"))
    })?;
    let (field, token) = match (parsed.access_token, parsed.id_token, shape) {
        (None, Some(id_token), Shape::SignIn) => ("id_token", Some(id_token)),
        (access_token, ..) => ("access_token", access_token),
    };
    let token = token_field(exchange, field, token)?;
    let expires_in = match (parsed.expires_in, shape) {
        (Some(serde_json::Value::Number(n)), _) => n.as_f64().unwrap_or(0.0),
        (Some(_), _) => {
            return Err(Error::invalid_response(
                exchange,
                "expires_in is not a number",
            ))
        }
        (None, Shape::Login) => {
            return Err(Error::invalid_response(exchange, "expires_in is missing"))
        }
        (None, Shape::SignIn) => sign_in_lifetime(token.expose()),
    };
    Grant::from_expires_in(token, expires_in)
        .map_err(|e| Error::invalid_response(exchange, e.to_string()))
}

/// The seconds a sign-in token lives by its JWT `exp`, or [`UNSTATED_LIFETIME`] when it
/// says nothing, or when `exp` has passed by this machine's clock: the server just issued
/// the token, so the clocks disagree, and a token that is really dead is revoked at its
/// first 401.
fn sign_in_lifetime(token: &str) -> f64 {
    match jwt::seconds_left(token, SystemTime::now()) {
        Some(left) if left >= 1.0 => left,
        Some(left) => {
            tracing::warn!(
                seconds = left,
                "the token's exp has passed by this clock; assuming the default lifetime"
            );
            UNSTATED_LIFETIME.as_secs_f64()
        }
        None => UNSTATED_LIFETIME.as_secs_f64(),
    }
}

/// The rejection `answer` carries, if any: a non-2xx status, or a non-zero vendor code in
/// its status object (in a 2xx answer too).
pub(super) fn rejection(answer: &Answer, scrub: impl Fn(&str) -> String) -> Option<Error> {
    rejection_by(answer, status_of(&answer.body).as_ref(), scrub)
}

fn rejection_by(
    answer: &Answer,
    status: Option<&Status>,
    scrub: impl Fn(&str) -> String,
) -> Option<Error> {
    let vendor_code = status.map_or(0, |s| s.vendor_code);
    if answer.status.is_success() && vendor_code == 0 {
        return None;
    }
    let code = ErrorCode::Ocient {
        vendor_code,
        sql_state: status.map(|s| sql_state(&s.sql_state)).unwrap_or_default(),
    };
    let reason = scrub(status.map_or("", |s| s.reason.as_str()));
    Some(Error::rejected(
        answer.exchange,
        answer.status,
        Some(code),
        &reason,
    ))
}

/// A device grant still waiting for the user: not approved yet, or the server's wait for
/// the approval ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pending {
    /// The server asks to be polled less often (OAuth 2.0's `slow_down`).
    pub(super) slow_down: bool,
}

/// Whether `answer`, to a poll for a device grant's approval, says the user has not decided
/// yet: it carries no token, its status is a 2xx or 4xx, and it is a 408, or its SQLSTATE
/// is of class HYT (timeout), or its reason says pending, slow_down or timed out. The server's
/// words for this are not documented: these are the ones Ocient's status object and OAuth
/// 2.0's device grant use. A 5xx is the server failing, whatever it says.
pub(super) fn pending(answer: &Answer) -> Option<Pending> {
    let Ok(parsed) = parse_object::<TokenAnswer>(&answer.body) else {
        return (answer.status == StatusCode::REQUEST_TIMEOUT)
            .then_some(Pending { slow_down: false });
    };
    let has_token = parsed.access_token.is_some() || parsed.id_token.is_some();
    if has_token || answer.status.is_server_error() {
        return None;
    }
    let status = parsed.status.unwrap_or_default();
    let reason = status.reason.to_ascii_lowercase();
    let slow_down = reason.contains("slow_down");
    let waiting = answer.status == StatusCode::REQUEST_TIMEOUT
        || status.sql_state.starts_with("HYT")
        || slow_down
        || ["pending", "timed out", "timeout"]
            .iter()
            .any(|word| reason.contains(word));
    waiting.then_some(Pending { slow_down })
}

/// The status object of an answer, when it is a JSON object that carries one.
fn status_of(body: &[u8]) -> Option<Status> {
    #[derive(Deserialize)]
    struct Carrier {
        status: Option<Status>,
    }
    parse_object::<Carrier>(body).ok()?.status
}

/// What a failed Ocient login or refresh means: a vendor code that says the credentials or
/// the token are no good (in any status, a 500 with -1208 too), or a 401 or 403, refuses a
/// login and revokes a refreshed token; the rest is as for any protocol.
pub(super) fn classify(error: &Error) -> FailureKind {
    let no_good = match error {
        Error::Rejected { status, .. } => {
            *status == StatusCode::UNAUTHORIZED
                || *status == StatusCode::FORBIDDEN
                || error
                    .vendor_code()
                    .is_some_and(|code| TOKEN_NO_GOOD.contains(&code))
        }
        _ => false,
    };
    match error {
        Error::Rejected { exchange, .. } if no_good => match exchange {
            Exchange::Login => FailureKind::Refused,
            Exchange::Refresh => FailureKind::Revoked,
        },
        error => FailureKind::of(error),
    }
}

/// An answer must be a JSON object (serde would also take a list of its fields).
pub(super) fn parse_object<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    if !value.is_object() {
        return Err(serde::de::Error::custom("not an object"));
    }
    serde_json::from_value(value)
}

/// A SQLSTATE is five letters or digits; anything else the server put there is not shown.
fn sql_state(value: &str) -> String {
    if value.len() <= 5 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        value.to_owned()
    } else {
        "<invalid>".to_owned()
    }
}

/// The token in `field`, which must be a string fit for a header.
fn token_field(
    exchange: Exchange,
    field: &str,
    value: Option<serde_json::Value>,
) -> Result<Secret, Error> {
    match value {
        Some(serde_json::Value::String(token)) => Secret::new(token)
            .map_err(|e| Error::invalid_response(exchange, format!("{field} refused: {e}"))),
        Some(_) => Err(Error::invalid_response(
            exchange,
            format!("{field} is not a string"),
        )),
        None => Err(Error::invalid_response(
            exchange,
            format!("{field} is missing"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(status: u16, body: &str) -> Result<Grant, Error> {
        read_as(Exchange::Login, status, body)
    }

    fn read_as(exchange: Exchange, status: u16, body: &str) -> Result<Grant, Error> {
        let status = StatusCode::from_u16(status).unwrap();
        let answer = Answer::new(exchange, status, http::HeaderMap::new(), body.to_owned());
        super::read(answer, Shape::Login, str::to_owned)
    }

    fn rejected(exchange: Exchange, status: u16, vendor_code: i64) -> Error {
        let body = format!(r#"{{"status":{{"vendor_code":{vendor_code}}}}}"#);
        read_as(exchange, status, &body).unwrap_err()
    }

    #[test]
    fn every_vendor_code_that_means_the_token_is_no_good_says_so() {
        let kinds = [
            (Exchange::Login, FailureKind::Refused),
            (Exchange::Refresh, FailureKind::Revoked),
        ];
        for (exchange, no_good) in kinds {
            for code in [-304, -733, -1204, -1205, -1206, -1207, -1208] {
                let in_band = classify(&rejected(exchange, 200, code));
                assert_eq!(in_band, no_good, "{code} in band");
                let with_500 = classify(&rejected(exchange, 500, code));
                assert_eq!(with_500, no_good, "{code} with a 500");
            }
            for code in [-1, -1209, 304, 733, 1204, 0] {
                let kind = classify(&rejected(exchange, 500, code));
                assert_eq!(kind, FailureKind::Away, "{code} says nothing of the token");
            }
            for status in [401, 403] {
                assert_eq!(classify(&rejected(exchange, status, -1)), no_good);
            }
        }
        let in_band = classify(&rejected(Exchange::Login, 200, -1));
        assert_eq!(in_band, FailureKind::Unusable, "any other code in band");
    }

    #[test]
    fn a_sql_state_is_shown_only_when_it_looks_like_one() {
        let state = |value: &str| {
            let body = format!(r#"{{"status":{{"vendor_code":-1,"sql_state":"{value}"}}}}"#);
            match read(500, &body).unwrap_err().code() {
                Some(ErrorCode::Ocient { sql_state, .. }) => sql_state.clone(),
                other => panic!("expected an Ocient code, got {other:?}"),
            }
        };
        assert_eq!(state("08004"), "08004");
        assert_eq!(state("42S02"), "42S02");
        assert_eq!(state(""), "");
        for odd in ["080045", "08 04", "0800!", "s3cret-pw"] {
            assert_eq!(state(odd), "<invalid>", "{odd}");
        }
    }

    #[test]
    fn a_good_answer_is_a_grant() {
        let grant = read(
            200,
            r#"{"access_token":"eyJ.a-b_c","expires_in":3600,"status":{"vendor_code":0}}"#,
        )
        .unwrap();
        assert_eq!(grant.access_token().expose(), "eyJ.a-b_c");
        assert_eq!(grant.lifetime(), std::time::Duration::from_secs(3600));
    }

    // Found by fuzzing: 1e-15 seconds rounded to a zero lifetime.
    #[test]
    fn lifetimes_under_a_second_are_refused() {
        for expires_in in ["1e-15", "0.4", "1e-308"] {
            let body = format!(r#"{{"access_token":"t","expires_in":{expires_in}}}"#);
            let error = read(200, &body).unwrap_err();
            assert!(
                matches!(error, Error::InvalidResponse { .. }),
                "{expires_in}: {error}"
            );
        }
    }

    // A malformed status object hides whether the node said no: no token is taken.
    #[test]
    fn a_status_that_does_not_parse_is_no_token_answer() {
        let body = r#"{"access_token":"t","expires_in":60,"status":{"vendor_code":"-1205"}}"#;
        assert!(matches!(
            read(200, body),
            Err(Error::InvalidResponse { .. })
        ));
    }

    // Found by fuzzing: serde takes a struct from a list of its fields.
    #[test]
    fn a_list_is_not_a_token_answer() {
        assert!(matches!(
            read(200, r#"["tok", 3600]"#),
            Err(Error::InvalidResponse { .. })
        ));
    }
}
