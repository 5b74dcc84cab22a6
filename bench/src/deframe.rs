//! The CSTP (TLS channel) framing: a byte stream back into frames, as
//! control deframes it: each payload copied once, behind the room the shard
//! needs to write it to the TUN without copying it again.

use std::hint::black_box;

use proto::cstp::{write_frame, Deframer, PacketType};

use crate::measured;

const FRAMES: usize = 1000;
/// One TLS record's worth of plaintext per read, as control sees it.
const READ: usize = 16 * 1024;
/// Frame payload sizes cycle through these: full-size, ACK, mid, DPD-sized.
const SIZES: [usize; 4] = [1400, 40, 576, 1];

pub(crate) fn cstp_1000() -> u64 {
    let mut stream = Vec::new();
    for i in 0..FRAMES {
        let size = SIZES.get(i % SIZES.len()).copied().unwrap_or(1);
        write_frame(&mut stream, PacketType::DATA, &vec![0x42; size]).expect("sizes are below MAX_PAYLOAD");
    }
    let mut deframer = Deframer::new();
    let (frames, bytes) = measured(|| {
        let (mut frames, mut bytes) = (0u64, 0u64);
        for read in stream.chunks(READ) {
            deframer.push(black_box(read));
            while let Some(Ok(frame)) = deframer.next_frame_with_headroom(dataplane::TUN_WRITE_HEADROOM) {
                frames += 1;
                bytes += (black_box(frame.payload).len() - dataplane::TUN_WRITE_HEADROOM) as u64;
            }
        }
        (frames, bytes)
    });
    let expected: usize = (0..FRAMES).map(|i| SIZES.get(i % SIZES.len()).copied().unwrap_or(1)).sum();
    assert_eq!((frames, bytes), (FRAMES as u64, expected as u64), "every frame comes back whole");
    frames
}
