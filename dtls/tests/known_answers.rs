//! Known-answer tests: the TLS 1.2 PRF vectors and two DTLS 1.2 PSK captures
//! between independent stacks (shared/reference/dtls-interop.md §10 and
//! appendix B), checked end to end: premaster → master (with and without the
//! session hash) → key block → both Finished → record open and seal.

#![allow(clippy::indexing_slicing)]

use dtls::codec::Reader;
use dtls::handshake::msg::{transcript_bytes, Fragment};
use dtls::keys::{self, FinishedLabel, MasterSeed};
use dtls::record::Records;
use dtls::replay::ReplayWindow;
use dtls::suite::{PrfHash, SuiteParams};
use dtls::{CipherSuite, ContentType, HandshakeType, RecordProtection, Role, SessionKeys};

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0);
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

#[test]
fn prf_p_sha256_vector() {
    let out = keys::prf(
        PrfHash::Sha256,
        &unhex("9bbe436ba940f017b17652849a71db35"),
        b"test label",
        &unhex("a0ba9f936cda311827a6f796ffd5198c"),
        100,
    )
    .expect("prf");
    assert_eq!(*out, unhex("e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66"));
}

#[test]
fn prf_p_sha384_vector() {
    let out = keys::prf(
        PrfHash::Sha384,
        &unhex("b80b733d6ceefcdc71566ea48e5567df"),
        b"test label",
        &unhex("cd665cf6a8447dd6ff8b27555edb7465"),
        148,
    )
    .expect("prf");
    assert_eq!(*out, unhex("7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d9184259b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee691c8f3a26854308d5eaa3be85e0990703d73e56f"));
}

/// A captured handshake: datagrams per direction, as in the reference's appendix B.
struct Capture {
    c2s: Vec<Vec<u8>>,
    s2c: Vec<Vec<u8>>,
}

/// One epoch-0 handshake message from a capture, with who sent it.
struct HsMsg {
    from_client: bool,
    msg_type: HandshakeType,
    seq: u16,
    body: Vec<u8>,
}

impl Capture {
    fn parse(text: &str) -> Self {
        let mut c = Capture { c2s: Vec::new(), s2c: Vec::new() };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let mut it = line.split_whitespace();
            let dir = it.next().expect("dir");
            let _n = it.next();
            let d = unhex(it.next().expect("hex"));
            if dir == "c2s" {
                c.c2s.push(d)
            } else {
                c.s2c.push(d)
            }
        }
        c
    }

    /// Epoch-0 handshake messages in wire order (c2s and s2c interleaved the
    /// way the handshake runs: CH1, HVR, CH2, server flight, CKE).
    fn epoch0_messages(&self) -> Vec<HsMsg> {
        let order: [(bool, usize); 4] = [(true, 0), (false, 0), (true, 1), (false, 1)];
        let mut out = Vec::new();
        for &(client, i) in order.iter().chain([(true, 2)].iter()) {
            let d = if client { &self.c2s[i] } else { &self.s2c[i] };
            for rec in Records::new(d) {
                if rec.epoch() != 0 || rec.content_type() != ContentType::HANDSHAKE {
                    continue;
                }
                let mut r = Reader::new(rec.fragment());
                while !r.is_empty() {
                    let f = Fragment::read(&mut r).expect("fragment");
                    assert!(f.is_complete(), "captures are unfragmented");
                    out.push(HsMsg {
                        from_client: client,
                        msg_type: f.msg_type,
                        seq: f.message_seq,
                        body: f.body.to_vec(),
                    });
                }
            }
        }
        out
    }

    /// The transcript from the ClientHello that got the ServerHello through
    /// ClientKeyExchange: no first ClientHello, no HelloVerifyRequest (RFC 6347 §4.2.6).
    fn transcript_through_cke(&self) -> (Vec<u8>, [u8; 32], [u8; 32]) {
        let msgs = self.epoch0_messages();
        let ch2 = msgs.iter().rposition(|m| m.from_client && m.msg_type == HandshakeType::CLIENT_HELLO).expect("CH2");
        let mut t = Vec::new();
        let (mut cr, mut sr) = ([0u8; 32], [0u8; 32]);
        for m in &msgs[ch2..] {
            if m.msg_type == HandshakeType::HELLO_VERIFY_REQUEST {
                continue;
            }
            if m.msg_type == HandshakeType::CLIENT_HELLO {
                cr.copy_from_slice(&m.body[2..34]);
            }
            if m.msg_type == HandshakeType::SERVER_HELLO {
                sr.copy_from_slice(&m.body[2..34]);
            }
            transcript_bytes(&mut t, m.msg_type, m.seq, &m.body);
            if m.msg_type == HandshakeType::CLIENT_KEY_EXCHANGE {
                break;
            }
        }
        (t, cr, sr)
    }
}

