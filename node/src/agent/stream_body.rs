//! HTTP bodies over QUIC streams, chunk by chunk: after a call's head frame,
//! the rest of a stream is the body, ended by the stream's end. A body that
//! breaks off resets the stream, so the other side sees an error, never a
//! body cut short that looks whole.

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use skiff_runtime::{Body, BodyError};

/// Largest chunk read at once.
const CHUNK: usize = 64 << 10;

/// The code a stream is reset with when the body it carries broke off.
const BROKEN_BODY: quinn::VarInt = quinn::VarInt::from_u32(1);

/// The rest of `recv`, as a body.
pub(crate) fn receive(recv: quinn::RecvStream) -> Body {
    let chunks = futures::stream::unfold(Some(recv), |recv| async move {
        let mut recv = recv?;
        match recv.read_chunk(CHUNK, true).await {
            Ok(Some(chunk)) => Some((Ok(Frame::data(chunk.bytes)), Some(recv))),
            Ok(None) => None,
            // Nothing follows an error.
            Err(e) => Some((Err(BodyError(format!("body stream: {e}"))), None)),
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// Why a body could not be sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The body broke off at its source; the stream was reset.
    #[error("the body broke off: {0}")]
    Source(BodyError),
    /// The stream could not be written (the other side went away).
    #[error("write the body: {0}")]
    Write(#[from] quinn::WriteError),
}

/// Writes `body` to `send`, chunk by chunk (trailers are dropped), without
/// finishing the stream.
pub(crate) async fn send(send: &mut quinn::SendStream, mut body: Body) -> Result<(), SendError> {
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                let _ = send.reset(BROKEN_BODY);
                return Err(SendError::Source(e));
            }
        };
        if let Ok(data) = frame.into_data() {
            write_chunk(send, data).await?;
        }
    }
    Ok(())
}

async fn write_chunk(send: &mut quinn::SendStream, data: Bytes) -> Result<(), quinn::WriteError> {
    if data.is_empty() {
        return Ok(());
    }
    send.write_chunk(data).await
}
