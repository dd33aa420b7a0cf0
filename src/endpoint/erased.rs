//! The endpoint as the layer holds it: one type for every protocol, so that the layer's
//! types need no parameter for it.

use std::fmt;

use http::Uri;

use super::client::BoxFuture;
use super::{FailureKind, TokenClient, TokenEndpoint};
use crate::error::Error;
use crate::grant::Grant;

/// [`TokenEndpoint`] with its futures boxed: what `dyn` can hold.
pub(crate) trait DynEndpoint: fmt::Debug + Send + Sync + 'static {
    fn origin(&self) -> &Uri;
    fn can_log_in(&self) -> bool;
    fn login<'a>(&'a self, client: &'a mut TokenClient<'_>) -> BoxFuture<'a, Result<Grant, Error>>;
    fn refresh<'a>(
        &'a self,
        client: &'a mut TokenClient<'_>,
        current: &'a Grant,
    ) -> BoxFuture<'a, Result<Grant, Error>>;
    fn classify(&self, error: &Error) -> FailureKind;
    fn initial_grant(&self) -> Option<Grant>;
    fn allows_plain_http(&self) -> bool;
    fn other_origins(&self) -> Vec<Uri>;
    fn fail_over(&self) -> Option<(Uri, Uri)>;
}

impl<T: TokenEndpoint> DynEndpoint for T {
    fn origin(&self) -> &Uri {
        TokenEndpoint::origin(self)
    }

    fn can_log_in(&self) -> bool {
        TokenEndpoint::can_log_in(self)
    }

    fn login<'a>(&'a self, client: &'a mut TokenClient<'_>) -> BoxFuture<'a, Result<Grant, Error>> {
        Box::pin(TokenEndpoint::login(self, client))
    }

    fn refresh<'a>(
        &'a self,
        client: &'a mut TokenClient<'_>,
        current: &'a Grant,
    ) -> BoxFuture<'a, Result<Grant, Error>> {
        Box::pin(TokenEndpoint::refresh(self, client, current))
    }

    fn classify(&self, error: &Error) -> FailureKind {
        TokenEndpoint::classify(self, error)
    }

    fn initial_grant(&self) -> Option<Grant> {
        TokenEndpoint::initial_grant(self)
    }

    fn allows_plain_http(&self) -> bool {
        TokenEndpoint::allows_plain_http(self)
    }

    fn other_origins(&self) -> Vec<Uri> {
        TokenEndpoint::other_origins(self)
    }

    fn fail_over(&self) -> Option<(Uri, Uri)> {
        TokenEndpoint::fail_over(self)
    }
}
