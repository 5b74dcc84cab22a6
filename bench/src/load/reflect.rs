//! `corridor bench reflect`: a UDP echo server for `udp-echo`, run in the
//! org namespace. Every datagram goes back to where it came from.

use std::net::{SocketAddr, UdpSocket};

/// Echoes datagrams on `listen` until an I/O error; prints `reflecting on
/// ADDR` once bound so scripts can wait for it.
pub fn reflect(listen: SocketAddr) -> std::io::Result<()> {
    let socket = UdpSocket::bind(listen)?;
    println!("reflecting on {}", socket.local_addr()?);
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        socket.send_to(buf.get(..n).unwrap_or_default(), from)?;
    }
}
