//! Golden bytes from the protocol (captured from real brokers), partial frames and
//! hostile input through `frame` and the codec.

use bytes::{Bytes, BytesMut};
use hpfeeds::codec::CodecError;
use hpfeeds::frame::{self, Frame};
use hpfeeds::{auth_hash, HpfeedsCodec};
use tokio_util::codec::{Decoder, Encoder};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("test hex")
}

/// Decodes exactly one frame occupying all of `bytes`.
fn decode_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let f = HpfeedsCodec::default()
        .decode(&mut buf)
        .expect("valid frame")
        .expect("complete frame");
    assert!(buf.is_empty(), "frame left {} bytes", buf.len());
    f
}

/// `to_bytes` must reproduce the capture, and decoding must give back the frame.
fn golden(bytes: &[u8], frame: Frame) {
    assert_eq!(frame.to_bytes().expect("encodable").as_ref(), bytes);
    assert_eq!(decode_one(bytes), frame);
    assert_eq!(frame::check(bytes, 1 << 20), Ok(bytes.len()));
}

/// hpfeeds 3.1.0 `--name mybroker`, captured (reference §1.3).
const INFO: &str = "00 00 00 12 01 08 6d 79 62 72 6f 6b 65 72 8d b2 69 42";

#[test]
fn info_capture() {
    golden(
        &h(INFO),
        Frame::Info {
            name: Bytes::from_static(b"mybroker"),
            nonce: Bytes::from_static(&[0x8d, 0xb2, 0x69, 0x42]),
        },
    );
}

#[test]
fn publish_capture() {
    let mut bytes = h("00 00 00 21 03 04");
    bytes.extend_from_slice(b"pub1\x04test{\"hello\": \"world\"}");
    assert_eq!(bytes.len(), 33);
    golden(
        &bytes,
        Frame::publish("pub1", "test", &b"{\"hello\": \"world\"}"[..]),
    );
}

#[test]
fn error_capture() {
    let mut bytes = h("00 00 00 23 00");
    bytes.extend_from_slice(b"Authentication failed for pub1");
    golden(&bytes, Frame::error("Authentication failed for pub1"));
}

#[test]
fn auth_hash_matches_python_hashlib() {
    // hashlib.sha1(bytes.fromhex('8db26942') + b'pubsecret').hexdigest()
    let expected = h("72eaeba7ee80dbc2470f74dd5759e68457614dce");
    assert_eq!(auth_hash(&h("8db26942"), b"pubsecret").as_slice(), expected);

    let mut bytes = h("00 00 00 1e 02 04");
    bytes.extend_from_slice(b"pub1");
    bytes.extend_from_slice(&expected);
    golden(
        &bytes,
        Frame::Auth {
            ident: Bytes::from_static(b"pub1"),
            hash: Bytes::from(expected.clone()),
        },
    );
}

#[test]
fn subscribe_and_unsubscribe() {
    let mut sub = h("00 00 00 0e 04 04");
    sub.extend_from_slice(b"sub1test");
    golden(
        &sub,
        Frame::Subscribe {
            ident: Bytes::from_static(b"sub1"),
            channel: Bytes::from_static(b"test"),
        },
    );
    let mut unsub = sub.clone();
    unsub[4] = 5;
    golden(
        &unsub,
        Frame::Unsubscribe {
            ident: Bytes::from_static(b"sub1"),
            channel: Bytes::from_static(b"test"),
        },
    );
}

#[test]
fn malformed_error_of_rust_broker_1_2_0_desynchronises_only_harmlessly() {
    // Header says 26 bytes, but a stray length byte and one more text byte follow.
    let mut bytes = h("00 00 00 1a 00 15");
    bytes.extend_from_slice(b"Authentication failed");
    let mut buf = BytesMut::from(&bytes[..]);
    let mut codec = HpfeedsCodec::default();
    let first = codec.decode(&mut buf).expect("ok").expect("frame");
    assert_eq!(
        first,
        Frame::Error(Bytes::from_static(b"\x15Authentication faile"))
    );
    // The leftover "d" is an incomplete header, not a crash.
    assert_eq!(codec.decode(&mut buf).expect("ok"), None);
    assert_eq!(&buf[..], b"d");
}

