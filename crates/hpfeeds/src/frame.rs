//! hpfeeds frames on byte buffers.
//!
//! Layout: `u32 BE total length (including the 5-byte header) | u8 opcode | body`.
//! Inside bodies, strings are `u8 length + bytes`; the last field runs to the end of
//! the frame. [`check`] validates a buffered prefix without allocating, so a hostile
//! length claim is refused before any memory is reserved for it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// Size of the fixed header: 4 length bytes and 1 opcode byte.
pub const HEADER_LEN: usize = 5;

/// Default maximum frame length (10 MiB, the limit of the broker MHN deployed).
pub const DEFAULT_MAX_FRAME: usize = 10 * 1024 * 1024;

/// Message types of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// Broker → client error text.
    Error = 0,
    /// Broker → client greeting with name and nonce.
    Info = 1,
    /// Client → broker authentication.
    Auth = 2,
    /// Publication, in both directions.
    Publish = 3,
    /// Client → broker subscription.
    Subscribe = 4,
    /// Client → broker unsubscription.
    Unsubscribe = 5,
}

impl Opcode {
    /// Maps a wire byte to an opcode.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Error,
            1 => Self::Info,
            2 => Self::Auth,
            3 => Self::Publish,
            4 => Self::Subscribe,
            5 => Self::Unsubscribe,
            _ => return None,
        })
    }
}

/// One decoded hpfeeds message.
///
/// Identifiers and channel names are kept as raw bytes: brokers compare them exactly, and
/// attacker-supplied invalid UTF-8 must be refused by policy, not by a panic here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `OP_ERROR`: free text, no length prefix.
    Error(Bytes),
    /// `OP_INFO`: broker name and nonce.
    Info {
        /// Broker name (at most 255 bytes).
        name: Bytes,
        /// Authentication nonce (4 bytes in every known broker).
        nonce: Bytes,
    },
    /// `OP_AUTH`: identifier and `SHA1(nonce ‖ secret)`.
    Auth {
        /// Identifier (at most 255 bytes).
        ident: Bytes,
        /// The 20-byte digest, as sent.
        hash: Bytes,
    },
    /// `OP_PUBLISH`: identifier, channel and opaque payload.
    Publish {
        /// Publisher identifier.
        ident: Bytes,
        /// Channel name.
        channel: Bytes,
        /// Opaque payload bytes.
        payload: Bytes,
    },
    /// `OP_SUBSCRIBE`: identifier and channel.
    Subscribe {
        /// Subscriber identifier.
        ident: Bytes,
        /// Channel name (rest of frame).
        channel: Bytes,
    },
    /// `OP_UNSUBSCRIBE`: identifier and channel.
    Unsubscribe {
        /// Subscriber identifier.
        ident: Bytes,
        /// Channel name (rest of frame).
        channel: Bytes,
    },
}

/// Why a buffer does not (yet) hold a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// More bytes are needed; not a failure.
    #[error("incomplete frame")]
    Incomplete,
    /// The bytes can never become a valid frame; the connection should be closed.
    #[error("invalid frame: {0}")]
    Invalid(&'static str),
    /// The header claims more than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Claimed total length.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
}

/// Checks whether `buf` starts with one whole frame and returns its total length.
///
/// Never allocates. Only the header is validated (the body is checked by [`parse`]): the
/// length claim as soon as 4 bytes have arrived, the opcode at 5. So when this returns
/// [`Error::Incomplete`] with at least 4 bytes buffered, the claimed length is known to be
/// within `5..=max_len` and callers may reserve space for it.
pub fn check(buf: &[u8], max_len: usize) -> Result<usize, Error> {
    let Some(&len_bytes) = buf.first_chunk::<4>() else {
        return Err(Error::Incomplete);
    };
    // Validate the claim before waiting for the opcode byte: callers reserve buffer space
    // from the first 4 bytes whenever this returns `Incomplete`.
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len < HEADER_LEN {
        return Err(Error::Invalid("length field below 5"));
    }
    if len > max_len {
        return Err(Error::TooLarge {
            len: len as u64,
            max: max_len,
        });
    }
    let Some(&op) = buf.get(4) else {
        return Err(Error::Incomplete);
    };
    if Opcode::from_u8(op).is_none() {
        return Err(Error::Invalid("unknown opcode"));
    }
    if buf.len() < len {
        return Err(Error::Incomplete);
    }
    Ok(len)
}

