//! The gateway's UDP socket, with room to queue: every node's connection
//! shares it, and with the kernel's default receive buffer (about 200 KiB) a
//! burst from thousands of nodes, or a few milliseconds in which the
//! endpoint's task does not run, overflows it. The datagrams dropped then cost
//! retransmissions and, at worst, handshakes and sessions that time out: at
//! 3,000 hollow nodes on two cores, nodes went silent for the grace period and
//! were marked NotReady by the thousand.

use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// The receive and send buffer asked for; the kernel caps it at
/// `net.core.rmem_max` / `wmem_max`.
const BUFFER: usize = 8 << 20;

/// A UDP socket bound to `addr` with large buffers.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, only drops sooner.
    let _ = socket.set_recv_buffer_size(BUFFER);
    let _ = socket.set_send_buffer_size(BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
