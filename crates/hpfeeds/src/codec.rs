//! A `tokio_util` codec for hpfeeds frames with a maximum frame length.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{self, Frame};

/// Errors surfaced by the codec: a protocol violation or an IO failure.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer sent bytes that can never be a valid frame.
    #[error(transparent)]
    Frame(#[from] frame::Error),
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Frames hpfeeds messages on a byte stream.
#[derive(Debug, Clone)]
pub struct HpfeedsCodec {
    max_len: usize,
}

impl HpfeedsCodec {
    /// A codec refusing frames longer than `max_len` bytes (header included).
    pub fn new(max_len: usize) -> Self {
        Self { max_len }
    }

    /// The configured maximum frame length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Default for HpfeedsCodec {
    fn default() -> Self {
        Self::new(frame::DEFAULT_MAX_FRAME)
    }
}

impl Decoder for HpfeedsCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match frame::check(src, self.max_len) {
            Ok(len) => {
                let bytes = src.split_to(len).freeze();
                Ok(Some(frame::parse(bytes)?))
            }
            Err(frame::Error::Incomplete) => {
                // Reserve for the rest of the frame only once its (already validated)
                // length is known, so the read loop fills it in few syscalls.
                if let Some(&claimed) = src.first_chunk::<4>() {
                    let claimed = u32::from_be_bytes(claimed) as usize;
                    src.reserve(claimed.saturating_sub(src.len()).min(1 << 20));
                }
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Encoder<Frame> for HpfeedsCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst)?;
        Ok(())
    }
}

impl Encoder<&Frame> for HpfeedsCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst)?;
        Ok(())
    }
}
