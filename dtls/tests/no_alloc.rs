//! The record layer seals and opens on the caller's buffers without
//! allocating: a counting global allocator watches a batch of records.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use dtls::keys::DirectionKeys;
use dtls::replay::ReplayWindow;
use dtls::{CipherSuite, ContentType, RecordProtection, Role, SessionKeys};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn keys(suite: CipherSuite, role: Role, key_len: usize, iv_len: usize) -> SessionKeys {
    let a = DirectionKeys::new(&vec![1; key_len], &vec![2; iv_len]).expect("k");
    let b = DirectionKeys::new(&vec![3; key_len], &vec![4; iv_len]).expect("k");
    let (write, read) = if role == Role::Client { (a, b) } else { (b, a) };
    SessionKeys { suite, role, epoch: 1, write, read, next_send_seq: 0, replay: ReplayWindow::new(1024) }
}

#[test]
fn sealing_and_opening_a_batch_allocates_nothing() {
    for (suite, key_len, iv_len) in [
        (CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256, 16, 4),
        (CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384, 32, 4),
        (CipherSuite::TLS_PSK_WITH_CHACHA20_POLY1305_SHA256, 32, 12),
    ] {
        let mut tx: RecordProtection = RecordProtection::new(keys(suite, Role::Client, key_len, iv_len)).expect("tx");
        let mut rx: RecordProtection = RecordProtection::new(keys(suite, Role::Server, key_len, iv_len)).expect("rx");
        let mut bufs: Vec<Vec<u8>> = (0..64).map(|_| vec![0x5a; 1500]).collect();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for buf in bufs.iter_mut() {
            let n = tx.seal_in_place(ContentType::APPLICATION_DATA, buf, 1400).expect("seal");
            let opened = rx.open_in_place(buf.get_mut(..n).expect("len")).expect("open");
            assert_eq!(opened.payload().len(), 1400);
        }
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        assert_eq!(after - before, 0, "{suite:?}: the record layer allocated");
    }
}
