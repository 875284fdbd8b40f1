//! The hpfeeds wire protocol, usable on its own: byte-level frames, a tokio codec
//! and an async client. No broker logic lives here.
//!
//! # Layout
//! - [`frame`]: the `Frame` enum and `check`/`parse`/`encode` on byte buffers. No IO.
//! - [`codec`]: a `tokio_util` `Decoder`/`Encoder` with a maximum frame length.
//! - [`client`]: connect, authenticate, publish, subscribe, reconnect with backoff.
//!
//! Every byte a broker reads comes from the internet, so nothing here may panic on input.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
#![warn(missing_docs)]

pub mod client;
pub mod codec;
pub mod frame;

pub use client::{Client, ClientError, ClientOptions, Message};
pub use codec::HpfeedsCodec;
pub use frame::{auth_hash, Frame, Opcode};