/// Parses one whole frame previously validated by [`check`]; `frame` must be exactly the
/// frame's bytes (header included). Zero-copy: fields are slices of `frame`.
pub fn parse(frame: Bytes) -> Result<Frame, Error> {
    let Some(&op) = frame.get(4) else {
        return Err(Error::Invalid("length field below 5"));
    };
    let op = Opcode::from_u8(op).ok_or(Error::Invalid("unknown opcode"))?;
    let mut body = frame.slice(HEADER_LEN..);
    Ok(match op {
        Opcode::Error => Frame::Error(body),
        Opcode::Info => {
            let name = take_str(&mut body)?;
            Frame::Info { name, nonce: body }
        }
        Opcode::Auth => {
            let ident = take_str(&mut body)?;
            Frame::Auth { ident, hash: body }
        }
        Opcode::Publish => {
            let ident = take_str(&mut body)?;
            let channel = take_str(&mut body)?;
            Frame::Publish {
                ident,
                channel,
                payload: body,
            }
        }
        Opcode::Subscribe => {
            let ident = take_str(&mut body)?;
            Frame::Subscribe {
                ident,
                channel: body,
            }
        }
        Opcode::Unsubscribe => {
            let ident = take_str(&mut body)?;
            Frame::Unsubscribe {
                ident,
                channel: body,
            }
        }
    })
}

/// Splits a `u8 length + bytes` string off the front of `body`.
fn take_str(body: &mut Bytes) -> Result<Bytes, Error> {
    let Some(&len) = body.first() else {
        return Err(Error::Invalid("missing string length"));
    };
    let len = len as usize;
    if body.len() < 1 + len {
        return Err(Error::Invalid("string runs past end of frame"));
    }
    body.advance(1);
    Ok(body.split_to(len))
}

impl Frame {
    /// The opcode of this frame.
    pub fn opcode(&self) -> Opcode {
        match self {
            Frame::Error(_) => Opcode::Error,
            Frame::Info { .. } => Opcode::Info,
            Frame::Auth { .. } => Opcode::Auth,
            Frame::Publish { .. } => Opcode::Publish,
            Frame::Subscribe { .. } => Opcode::Subscribe,
            Frame::Unsubscribe { .. } => Opcode::Unsubscribe,
        }
    }

    /// Builds an `OP_ERROR` frame from text.
    pub fn error(text: impl Into<String>) -> Self {
        Frame::Error(Bytes::from(text.into()))
    }

    /// Builds an `OP_PUBLISH` frame.
    pub fn publish(
        ident: impl Into<Bytes>,
        channel: impl Into<Bytes>,
        payload: impl Into<Bytes>,
    ) -> Self {
        Frame::Publish {
            ident: ident.into(),
            channel: channel.into(),
            payload: payload.into(),
        }
    }

    /// The body length this frame encodes to, or an error if a length-prefixed string
    /// is longer than 255 bytes.
    fn body_len(&self) -> Result<usize, Error> {
        fn s(b: &Bytes) -> Result<usize, Error> {
            if b.len() > u8::MAX as usize {
                Err(Error::Invalid("string longer than 255 bytes"))
            } else {
                Ok(1 + b.len())
            }
        }
        Ok(match self {
            Frame::Error(t) => t.len(),
            Frame::Info { name, nonce } => s(name)? + nonce.len(),
            Frame::Auth { ident, hash } => s(ident)? + hash.len(),
            Frame::Publish {
                ident,
                channel,
                payload,
            } => s(ident)? + s(channel)? + payload.len(),
            Frame::Subscribe { ident, channel } | Frame::Unsubscribe { ident, channel } => {
                s(ident)? + channel.len()
            }
        })
    }

    /// Total encoded length, header included.
    pub fn encoded_len(&self) -> Result<usize, Error> {
        Ok(HEADER_LEN + self.body_len()?)
    }

    /// Appends the wire encoding of this frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        let total = self.encoded_len()?;
        let total32 = u32::try_from(total).map_err(|_| Error::Invalid("frame exceeds 4 GiB"))?;
        dst.reserve(total);
        dst.put_u32(total32);
        dst.put_u8(self.opcode() as u8);
        fn put_s(dst: &mut BytesMut, b: &Bytes) {
            // Length already checked by body_len.
            dst.put_u8(b.len() as u8);
            dst.put_slice(b);
        }
        match self {
            Frame::Error(t) => dst.put_slice(t),
            Frame::Info { name, nonce } => {
                put_s(dst, name);
                dst.put_slice(nonce);
            }
            Frame::Auth { ident, hash } => {
                put_s(dst, ident);
                dst.put_slice(hash);
            }
            Frame::Publish {
                ident,
                channel,
                payload,
            } => {
                put_s(dst, ident);
                put_s(dst, channel);
                dst.put_slice(payload);
            }
            Frame::Subscribe { ident, channel } | Frame::Unsubscribe { ident, channel } => {
                put_s(dst, ident);
                dst.put_slice(channel);
            }
        }
        Ok(())
    }

    /// Encodes this frame into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, Error> {
        let mut b = BytesMut::with_capacity(self.encoded_len()?);
        self.encode(&mut b)?;
        Ok(b.freeze())
    }
}

/// `SHA1(nonce ‖ secret)`, the proof a client sends in `OP_AUTH`.
pub fn auth_hash(nonce: &[u8], secret: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(secret);
    h.finalize().into()
}
