//! A panic-free reader over untrusted bytes and the small writers that
//! build messages.
//!
//! Every length prefix read from the wire becomes a bounded sub-reader, so a
//! lie in a length field can only make a parse fail, never index out of
//! bounds (rustls `msgs/codec.rs` is the model).

/// The input ended before a field did, or a field's value was impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// Cursor over a byte slice; every read is checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over all of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Number of bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        let end = self.pos.checked_add(n).ok_or(Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// Takes exactly `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub fn u16(&mut self) -> Result<u16, Truncated> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u24(&mut self) -> Result<u32, Truncated> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    pub fn u48(&mut self) -> Result<u64, Truncated> {
        let [a, b, c, d, e, f] = self.array()?;
        Ok(u64::from_be_bytes([0, 0, a, b, c, d, e, f]))
    }

    /// A `u8`-length-prefixed vector, as a sub-reader.
    pub fn sub_u8(&mut self) -> Result<Reader<'a>, Truncated> {
        let n = self.u8()?;
        Ok(Reader::new(self.take(usize::from(n))?))
    }

    /// A `u16`-length-prefixed vector, as a sub-reader.
    pub fn sub_u16(&mut self) -> Result<Reader<'a>, Truncated> {
        let n = self.u16()?;
        Ok(Reader::new(self.take(usize::from(n))?))
    }

    /// Fails unless every byte was consumed: trailing garbage in a
    /// message is a decode error, not something to ignore.
    pub fn finish(&self) -> Result<(), Truncated> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Truncated)
        }
    }
}

pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u24(out: &mut Vec<u8>, v: u32) {
    let [_, a, b, c] = v.to_be_bytes();
    out.extend_from_slice(&[a, b, c]);
}

pub fn put_u48(out: &mut Vec<u8>, v: u64) {
    let [_, _, a, b, c, d, e, f] = v.to_be_bytes();
    out.extend_from_slice(&[a, b, c, d, e, f]);
}

/// Writes a `u8` length prefix, lets `body` append, then patches the length.
/// Callers only pass bodies they built themselves and know to fit.
pub fn put_prefixed_u8(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.push(0);
    body(out);
    let len = u8::try_from(out.len() - at - 1).unwrap_or(u8::MAX);
    if let Some(slot) = out.get_mut(at) {
        *slot = len;
    }
}

/// As [`put_prefixed_u8`] with a `u16` prefix.
pub fn put_prefixed_u16(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    body(out);
    let len = u16::try_from(out.len() - at - 2).unwrap_or(u16::MAX);
    if let Some(slot) = out.get_mut(at..at + 2) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_lies_fail_instead_of_panicking() {
        let mut r = Reader::new(&[5, 1, 2]);
        assert_eq!(r.sub_u8().err(), Some(Truncated));
        let mut r = Reader::new(&[0xff, 0xff]);
        assert_eq!(r.sub_u16().err(), Some(Truncated));
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(r.u48(), Ok(0x0102_0304_0506));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn prefixed_writers_patch_lengths() {
        let mut v = Vec::new();
        put_prefixed_u16(&mut v, |o| put_prefixed_u8(o, |o| o.extend_from_slice(b"abc")));
        assert_eq!(v, [0, 4, 3, b'a', b'b', b'c']);
    }
}