#[test]
fn frames_fed_byte_by_byte() {
    let mut stream = h(INFO);
    stream.extend_from_slice(&Frame::publish("pub1", "test", "x").to_bytes().expect("enc"));
    stream.extend_from_slice(&Frame::error("bye").to_bytes().expect("enc"));
    let mut codec = HpfeedsCodec::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in stream {
        buf.extend_from_slice(&[b]);
        if let Some(f) = codec.decode(&mut buf).expect("valid prefix") {
            got.push(f);
        }
        assert!(buf.capacity() < 64 * 1024, "capacity {}", buf.capacity());
    }
    assert_eq!(got.len(), 3);
    assert_eq!(got[1], Frame::publish("pub1", "test", "x"));
    assert_eq!(got[2], Frame::error("bye"));
    assert!(buf.is_empty());
    // The final EOF with nothing buffered is clean.
    assert_eq!(codec.decode_eof(&mut buf).expect("clean eof"), None);
}

#[test]
fn several_frames_in_one_read() {
    let mut buf = BytesMut::new();
    let mut codec = HpfeedsCodec::default();
    for i in 0..10u8 {
        codec
            .encode(Frame::publish("p", "c", vec![i; i as usize]), &mut buf)
            .expect("encode");
    }
    for i in 0..10u8 {
        let f = codec.decode(&mut buf).expect("ok").expect("frame");
        assert_eq!(f, Frame::publish("p", "c", vec![i; i as usize]));
    }
    assert_eq!(codec.decode(&mut buf).expect("ok"), None);
}

/// Feeds `bytes` to a fresh codec and returns the error plus the buffer's capacity.
fn decode_err(bytes: &[u8], max: usize) -> (frame::Error, usize) {
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(bytes);
    match HpfeedsCodec::new(max).decode(&mut buf) {
        Err(CodecError::Frame(e)) => (e, buf.capacity()),
        other => panic!("expected a frame error for {bytes:02x?}, got {other:?}"),
    }
}

#[test]
fn hostile_lengths_are_refused_before_allocating() {
    const MAX: usize = 1024 * 1024;
    for len in [0u32, 3, 4] {
        // Refused from the 4 length bytes alone, and with the opcode too.
        for bytes in [
            len.to_be_bytes().to_vec(),
            [&len.to_be_bytes()[..], &[3]].concat(),
        ] {
            let (e, cap) = decode_err(&bytes, MAX);
            assert_eq!(e, frame::Error::Invalid("length field below 5"));
            assert!(cap <= 64, "capacity {cap}");
        }
    }
    for len in [u32::MAX, MAX as u32 + 1] {
        for bytes in [
            len.to_be_bytes().to_vec(),
            [&len.to_be_bytes()[..], &[3, 4]].concat(),
        ] {
            let (e, cap) = decode_err(&bytes, MAX);
            assert_eq!(
                e,
                frame::Error::TooLarge {
                    len: u64::from(len),
                    max: MAX
                }
            );
            assert!(cap <= 64, "capacity {cap}");
        }
    }
    // Exactly the maximum is fine: incomplete, and the reservation is bounded by it.
    let mut buf = BytesMut::from(&(MAX as u32).to_be_bytes()[..]);
    assert_eq!(HpfeedsCodec::new(MAX).decode(&mut buf).expect("ok"), None);
    assert!(buf.capacity() <= MAX + 64, "capacity {}", buf.capacity());
    // `check` agrees without a codec.
    assert_eq!(
        frame::check(&u32::MAX.to_be_bytes(), MAX),
        Err(frame::Error::TooLarge {
            len: u64::from(u32::MAX),
            max: MAX
        })
    );
    assert_eq!(frame::check(&[0, 0, 0], MAX), Err(frame::Error::Incomplete));
    assert_eq!(
        frame::check(&[0, 0, 0, 9], MAX),
        Err(frame::Error::Incomplete)
    );
}

