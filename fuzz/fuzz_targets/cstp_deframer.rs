//! The CSTP deframer (`proto::cstp::Deframer`) over an arbitrary stream cut
//! into arbitrary reads. Input: `headroom(1) ‖ cuts(1) ‖ cuts × u16 ‖ stream`.
//!
//! However the stream is cut, the frames and the error are those of the
//! whole stream pushed at once; each frame re-encodes to exactly the bytes
//! it came from, behind `headroom` zero bytes (at most `MAX_HEADROOM`); what
//! is buffered never exceeds one frame plus one read.
#![no_main]

use proto::cstp::{write_frame, CstpError, Deframer, Frame, HEADER_LEN, MAX_HEADROOM, MAX_PAYLOAD};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&headroom, rest)) = data.split_first() else { return };
    let headroom = usize::from(headroom) % (MAX_HEADROOM + 8);
    let Some((&cuts, mut rest)) = rest.split_first() else { return };
    let mut at = Vec::new();
    for _ in 0..cuts % 32 {
        let Some((c, tail)) = rest.split_first_chunk::<2>() else { break };
        at.push(usize::from(u16::from_be_bytes(*c)));
        rest = tail;
    }
    let stream = rest;
    at.iter_mut().for_each(|c| *c %= stream.len() + 1);
    at.push(stream.len());
    at.sort_unstable();

    let whole = deframe(&[stream], headroom);
    let mut reads = Vec::new();
    let mut from = 0;
    for &to in &at {
        reads.push(&stream[from..to]);
        from = to;
    }
    let chunked = deframe(&reads, headroom);
    assert_eq!(whole, chunked, "the frames depend on how the stream was cut");

    let room = headroom.min(MAX_HEADROOM);
    let mut offset = 0;
    for frame in &whole.0 {
        assert!(frame.payload.len() >= room && frame.payload[..room].iter().all(|&b| b == 0));
        let mut again = Vec::new();
        write_frame(&mut again, frame.packet_type, &frame.payload[room..]).expect("a received payload fits");
        assert_eq!(again, &stream[offset..offset + again.len()], "one encoding per frame");
        offset += again.len();
    }
    if whole.1.is_none() {
        assert!(stream.len() - offset < HEADER_LEN + MAX_PAYLOAD, "a whole frame was left unread");
    }
});

/// Pushes each read and drains the frames after it; the frames and the
/// error, if one ended the stream.
fn deframe(reads: &[&[u8]], headroom: usize) -> (Vec<Frame>, Option<CstpError>) {
    let mut d = Deframer::new();
    let mut frames = Vec::new();
    for read in reads {
        d.push(read);
        assert!(d.buffered() <= HEADER_LEN + MAX_PAYLOAD + read.len());
        loop {
            match d.next_frame_with_headroom(headroom) {
                None => break,
                Some(Ok(f)) => frames.push(f),
                Some(Err(e)) => {
                    assert_eq!(d.next_frame(), Some(Err(e)), "errors are sticky");
                    return (frames, Some(e));
                }
            }
        }
    }
    (frames, None)
}
