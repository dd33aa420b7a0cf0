//! Whose request it is: the `I` in its extensions, or the user's function of it, or the
//! layer's default.

use http::Request;

use super::IdentifyFn;

/// Whose request it is.
pub(crate) struct Identify<I> {
    /// The user's function of the request; else the `I` in its extensions.
    pub(crate) with: Option<IdentifyFn<I>>,
    /// Whose it is when it does not say.
    pub(crate) default: Option<I>,
}

impl<I: Send + Sync + 'static> Identify<I> {
    /// What the user's function says of `request`, if there is one; it sees the request
    /// without its body.
    pub(super) fn by_function<B>(&self, request: Request<B>) -> (Request<B>, Option<I>) {
        let Some(identify) = &self.with else {
            return (request, None);
        };
        let (parts, body) = request.into_parts();
        let identity = identify(&parts);
        (Request::from_parts(parts, body), identity)
    }

    /// The identity `request` names: `by_function`'s, else the one in its extensions (if
    /// there is no function), else the default. Borrowed, so the hot path clones nothing.
    pub(super) fn of<'a, B>(
        &'a self,
        request: &'a Request<B>,
        by_function: &'a Option<I>,
    ) -> Option<&'a I> {
        let named = match &self.with {
            Some(_) => by_function.as_ref(),
            None => request.extensions().get::<I>(),
        };
        named.or(self.default.as_ref())
    }
}
