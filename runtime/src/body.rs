//! Streamed HTTP bodies, as the runtime takes and gives them: requests flow
//! into a guest and responses out of it chunk by chunk, never whole.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// A streamed HTTP body.
pub type Body = UnsyncBoxBody<Bytes, BodyError>;

/// Why a streamed body broke off (the guest trapped mid-way, the peer went
/// away, ...).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

impl BodyError {
    /// Any error, as its message.
    pub fn from_display(e: impl std::fmt::Display) -> Self {
        BodyError(e.to_string())
    }
}

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with nothing in it.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Any body, boxed; its errors become [`BodyError`]s.
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    body.map_err(BodyError::from_display).boxed_unsync()
}