#[test]
fn http_and_tls_greetings_are_too_large() {
    let (e, _) = decode_err(b"GET / HTTP/1.1\r\n", 10 << 20);
    assert!(matches!(e, frame::Error::TooLarge { .. }), "{e:?}");
    let (e, _) = decode_err(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01], 10 << 20);
    assert!(matches!(e, frame::Error::TooLarge { .. }), "{e:?}");
}

#[test]
fn unknown_opcodes() {
    for op in [6u8, 9, 0x80, 0xff] {
        let (e, _) = decode_err(&[0, 0, 0, 5, op], 1024);
        assert_eq!(e, frame::Error::Invalid("unknown opcode"));
    }
}

#[test]
fn strings_running_past_the_end() {
    // INFO whose name claims 200 bytes in a 10-byte body.
    let mut info = h("00 00 00 0f 01 c8");
    info.extend_from_slice(b"abcdefghi");
    assert_eq!(
        decode_err(&info, 1024).0,
        frame::Error::Invalid("string runs past end of frame")
    );
    // PUBLISH with a fine ident and a channel length past the end.
    let mut publ = h("00 00 00 0c 03 02");
    publ.extend_from_slice(b"id\x09abcd");
    assert_eq!(
        decode_err(&publ, 1024).0,
        frame::Error::Invalid("string runs past end of frame")
    );
    // PUBLISH missing the channel length byte entirely.
    let mut publ = h("00 00 00 08 03 02");
    publ.extend_from_slice(b"id");
    assert_eq!(
        decode_err(&publ, 1024).0,
        frame::Error::Invalid("missing string length")
    );
    // AUTH with an empty body.
    assert_eq!(
        decode_err(&h("00 00 00 05 02"), 1024).0,
        frame::Error::Invalid("missing string length")
    );
    // SUBSCRIBE whose ident takes the whole body: empty channel, still valid.
    let f = decode_one(&[0, 0, 0, 8, 4, 2, b'i', b'd']);
    assert_eq!(
        f,
        Frame::Subscribe {
            ident: Bytes::from_static(b"id"),
            channel: Bytes::new()
        }
    );
}

#[test]
fn string_fields_255_bytes_ok_256_refused() {
    let ok = Bytes::from(vec![b'a'; 255]);
    let long = Bytes::from(vec![b'a'; 256]);
    let f = Frame::publish(ok.clone(), ok.clone(), "p");
    let bytes = f.to_bytes().expect("255 is fine");
    assert_eq!(bytes.len(), 5 + 256 + 256 + 1);
    assert_eq!(decode_one(&bytes), f);

    let too_long = [
        Frame::publish(long.clone(), "c", "p"),
        Frame::publish("i", long.clone(), "p"),
        Frame::Auth {
            ident: long.clone(),
            hash: Bytes::new(),
        },
        Frame::Info {
            name: long.clone(),
            nonce: Bytes::new(),
        },
        Frame::Subscribe {
            ident: long.clone(),
            channel: Bytes::new(),
        },
    ];
    for f in too_long {
        let mut dst = BytesMut::new();
        assert_eq!(
            f.encode(&mut dst),
            Err(frame::Error::Invalid("string longer than 255 bytes"))
        );
        assert!(dst.is_empty(), "nothing written on failure");
    }
    // Only length-prefixed fields are limited: a long SUBSCRIBE channel is fine.
    let f = Frame::Subscribe {
        ident: Bytes::from_static(b"i"),
        channel: long,
    };
    assert_eq!(decode_one(&f.to_bytes().expect("rest of frame")), f);
}
