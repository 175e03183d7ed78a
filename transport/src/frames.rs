//! Reading and writing [`skiff_api::wire`] frames on QUIC streams.

use serde::Serialize;
use serde::de::DeserializeOwned;
use skiff_api::wire::{self, FrameError, HEADER_LEN};

/// Why a stream could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("read: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("the stream ended")]
    Closed,
    /// A session's updates stopped (replaced, or its node fell behind).
    #[error("the session's updates were stopped: replaced by a newer session, or behind")]
    Unsubscribed,
}

/// Reads one frame; `Ok(None)` when the stream ended cleanly before it.
pub async fn read<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
) -> Result<Option<T>, StreamError> {
    read_at_most(recv, wire::MAX_FRAME).await
}

/// Reads one frame whose body may be at most `max` bytes (and at most
/// [`wire::MAX_FRAME`]); a longer one is refused from its header, before
/// anything is buffered.
pub async fn read_at_most<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<Option<T>, StreamError> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = wire::body_len(header)?;
    if len > max {
        return Err(FrameError::TooLarge(len).into());
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(Some(wire::decode(&body)?))
}

/// Reads one frame that must be there.
pub async fn expect<T: DeserializeOwned>(recv: &mut quinn::RecvStream) -> Result<T, StreamError> {
    read(recv).await?.ok_or(StreamError::Closed)
}

/// Writes one frame.
pub async fn write<T: Serialize>(
    send: &mut quinn::SendStream,
    message: &T,
) -> Result<(), StreamError> {
    let frame = wire::encode(message)?;
    send.write_all(&frame).await?;
    Ok(())
}
