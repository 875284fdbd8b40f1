//! Ingest: raw hpfeeds messages → normalized, geolocated records in the store.
//!
//! # Layout
//! - [`normalize`]: one normalizer per honeypot channel; pure, synchronous functions.
//! - [`pipeline`]: broker subscription → normalize + enrich → batched commits.
//! - [`live`]: committed sessions → live-map events on a broadcast channel.
//! - [`mnemosyne`]: reading MHN mnemosyne `mongoexport` dumps for `apiary import`.

pub mod live;
pub mod mnemosyne;
pub mod normalize;
pub mod pipeline;