fn psk() -> Vec<u8> {
    unhex("000102030405060708090a0b0c0d0e0f")
}

fn protection(suite: CipherSuite, role: Role, kb: &keys::KeyBlock, next_send_seq: u64) -> RecordProtection {
    let (write, read) = match role {
        Role::Client => (kb.client_write.clone(), kb.server_write.clone()),
        Role::Server => (kb.server_write.clone(), kb.client_write.clone()),
    };
    RecordProtection::new(SessionKeys {
        suite,
        role,
        epoch: 1,
        write,
        read,
        next_send_seq,
        replay: ReplayWindow::new(64),
    })
    .expect("keys")
}

/// Opens the first epoch-1 record of a datagram and returns (type, plaintext).
fn open_first_epoch1(p: &mut RecordProtection, d: &[u8]) -> (ContentType, Vec<u8>) {
    let at = {
        let mut at = 0;
        for rec in Records::new(d) {
            if rec.epoch() == 1 {
                break;
            }
            at += rec.total_len();
        }
        at
    };
    let mut buf = d[at..].to_vec();
    let o = p.open_in_place(&mut buf).expect("opens");
    (o.content_type, o.payload().to_vec())
}

const KAT1: &str = "
c2s 1 16feff00000000000000000074010000680000000000000068fefde0eb26c49e49194df986f24fac7ad8522aac2845ffcfe2b42b0bac4fdded27060000000400a800ff0100003a002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602
s2c 1 16feff00000000000000000023030000170000000000000017feff14a7207d82bf607559d35bc2b31facfe2d9965551f
c2s 2 16feff000000000000000100880100007c000100000000007cfefde0eb26c49e49194df986f24fac7ad8522aac2845ffcfe2b42b0bac4fdded27060014a7207d82bf607559d35bc2b31facfe2d9965551f000400a800ff0100003a002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602
s2c 2 16fefd00000000000000010041020000350001000000000035fefd5210f30988f9e190ecc5bc3c04391f0417eba275953c98d5c6fc1b042397258e0000a800000dff01000100002300000017000016fefd0000000000000002000c0e0000000002000000000000
c2s 3 16fefd000000000000000200151000000900020000000000090007636c69656e743114fefd000000000000000300010116fefd0001000000000000003002c1bcb4011282828cc8c91faad826af5be14edf9cd416bd68d620f02af0798806000d2c9ea9438b58ddbb2c64fe3004
s2c 3 16fefd000000000000000300c2040000b600030000000000b600001c2000b05ce788539dd2ba9e3313b6ba81a2934cb0eae08268c930583f1a4ee6d45c53c4c0aa82301ebbb12eedc456bad630df21742979177572ad22578f2d40dc1a60f40a8514e12551abdeb28fcd0877067c99cde47a2d77b1abf1fb127419c33a3db0a63a0e3bf01da2b0538da1735b748eb9bdb81de7935569dc1d13c65a106f707f903a890ab4a5b3d1cc83eafc92f2a5e6fafc5bd82da1125a8f5e5ec735f96721ed97083a883363500810b0ad4ce4656f
s2c 4 14fefd000000000000000400010116fefd00010000000000000030a9df8049641692419be8050879a07caec04a08e9c055044c8ca679b70c119ea2a948f012ca9a7978646ccc21b41c9355
s2c 5 17fefd00010000000000010022a9df80496416924267799d9190e19a09e7a4130f80deb51ecaeeeeea7439e7624503
c2s 4 17fefd0001000000000001002202c1bcb401128283052e93fe7dc98dbf4c8525199ad82b3beaaa627e7ef534f45979
c2s 5 15fefd0001000000000002001a02c1bcb401128284efaf031a31dafdc0a3e32bb4a9fd6d48aacc
";

