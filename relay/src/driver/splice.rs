//! A device's TCP stream joined to the stream its gateway dialled back:
//! bytes copied both ways, unmodified, with bounded buffers so a slow side
//! slows the other instead of growing memory.
//!
//! mio is edge-triggered, so every pump reads until the socket would block
//! or the buffer is full, and a full buffer is only refilled after the
//! other side drained it, from that side's writable event.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

/// Bytes held per direction.
pub const BUFFER: usize = 64 * 1024;

/// One direction of a splice.
#[derive(Debug)]
struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The source sent FIN (or failed); forwarded as a write shutdown once drained.
    eof: bool,
    shut: bool,
    bytes: u64,
}

impl Pipe {
    fn new(initial: &[u8]) -> Self {
        let mut buf = initial.to_vec();
        buf.resize(BUFFER.max(initial.len()), 0);
        Self { buf: buf.into_boxed_slice(), start: 0, end: initial.len(), eof: false, shut: false, bytes: 0 }
    }

    /// Moves bytes from `src` to `dst` until one of them would block.
    /// `Err` means the splice is broken (reset, or a write after FIN).
    fn pump(&mut self, src: &mut TcpStream, dst: &mut TcpStream) -> io::Result<()> {
        loop {
            while self.start < self.end {
                match dst.write(self.buf.get(self.start..self.end).unwrap_or_default()) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.start += n;
                        self.bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.start = 0;
            self.end = 0;
            if self.eof {
                if !self.shut {
                    self.shut = true;
                    let _ = dst.shutdown(Shutdown::Write);
                }
                return Ok(());
            }
            match src.read(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Both directions of a device ↔ gateway stream.
#[derive(Debug)]
pub struct Splice {
    pub device: TcpStream,
    pub gateway: TcpStream,
    to_gateway: Pipe,
    to_device: Pipe,
}

impl Splice {
    /// `initial`: what the device sent before the gateway attached (its
    /// ClientHello), delivered first.
    pub fn new(device: TcpStream, gateway: TcpStream, initial: &[u8]) -> Self {
        Self { device, gateway, to_gateway: Pipe::new(initial), to_device: Pipe::new(&[]) }
    }

    /// Moves what can move. `Ok(true)`: both directions finished cleanly;
    /// `Err`: one side reset. Either way the caller then drops the splice.
    pub fn pump(&mut self) -> io::Result<bool> {
        self.to_gateway.pump(&mut self.device, &mut self.gateway)?;
        self.to_device.pump(&mut self.gateway, &mut self.device)?;
        Ok(self.to_gateway.shut && self.to_device.shut)
    }

    /// Bytes delivered (to the gateway, to the device).
    pub fn bytes(&self) -> (u64, u64) {
        (self.to_gateway.bytes, self.to_device.bytes)
    }
}
