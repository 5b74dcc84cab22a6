//! What the keeper reads from the network-facing worker, which an attacker
//! may own: `control::keeper::wire::Request::decode` over arbitrary bytes
//! (up to one packet past the limit), and the keeper's test of what it
//! agrees to sign (`is_tls_signature_input`). A decoded request encodes
//! back to the same bytes; a signature input is one of the two TLS shapes.
#![no_main]

use control::keeper::serve::is_tls_signature_input;
use control::keeper::wire::{Hello, Reply, Request, MAX_MESSAGE};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let packet = &data[..data.len().min(MAX_MESSAGE + 1)];
    if let Ok(request) = Request::decode(packet) {
        assert!(packet.len() <= MAX_MESSAGE);
        assert_eq!(&request.encode()[..], packet, "one spelling per request");
        if let Request::Sign { message, .. } = &request {
            if is_tls_signature_input(message) {
                let tls13 = message.len() == 130 || message.len() == 146;
                assert!(tls13 || message.get(64) == Some(&3), "{} bytes", message.len());
            }
        }
    }
    // The worker's side of the socket reads these two.
    if let Ok(reply) = Reply::decode(packet) {
        assert_eq!(Reply::decode(&reply.encode()), Ok(reply));
    }
    if let Ok(hello) = Hello::decode(packet) {
        assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
    }
});
