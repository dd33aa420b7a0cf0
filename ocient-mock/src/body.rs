//! [`MockBody`]: a response body that can also break part-way.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The error every body and server of this crate speaks, as tower's `BoxError` is.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The mock's response body: bytes that can also fail part-way, for
/// [`Fault::CutOff`](crate::Fault::CutOff).
pub struct MockBody {
    kind: BodyKind,
}

enum BodyKind {
    Full(Option<Bytes>),
    /// Sends `chunk`, then fails, while `size_hint` promises `declared` bytes.
    CutOff {
        chunk: Option<Bytes>,
        declared: u64,
        stalled: bool,
    },
}

impl MockBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        let data = (!bytes.is_empty()).then_some(bytes);
        Self {
            kind: BodyKind::Full(data),
        }
    }

    pub(crate) fn cut_off(chunk: Bytes, declared: u64) -> Self {
        Self {
            kind: BodyKind::CutOff {
                chunk: Some(chunk),
                declared,
                stalled: false,
            },
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            BodyKind::Full(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            BodyKind::CutOff { chunk, stalled, .. } => {
                if let Some(chunk) = chunk.take() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                // Pending once, so hyper flushes the headers and the chunk
                // before the error closes the connection; otherwise the
                // client sees no response at all instead of a cut body.
                if !*stalled {
                    *stalled = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.kind = BodyKind::Full(None);
                Poll::Ready(Some(Err(
                    "Ocient mock: response body cut off (injected fault)".into(),
                )))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, BodyKind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            BodyKind::CutOff { declared, .. } => SizeHint::with_exact(*declared),
        }
    }
}

impl fmt::Debug for MockBody {
    /// Sizes only: a body may carry a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("MockBody");
        match &self.kind {
            BodyKind::Full(data) => debug.field("len", &data.as_ref().map_or(0, Bytes::len)),
            BodyKind::CutOff { declared, .. } => debug.field("cut_off_of", declared),
        };
        debug.finish()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body::Body;
    use http_body_util::BodyExt;

    use super::MockBody;

    #[tokio::test]
    async fn full_body_is_one_exact_frame_and_an_empty_one_ends_at_once() {
        let empty = MockBody::full(Bytes::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));

        let mut body = MockBody::full(Bytes::from_static(b"{}"));
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(2));
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"{}")));
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
        assert_eq!(format!("{body:?}"), "MockBody { len: 0 }");
    }
}
