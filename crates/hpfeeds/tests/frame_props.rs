//! Property tests: encode→decode round trips, and arbitrary bytes never panic.

use bytes::{Bytes, BytesMut};
use hpfeeds::frame::{self, Frame};
use hpfeeds::HpfeedsCodec;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn short() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..=255).prop_map(Bytes::from)
}

fn rest() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..2048).prop_map(Bytes::from)
}

fn any_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        rest().prop_map(Frame::Error),
        (short(), rest()).prop_map(|(name, nonce)| Frame::Info { name, nonce }),
        (short(), rest()).prop_map(|(ident, hash)| Frame::Auth { ident, hash }),
        (short(), short(), rest()).prop_map(|(ident, channel, payload)| Frame::Publish {
            ident,
            channel,
            payload
        }),
        (short(), rest()).prop_map(|(ident, channel)| Frame::Subscribe { ident, channel }),
        (short(), rest()).prop_map(|(ident, channel)| Frame::Unsubscribe { ident, channel }),
    ]
}

/// Decodes everything in `bytes`, fed in `chunk`-sized pieces, until an error.
fn decode_all(bytes: &[u8], chunk: usize, max: usize) -> Result<Vec<Frame>, String> {
    let mut codec = HpfeedsCodec::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(f) = codec.decode(&mut buf).map_err(|e| e.to_string())? {
            out.push(f);
        }
    }
    Ok(out)
}

proptest! {
    #[test]
    fn round_trip(frames in prop::collection::vec(any_frame(), 1..8), chunk in 1usize..300) {
        let mut wire = BytesMut::new();
        for f in &frames {
            let before = wire.len();
            f.encode(&mut wire).expect("encodable");
            prop_assert_eq!(wire.len() - before, f.encoded_len().expect("len"));
            let one = f.to_bytes().expect("encodable");
            prop_assert_eq!(frame::check(&one, one.len()), Ok(one.len()));
            prop_assert_eq!(&frame::parse(one).expect("parses"), f);
        }
        let decoded = decode_all(&wire, chunk, 1 << 20).expect("valid stream");
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096),
                                   chunk in 1usize..64, max in 0usize..8192) {
        let _ = decode_all(&bytes, chunk, max);
        let _ = frame::check(&bytes, max);
        let _ = frame::parse(Bytes::from(bytes));
    }

    /// Bytes behind a plausible header reach `parse` far more often than random ones.
    #[test]
    fn plausible_headers_never_panic(op in 0u8..6, body in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = ((body.len() + 5) as u32).to_be_bytes().to_vec();
        bytes.push(op);
        bytes.extend_from_slice(&body);
        match decode_all(&bytes, bytes.len(), 1 << 20) {
            Ok(frames) => {
                prop_assert_eq!(frames.len(), 1);
                // Whatever parsed re-encodes to the same bytes.
                let again = frames[0].to_bytes().expect("re-encode");
                prop_assert_eq!(again.as_ref(), &bytes[..]);
            }
            Err(e) => prop_assert!(e.starts_with("invalid frame"), "{}", e),
        }
    }
}