/// OpenSSL ↔ OpenSSL, PSK-AES128-GCM-SHA256 with extended master secret.
/// OpenSSL's explicit nonces are a random-start counter, not epoch ‖ seq.
#[test]
fn kat1_openssl_psk_aes128_gcm_with_ems() {
    let cap = Capture::parse(KAT1);
    let (transcript, cr, sr) = cap.transcript_through_cke();
    assert_eq!(hex(&cr), "e0eb26c49e49194df986f24fac7ad8522aac2845ffcfe2b42b0bac4fdded2706");
    assert_eq!(hex(&sr), "5210f30988f9e190ecc5bc3c04391f0417eba275953c98d5c6fc1b042397258e");
    let params = SuiteParams::of(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256).expect("suite");
    let session_hash = keys::transcript_hash(params.prf, &transcript);
    assert_eq!(hex(session_hash.as_ref()), "5534f1d5d377183411a598d669d2ffc85b617b83f5a4cde9829f4615e8e7a9b3");

    let pms = keys::psk_premaster(&psk());
    let master = keys::master_secret(params.prf, &pms, MasterSeed::SessionHash(session_hash.as_ref())).expect("ms");
    assert_eq!(
        hex(&*master),
        "8a1b2f0218e853b1092a5e3deb06082ba0e150ade1e8b6ff3a74e9345c9d0c2f1e5c28016b1c094dce6b5b4a51794fc5"
    );
    let kb = keys::key_block(&params, &*master, &cr, &sr).expect("kb");
    assert_eq!(hex(kb.client_write.key()), "f6c3a8d38e974b0a4d4b904aad21fa87");
    assert_eq!(hex(kb.server_write.key()), "5a854c7a3d81c65d2666267b4c8b9b5d");
    assert_eq!(hex(kb.client_write.iv()), "c94fd772");
    assert_eq!(hex(kb.server_write.iv()), "05ffac7f");

    // The server opens the client's Finished and data; the client the server's.
    let mut server = protection(params.suite, Role::Server, &kb, 0);
    let (t, cfin) = open_first_epoch1(&mut server, &cap.c2s[2]);
    assert_eq!((t, hex(&cfin)), (ContentType::HANDSHAKE, "1400000c000300000000000c346c93787debe5fda4ef99a0".into()));
    let client_verify =
        keys::verify_data(params.prf, &*master, FinishedLabel::Client, session_hash.as_ref()).expect("vd");
    assert_eq!(client_verify[..], cfin[12..]);
    let (t, data) = open_first_epoch1(&mut server, &cap.c2s[3]);
    assert_eq!((t, data.as_slice()), (ContentType::APPLICATION_DATA, &b"cli-hello\n"[..]));
    let (t, alert) = open_first_epoch1(&mut server, &cap.c2s[4]);
    assert_eq!((t, alert.as_slice()), (ContentType::ALERT, &[1u8, 0][..]), "close_notify");

    // The server's Finished covers the client Finished and the NewSessionTicket.
    let mut t2 = transcript.clone();
    transcript_bytes(&mut t2, HandshakeType::FINISHED, 3, &cfin[12..]);
    let nst = Records::new(&cap.s2c[2]).next().expect("nst record");
    t2.extend_from_slice(nst.fragment());
    let server_verify =
        keys::verify_data(params.prf, &*master, FinishedLabel::Server, keys::transcript_hash(params.prf, &t2).as_ref())
            .expect("vd");
    let mut client = protection(params.suite, Role::Client, &kb, 0);
    let (_, sfin) = open_first_epoch1(&mut client, &cap.s2c[3]);
    assert_eq!(hex(&sfin), "1400000c000400000000000c6a161c328c328062dd4dd6df");
    assert_eq!(server_verify[..], sfin[12..]);
    let (_, data) = open_first_epoch1(&mut client, &cap.s2c[4]);
    assert_eq!(data, b"srv-hello\n");
}

