//! `POST /v1/login` and `POST /v1/token_refresh`: a password signs a user
//! in, and a token still inside its refresh lifetime gets a fresh one,
//! whichever way it was first issued.

use http::HeaderMap;
use http_body::Body;
use tokio::time::Instant;

use crate::body::BoxError;
use crate::state::Shared;
use crate::wire::{bearer, read_json, require_json, Failure, Issued, LoginRequest, RefreshRequest};

/// A token request, so faults and latency have been applied by the router
/// already.
pub(super) async fn login<B>(
    shared: &Shared,
    headers: &HeaderMap,
    body: B,
) -> Result<Issued, Failure>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    require_json(headers)?;
    let creds: LoginRequest = read_json(body).await?.ok_or_else(Failure::malformed_json)?;
    let mut state = shared.lock();
    let in_band = state.knobs.errors_in_band;
    state
        .login(creds, Instant::now())
        .map_err(|status| Failure::auth(status, in_band))
}

/// The token comes in the `Authorization` header; the body may name
/// another database, or be empty.
pub(super) async fn refresh<B>(
    shared: &Shared,
    headers: &HeaderMap,
    body: B,
) -> Result<Issued, Failure>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    require_json(headers)?;
    let request: RefreshRequest = read_json(body).await?.unwrap_or_default();
    let now = Instant::now();
    let mut state = shared.lock();
    let in_band = state.knobs.errors_in_band;
    bearer(headers)
        .and_then(|token| state.refresh(token, request.database, now))
        .map_err(|status| Failure::auth(status, in_band))
}
