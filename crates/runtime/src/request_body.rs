//! The request body a component reads: the client's body, cut off at the size limit.
//!
//! wasmtime-wasi-http puts no limit on bodies, so the host wraps every incoming body. A body
//! that announces a larger `Content-Length` is refused before the component runs (see
//! `server`); one that streams past the limit ends with an error for the component and sets
//! a flag, so the host answers 413 whatever the component then does.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use wasmtime_wasi_http::Error;

/// A request body limited to a number of bytes.
pub struct LimitedBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; `exceeded` is set when it turns out larger than `limit`.
    pub fn new(inner: B, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
            exceeded,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.exceeded.store(true, Ordering::SeqCst);
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