const KAT2: &str = "
c2s 1 16feff0000000000000000009b0100008f000000000000008ffefd817fdc4dae76296eab2f4fda03a974a2746a5178d2c1cc9babbbb58cbff84c41200123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00001000a9ccabc0a5008d00a8c0a4008c00ae01000035000d00220020040108090804040308070501080a0805050308080601080b080606030201020300230000ff01000100001c00024000
s2c 1 16feff00000000000000000023030000170000000000000017feff147ca65f818f954aba306801e723521922dd04bbb5
c2s 2 16feff000000000000000100af010000a300010000000000a3fefd817fdc4dae76296eab2f4fda03a974a2746a5178d2c1cc9babbbb58cbff84c41200123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef147ca65f818f954aba306801e723521922dd04bbb5001000a9ccabc0a5008d00a8c0a4008c00ae01000035000d00220020040108090804040308070501080a0805050308080601080b080606030201020300230000ff01000100001c00024000
s2c 2 16fefd0000000000000001003d020000310001000000000031fefd50b731013a88cb9e9e8bbfef35295f55d1b9f99d65b6054484d311eb7a1130dd0000a9000009ff010001000023000016fefd0000000000000002000c0e0000000002000000000000
c2s 3 16fefd00000000000000020011100000050002000000000005000370736b14fefd000000000000000300010116fefd000100000000000000300001000000000000154b17688da1e9b9e8c4131118ba127cc3fcf9ef13c2c83baa4358a027a03a7fb26882c77a2c128d
s2c 3 16fefd000000000000000300c2040000b600030000000000b600001c2000b0e964eb2ec42de7d288b73f62222b51b99e3dee2a9a47f0dce40d7ebaccb147469c75c48211cc9cde4e567a35050db9503b9960d20ee2c2120c3566a1087833c30da36d7adf32904edbb8100cea9c8b38e89aac2db62c8fec5a368a727aca08ccb1b8f15be0e00896124d0a20d918530dc37bbe0190801a0c5bc5b25fbd72f0598d0260be8696a518454262f5ee047e0b2467ae2d1f30c644207a6f83652c0fa69032fe25fd97b511252f56989002129e
s2c 4 14fefd000000000000000400010116fefd00010000000000000030536b9bd5db7c90ba8baad6faa394cbb4af6bd1a70a8d87e1069693a16a7695425f538b148aaca872f11fc18ab99b78c0
s2c 5 17fefd00010000000000010022536b9bd5db7c90bbebe3dab40c213928add3d171da6bf5570e22f5610a9317b578e0
c2s 4 17fefd00010000000000010022000100000000000158901ba7379af8ed69a65c6f873afae1c793d57895b83032e3ae
c2s 5 15fefd0001000000000002001a0001000000000002bbf446884775370ca19cfa062846bb07f4e9
";

