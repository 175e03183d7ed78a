//! The plumbing the control plane and nodes share, one copy of each:
//! [`frames`] on QUIC streams (the [`skiff_api::wire`] format), QUIC
//! [`endpoint`]s on UDP sockets with room to queue, what a [`node_cert`]ificate
//! says (who is at the other end of a mutual-TLS link), and [`private_file`]s
//! (keys, certificates) written atomically, readable by their owner only.

pub mod endpoint;
pub mod frames;
pub mod node_cert;
pub mod private_file;
