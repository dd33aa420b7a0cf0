//! `POST /v1/sso_token`: an identity provider's token, checked against what
//! the mock trusts (`sso.rs`), traded for an Ocient token in the shape the
//! test's [`SsoAnswer`] asks for.

use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::body::{BoxError, MockBody};
use crate::sso::SsoAnswer;
use crate::state::{Shared, TokenShape, DEFAULT_DATABASE};
use crate::wire::{json, read_json, require_json, Failure, Issued};

#[derive(Deserialize)]
struct SsoRequest {
    database: Option<String>,
    id_token: Option<String>,
    access_token: Option<String>,
}

#[derive(Serialize)]
struct IdTokenAnswer {
    id_token: String,
    database: String,
}

impl SsoRequest {
    /// The one token the API allows, and the database.
    fn into_parts(self) -> Result<(String, String), Failure> {
        let token = match (self.id_token, self.access_token) {
            (Some(token), None) | (None, Some(token)) => token,
            _ => {
                return Err(Failure::protocol(
                    StatusCode::BAD_REQUEST,
                    "22000",
                    "exactly one of id_token and access_token is required",
                ))
            }
        };
        let database = self.database.unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        Ok((token, database))
    }
}

/// A token request, so faults and latency have been applied by the router
/// already.
pub(super) async fn exchange<B>(
    shared: &Shared,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<MockBody>, Failure>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    require_json(headers)?;
    let request: SsoRequest = read_json(body).await?.ok_or_else(Failure::malformed_json)?;
    let (idp_token, database) = request.into_parts()?;
    let now = Instant::now();
    let mut state = shared.lock();
    let in_band = state.knobs.errors_in_band;
    // The reason is one of the fixed texts: the refused token is never echoed.
    let username = state
        .sso
        .identify(&idp_token)
        .map_err(|status| Failure::auth(status, in_band))?;
    let answer = state.knobs.sso_answer;
    let issued = state.sign_in(username, database, shape(answer), now);
    drop(state);
    Ok(respond(answer, issued))
}

/// The token an answer of this shape carries.
fn shape(answer: SsoAnswer) -> TokenShape {
    match answer {
        SsoAnswer::IdTokenWithExp => TokenShape::Jwt,
        SsoAnswer::LikeLogin | SsoAnswer::IdTokenOpaque => TokenShape::Opaque,
    }
}

fn respond(answer: SsoAnswer, issued: Issued) -> Response<MockBody> {
    match answer {
        SsoAnswer::LikeLogin => json(StatusCode::OK, &issued),
        SsoAnswer::IdTokenWithExp | SsoAnswer::IdTokenOpaque => json(
            StatusCode::OK,
            &IdTokenAnswer {
                id_token: issued.access_token,
                database: issued.database,
            },
        ),
    }
}