/// openconnect's PSK-NEGOTIATE profile (GnuTLS) → OpenSSL: AES-256-GCM-SHA384,
/// no extended master secret. GnuTLS's explicit nonce is epoch ‖ seq — the
/// style we send — so our sealing must reproduce its records byte for byte.
#[test]
fn kat2_openconnect_profile_psk_aes256_gcm_without_ems() {
    let cap = Capture::parse(KAT2);
    let (transcript, cr, sr) = cap.transcript_through_cke();
    let params = SuiteParams::of(CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384).expect("suite");
    let pms = keys::psk_premaster(&psk());
    let master = keys::master_secret(params.prf, &pms, MasterSeed::Randoms { client: &cr, server: &sr }).expect("ms");
    assert_eq!(
        hex(&*master),
        "67c6946f2b2d1054625b8e2dd1b5aca9c689d5880ad8f25f278be3e7fe6f772fdc76a06efb1a7f9c8c32161ff0984f55"
    );
    let kb = keys::key_block(&params, &*master, &cr, &sr).expect("kb");
    assert_eq!(hex(kb.client_write.key()), "6a73edcb6cd2dec8ab60aecd096dd168ae76cf99a9159d7afd8edc3001354797");
    assert_eq!(hex(kb.server_write.key()), "0f0b29bc3cf55735695230e792168973ad0852dbda4bae643e3fb5b644e621be");
    assert_eq!(hex(kb.client_write.iv()), "5a505ef1");
    assert_eq!(hex(kb.server_write.iv()), "0263d55c");

    let hash = keys::transcript_hash(params.prf, &transcript);
    let cverify = keys::verify_data(params.prf, &*master, FinishedLabel::Client, hash.as_ref()).expect("vd");
    let cfin_plain = unhex("1400000c000300000000000c7124d973f444eacfc40a4ee7");
    assert_eq!(cverify[..], cfin_plain[12..]);

    // Seal the client's Finished (epoch 1, seq 0) and first data record
    // (seq 1) ourselves: identical to GnuTLS's bytes.
    let mut client = protection(params.suite, Role::Client, &kb, 0);
    let fin_record = seal(&mut client, ContentType::HANDSHAKE, &cfin_plain);
    let c2s3 = &cap.c2s[2];
    assert_eq!(hex(&fin_record), hex(&c2s3[c2s3.len() - fin_record.len()..]));
    let data_record = seal(&mut client, ContentType::APPLICATION_DATA, b"cli-hello\n");
    assert_eq!(hex(&data_record), hex(&cap.c2s[3]));
    let alert_record = seal(&mut client, ContentType::ALERT, &[1, 0]);
    assert_eq!(hex(&alert_record), hex(&cap.c2s[4]));

    // OpenSSL's server records (random-start explicit nonce) open, and its
    // Finished verifies over CH2…CKE ‖ client Finished ‖ NewSessionTicket.
    let mut t2 = transcript.clone();
    transcript_bytes(&mut t2, HandshakeType::FINISHED, 3, &cverify);
    t2.extend_from_slice(Records::new(&cap.s2c[2]).next().expect("nst").fragment());
    let sverify =
        keys::verify_data(params.prf, &*master, FinishedLabel::Server, keys::transcript_hash(params.prf, &t2).as_ref())
            .expect("vd");
    let (_, sfin) = open_first_epoch1(&mut client, &cap.s2c[3]);
    assert_eq!(sfin[12..], sverify[..]);
    let (_, data) = open_first_epoch1(&mut client, &cap.s2c[4]);
    assert_eq!(data, b"srv-hello\n");
    // …and the server side opens what GnuTLS sealed.
    let mut server = protection(params.suite, Role::Server, &kb, 0);
    assert_eq!(open_first_epoch1(&mut server, &cap.c2s[3]).1, b"cli-hello\n");
}

fn seal(p: &mut RecordProtection, t: ContentType, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; p.headroom() + payload.len() + p.tailroom()];
    buf[p.headroom()..p.headroom() + payload.len()].copy_from_slice(payload);
    let n = p.seal_in_place(t, &mut buf, payload.len()).expect("seal");
    buf.truncate(n);
    buf
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn chacha20_poly1305_records_round_trip_with_implicit_nonce() {
    let kb = keys::KeyBlock {
        client_write: keys::DirectionKeys::new(&[1; 32], &[2; 12]).expect("k"),
        server_write: keys::DirectionKeys::new(&[3; 32], &[4; 12]).expect("k"),
    };
    let suite = CipherSuite::TLS_PSK_WITH_CHACHA20_POLY1305_SHA256;
    let mut client = protection(suite, Role::Client, &kb, 5);
    let mut server = protection(suite, Role::Server, &kb, 0);
    assert_eq!(client.headroom(), 13, "RFC 7905: no explicit nonce");
    let rec = seal(&mut client, ContentType::APPLICATION_DATA, b"hello");
    assert_eq!(rec.len(), 13 + 5 + 16);
    let mut buf = rec.clone();
    let o = server.open_in_place(&mut buf).expect("open");
    assert_eq!(o.payload(), b"hello");
    assert_eq!(o.epoch_seq, (1 << 48) | 5);
    let mut again = rec;
    assert_eq!(server.open_in_place(&mut again).err(), Some(dtls::OpenError::Replayed));
}
