//! The plumbing the control plane and nodes share, one copy of each:
//! [`frames`] on QUIC streams (the [`skiff_api::wire`] format), QUIC
//! [`endpoint`]s on UDP sockets with room to queue, and [`private_file`]s
//! (keys, certificates) written atomically, readable by their owner only.

pub mod endpoint;
pub mod frames;
pub mod private_file;
