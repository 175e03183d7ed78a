//! QUIC endpoints on UDP sockets with room to queue: every connection of an
//! endpoint shares its one socket, and with the kernel's default receive
//! buffer (about 200 KiB) a burst from thousands of connections, or a few
//! milliseconds in which the endpoint's task does not run, overflows it. The
//! datagrams dropped then cost retransmissions and, at worst, handshakes and
//! sessions that time out: at 3,000 hollow nodes on two cores, nodes went
//! silent for the grace period and were marked NotReady by the thousand.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;

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

/// A client endpoint on an ephemeral port of the same address family as `peer`.
pub fn client(peer: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let bind_addr: SocketAddr = if peer.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    endpoint(None, bind_addr)
}

/// An endpoint that serves (and may also call) on `addr`.
pub fn server(config: quinn::ServerConfig, addr: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    endpoint(Some(config), addr)
}

fn endpoint(
    config: Option<quinn::ServerConfig>,
    addr: SocketAddr,
) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        config,
        bind(addr)?,
        Arc::new(quinn::TokioRuntime),
    )
}
