//! Writing a relay link's queued frames: both ends of a link (the
//! gateway's dialler and the relay's listener) queue frames in an outbox
//! and write what the socket takes, never blocking their event loop.

use std::io::{self, Write};

/// Unsent link bytes past which the peer is not reading: drop the link.
pub const MAX_OUTBOX: usize = 256 * 1024;

/// Writes what `outbox` holds until the socket would block. `Err` when the
/// peer is gone, or when more than [`MAX_OUTBOX`] bytes wait: a peer that
/// does not read its link is dead.
pub fn write_out(stream: &mut impl Write, outbox: &mut Vec<u8>) -> io::Result<()> {
    while !outbox.is_empty() {
        match stream.write(outbox) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                outbox.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if outbox.len() > MAX_OUTBOX {
        return Err(io::Error::other("the peer is not reading the link"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes `room` bytes, then would block.
    struct Tight {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Tight {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.room).min(7);
            self.room -= n;
            self.taken.extend_from_slice(&b[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn what_the_socket_takes_leaves_the_outbox_in_order() {
        let mut s = Tight { taken: Vec::new(), room: 20 };
        let mut outbox: Vec<u8> = (0..50).collect();
        write_out(&mut s, &mut outbox).expect("would block is no error");
        assert_eq!(s.taken, (0..20).collect::<Vec<u8>>());
        assert_eq!(outbox, (20..50).collect::<Vec<u8>>());
        s.room = 100;
        write_out(&mut s, &mut outbox).expect("drained");
        assert!(outbox.is_empty());
        assert_eq!(s.taken, (0..50).collect::<Vec<u8>>());
    }

    #[test]
    fn a_peer_that_does_not_read_is_dead() {
        let mut s = Tight { taken: Vec::new(), room: 0 };
        let mut outbox = vec![0u8; MAX_OUTBOX];
        assert!(write_out(&mut s, &mut outbox).is_ok(), "at the limit it is still alive");
        outbox.push(1);
        assert!(write_out(&mut s, &mut outbox).is_err(), "past it, dead");
    }

    #[test]
    fn a_socket_that_takes_nothing_is_broken() {
        struct Zero;
        impl Write for Zero {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = write_out(&mut Zero, &mut vec![1]).expect_err("write zero");
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }
}
